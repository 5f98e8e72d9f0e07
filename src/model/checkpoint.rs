//! Checkpoints out: a Hugging Face folder that `transformers` loads unchanged (`config.json`,
//! `model.safetensors` in Hugging Face names, `tokenizer.json`, `generation_config.json`), a PEFT
//! adapter folder (`adapter_config.json`, `adapter_model.safetensors`), and whatever training state
//! the caller adds beside them. Every folder is written under a temporary name and renamed into
//! place, so a crash leaves the previous checkpoint or the new one, never half of one.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use tokenizers::Tokenizer;

use super::chat::ChatTemplate;
use super::decoder::Model;
use super::load::SpecialTokens;
use super::lora::{self, LoraConfig};
use super::{ModelError, Result};

/// Write a folder atomically: `fill` writes into a fresh temporary sibling of `dir`, which then
/// replaces `dir` (the old one, if any, is moved aside first and removed after).
pub fn write_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if dir.file_name().is_none() {
        return Err(ModelError::invalid(dir, "a checkpoint needs a folder name"));
    }
    let staged = crate::fsutil::Staged::dir(dir).map_err(|e| ModelError::io(dir, e))?;
    fill(staged.path())?;
    staged.commit().map_err(|e| ModelError::io(dir, e))
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).expect("json");
    std::fs::write(path, text + "\n").map_err(|e| ModelError::io(path, e))
}

/// Save named tensors as one safetensors file (contiguous f32 copies).
pub fn save_safetensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(n, t)| Ok((n, t.contiguous()?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&map, path).map_err(|e| ModelError::Candle {
        context: path.display().to_string(),
        source: e,
    })
}

/// The files of a Hugging Face model folder, written into `dir` (not atomically; see
/// [`save_hf`]). With `merge_lora`, adapters are folded into the weights.
pub fn write_hf_files(
    dir: &Path,
    model: &Model,
    tokenizer: &Tokenizer,
    special: &SpecialTokens,
    chat: &ChatTemplate,
    merge_lora: bool,
) -> Result<()> {
    let mut cfg = model.config().clone();
    cfg.eos_token_id = cfg.eos_token_id.or(special.eos.first().copied());
    write_json(&dir.join("config.json"), &cfg.to_hf_json())?;
    save_safetensors(
        &dir.join("model.safetensors"),
        model.named_tensors(merge_lora)?,
    )?;
    let tok_path = dir.join("tokenizer.json");
    tokenizer
        .save(&tok_path, false)
        .map_err(|e| ModelError::Tokenizer {
            path: tok_path.clone(),
            message: e.to_string(),
        })?;
    let mut gen_cfg = serde_json::json!({
        "eos_token_id": special.eos,
        "pad_token_id": special.pad,
        "do_sample": false,
    });
    if let Some(b) = special.bos {
        gen_cfg["bos_token_id"] = b.into();
    }
    write_json(&dir.join("generation_config.json"), &gen_cfg)?;
    let name = |id: u32| tokenizer.id_to_token(id);
    let mut tc = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model.config().max_position_embeddings,
        "clean_up_tokenization_spaces": false,
    });
    if let Some(p) = name(special.pad) {
        tc["pad_token"] = p.into();
    }
    if let Some(e) = special.eos.first().and_then(|&e| name(e)) {
        tc["eos_token"] = e.into();
    }
    if *chat == ChatTemplate::ChatMl {
        // Qwen's template minus tool use: enough for apply_chat_template on system/user/assistant.
        tc["chat_template"] = "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}".into();
    }
    write_json(&dir.join("tokenizer_config.json"), &tc)
}

/// Save a Hugging Face model folder atomically at `dir`.
pub fn save_hf(
    dir: &Path,
    model: &Model,
    tokenizer: &Tokenizer,
    special: &SpecialTokens,
    chat: &ChatTemplate,
    merge_lora: bool,
) -> Result<()> {
    write_atomically(dir, |tmp| {
        write_hf_files(tmp, model, tokenizer, special, chat, merge_lora)
    })
}

/// The files of a PEFT adapter, written into `dir`.
pub fn write_adapter_files(
    dir: &Path,
    model: &mut Model,
    cfg: &LoraConfig,
    base: &str,
) -> Result<()> {
    let tensors = lora::adapter_tensors(model);
    if tensors.is_empty() {
        return Err(ModelError::invalid(
            dir,
            "the model has no LoRA adapter to save",
        ));
    }
    write_json(&dir.join("adapter_config.json"), &cfg.to_peft_json(base))?;
    save_safetensors(&dir.join("adapter_model.safetensors"), tensors)
}

/// Save a PEFT adapter folder atomically at `dir`; `base` names the base model (path or hub id).
pub fn save_adapter(dir: &Path, model: &mut Model, cfg: &LoraConfig, base: &str) -> Result<()> {
    write_atomically(dir, |tmp| write_adapter_files(tmp, model, cfg, base))
}

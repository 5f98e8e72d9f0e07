//! Loading a model into trainable f32 weights: a Hugging Face folder (`config.json`,
//! `*.safetensors`, `tokenizer.json`, `generation_config.json`) or a GGUF file (dequantized, its
//! tokenizer rebuilt from metadata).
//!
//! Why the VarMap is filled by hand (STACK.md): `VarMap::load` refuses a bf16 file into f32 vars,
//! and a VarMap silently creates random weights for a name the file lacks. So every tensor the
//! config implies is checked by name and shape first, then put in as `Var::from_tensor(f32)`,
//! and the var count is compared after building.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use tokenizers::Tokenizer;

use super::chat::ChatTemplate;
use super::config::{Architecture, Config};
use super::decoder::Model;
use super::{ModelError, Result, tokenizer};

/// Token ids generation and batching need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Any of these ends a generation.
    pub eos: Vec<u32>,
    /// Fills padded positions (masked, so any id works; this is the model's own when it has one).
    pub pad: u32,
    pub bos: Option<u32>,
}

/// A model ready to run or train.
pub struct LoadedModel {
    pub model: Model,
    pub config: Config,
    /// The base weights as Vars (full fine-tuning trains these).
    pub varmap: VarMap,
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    pub chat: ChatTemplate,
    /// Where it came from (file or folder) and its name, for checkpoints' metadata.
    pub source: PathBuf,
    pub name: String,
}

/// Load a Hugging Face folder or a `.gguf` file, by what `path` is (f32 weights).
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel> {
    load_as(path, DType::F32, device)
}

/// [`load`] with trainable weights of `dtype` (bf16 for CUDA): each tensor is converted on the
/// host side of the copy, so the device never holds an f32 copy of the model.
pub fn load_as(path: &Path, dtype: DType, device: &Device) -> Result<LoadedModel> {
    if path.is_dir() {
        load_hf_folder_as(path, dtype, device)
    } else if path.extension().is_some_and(|e| e == "gguf") {
        load_gguf_as(path, dtype, device)
    } else if path.exists() {
        Err(ModelError::invalid(
            path,
            "not a model: give a Hugging Face folder (config.json + *.safetensors) or a .gguf file",
        ))
    } else {
        Err(ModelError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ))
    }
}

/// A fresh model with random weights (std 0.02), e.g. for tests and the tiny demo.
pub fn random(cfg: &Config, device: &Device) -> Result<(Model, VarMap)> {
    random_as(cfg, DType::F32, device)
}

/// [`random`] with weights of `dtype` (bf16 for CUDA benchmarks).
pub fn random_as(cfg: &Config, dtype: DType, device: &Device) -> Result<(Model, VarMap)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, dtype, device);
    let model = Model::new(cfg, vb)?;
    Ok((model, varmap))
}

/// Build a model from named tensors (Hugging Face names): checks that every tensor the config
/// implies is there with its shape, then makes each a trainable f32 Var. `path` names the source.
pub fn from_tensors(
    cfg: &Config,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
    device: &Device,
) -> Result<(Model, VarMap)> {
    from_tensors_as(cfg, tensors, path, DType::F32, device)
}

/// [`from_tensors`] with trainable weights of `dtype`.
pub fn from_tensors_as(
    cfg: &Config,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<(Model, VarMap)> {
    let expected = cfg.expected_tensors();
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().expect("varmap lock");
        for (name, shape) in &expected {
            let t = tensors.get(name).ok_or_else(|| ModelError::MissingTensor {
                path: path.to_path_buf(),
                name: name.clone(),
            })?;
            if t.dims() != shape.as_slice() {
                return Err(ModelError::ShapeMismatch {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    expected: shape.clone(),
                    found: t.dims().to_vec(),
                });
            }
            let t = t.to_dtype(dtype)?.to_device(device)?;
            data.insert(name.clone(), Var::from_tensor(&t)?);
        }
    }
    let before = varmap.all_vars().len();
    let model = Model::new(cfg, VarBuilder::from_varmap(&varmap, dtype, device))?;
    if varmap.all_vars().len() != before {
        // Model::new asked for a name expected_tensors() does not list: a bug here, not in the file.
        return Err(ModelError::invalid(
            path,
            "internal: the model reads a tensor the loader did not check",
        ));
    }
    Ok((model, varmap))
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ModelError::invalid(path, format!("not valid JSON: {e}")))
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as u32))
            .collect(),
        _ => Vec::new(),
    }
}

/// The safetensors files of a folder: those the index names, else every `*.safetensors`.
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    let mut files: Vec<PathBuf> = if index.is_file() {
        let v = read_json(&index)?;
        let mut names: Vec<String> = v["weight_map"]
            .as_object()
            .ok_or_else(|| ModelError::invalid(&index, "no weight_map"))?
            .values()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
        names.sort();
        names.dedup();
        names.into_iter().map(|n| dir.join(n)).collect()
    } else {
        let rd = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
        rd.filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect()
    };
    files.sort();
    if files.is_empty() {
        return Err(ModelError::invalid(
            dir,
            "no *.safetensors weights in this folder (a GGUF file is loaded by its own path)",
        ));
    }
    Ok(files)
}

/// The config and weights of a Hugging Face folder, without its tokenizer (e.g. a checkpoint
/// `transformers` wrote with `save_pretrained` alone).
pub fn load_hf_weights(dir: &Path, device: &Device) -> Result<(Config, Model, VarMap)> {
    load_hf_weights_as(dir, DType::F32, device)
}

/// [`load_hf_weights`] with weights of `dtype`.
pub fn load_hf_weights_as(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<(Config, Model, VarMap)> {
    let cfg_path = dir.join("config.json");
    let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
    let cfg = Config::from_hf_json(&cfg_text, &cfg_path)?;
    let mut tensors = HashMap::new();
    for f in safetensors_files(dir)? {
        let part =
            candle_core::safetensors::load(&f, &Device::Cpu).map_err(|e| ModelError::Candle {
                context: f.display().to_string(),
                source: e,
            })?;
        tensors.extend(part);
    }
    // The file named in errors: the single weights file, or the folder when sharded.
    let weights_path = match safetensors_files(dir)?.as_slice() {
        [one] => one.clone(),
        _ => dir.to_path_buf(),
    };
    let (model, varmap) = from_tensors_as(&cfg, &tensors, &weights_path, dtype, device)?;
    Ok((cfg, model, varmap))
}

/// Load a Hugging Face folder.
pub fn load_hf_folder(dir: &Path, device: &Device) -> Result<LoadedModel> {
    load_hf_folder_as(dir, DType::F32, device)
}

/// [`load_hf_folder`] with weights of `dtype`.
pub fn load_hf_folder_as(dir: &Path, dtype: DType, device: &Device) -> Result<LoadedModel> {
    let (cfg, model, varmap) = load_hf_weights_as(dir, dtype, device)?;
    let tok_path = dir.join("tokenizer.json");
    let tok = tokenizer::from_file(&tok_path)?;
    check_vocab(&tok, &cfg, &tok_path)?;
    let gen_path = dir.join("generation_config.json");
    let gen_cfg = if gen_path.is_file() {
        read_json(&gen_path)?
    } else {
        serde_json::Value::Null
    };
    let tc_path = dir.join("tokenizer_config.json");
    let tok_cfg = if tc_path.is_file() {
        read_json(&tc_path)?
    } else {
        serde_json::Value::Null
    };
    let mut eos = ids_of(&gen_cfg["eos_token_id"]);
    eos.extend(cfg.eos_token_id);
    let pad = gen_cfg["pad_token_id"].as_u64().map(|x| x as u32);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let chat = ChatTemplate::detect(
        tok_cfg["chat_template"].as_str(),
        tok.token_to_id("<|im_start|>").is_some() && tok.token_to_id("<|im_end|>").is_some(),
        Some(&name),
    );
    let special = special_tokens(&tok, eos, pad, cfg.bos_token_id, &chat);
    Ok(LoadedModel {
        model,
        config: cfg,
        varmap,
        tokenizer: tok,
        special,
        chat,
        source: dir.to_path_buf(),
        name,
    })
}

/// A wrong tokenizer is caught here rather than as garbage text or an index error mid-run.
fn check_vocab(tok: &Tokenizer, cfg: &Config, path: &Path) -> Result<()> {
    let n = tok.get_vocab_size(true);
    if n > cfg.vocab_size {
        return Err(ModelError::Tokenizer {
            path: path.to_path_buf(),
            message: format!(
                "has {n} tokens but the model's vocab_size is {}: this tokenizer belongs to another model",
                cfg.vocab_size
            ),
        });
    }
    Ok(())
}

fn special_tokens(
    tok: &Tokenizer,
    mut eos: Vec<u32>,
    pad: Option<u32>,
    bos: Option<u32>,
    chat: &ChatTemplate,
) -> SpecialTokens {
    // ChatML answers end with <|im_end|> whatever the config says; base models with <|endoftext|>.
    for t in ["<|im_end|>", "<|endoftext|>"] {
        if let Some(id) = tok.token_to_id(t)
            && (t == "<|endoftext|>" || *chat == ChatTemplate::ChatMl)
        {
            eos.push(id);
        }
    }
    eos.sort_unstable();
    eos.dedup();
    let pad = pad
        .or_else(|| tok.token_to_id("<|endoftext|>"))
        .or_else(|| eos.first().copied())
        .unwrap_or(0);
    SpecialTokens { eos, pad, bos }
}

/// GGUF tensor name → Hugging Face name.
pub fn gguf_to_hf_name(name: &str) -> Option<String> {
    match name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, tail) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = tail.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Hugging Face name → GGUF tensor name (the inverse of [`gguf_to_hf_name`]).
pub fn hf_to_gguf_name(name: &str) -> Option<String> {
    match name {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, tail) = rest.split_once('.')?;
    let (module, kind) = tail.rsplit_once('.')?;
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}.{kind}"))
}

/// llama.cpp stores Llama's q/k weights permuted for its interleaved RoPE; undo it so that the
/// rotate-half RoPE here applies. (Qwen2 is stored unpermuted: llama.cpp runs it as NEOX RoPE.)
fn unpermute_qk(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / n_head;
    Ok(w.reshape((n_head, hd / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))?)
}

/// The inverse of [`unpermute_qk`] (what llama.cpp's converter does), for writing GGUF files.
pub fn permute_qk(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / n_head;
    Ok(w.reshape((n_head, 2, hd / 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))?)
}

/// Load a GGUF file: config from `{arch}.*` metadata, weights dequantized to f32, tokenizer from
/// `tokenizer.ggml.*`.
pub fn load_gguf(path: &Path, device: &Device) -> Result<LoadedModel> {
    load_gguf_as(path, DType::F32, device)
}

/// [`load_gguf`] with weights of `dtype` (dequantized to f32 on the host, then converted).
pub fn load_gguf_as(path: &Path, dtype: DType, device: &Device) -> Result<LoadedModel> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| ModelError::Candle {
        context: format!("{}: not a readable GGUF file", path.display()),
        source: e,
    })?;
    let md = &content.metadata;
    let meta_str = |k: &str| md.get(k).and_then(|v| v.to_string().ok()).cloned();
    let arch_name = meta_str("general.architecture").unwrap_or_else(|| "<none>".into());
    let arch =
        Architecture::from_name(&arch_name).ok_or_else(|| ModelError::UnknownArchitecture {
            path: path.to_path_buf(),
            found: arch_name.clone(),
        })?;
    let num = |k: &str| -> Result<u64> {
        let key = format!("{arch_name}.{k}");
        md.get(&key)
            .and_then(|v| v.to_u64().ok().or_else(|| v.to_u32().ok().map(u64::from)))
            .ok_or_else(|| ModelError::invalid(path, format!("metadata {key} is missing")))
    };
    let float = |k: &str, default: f64| -> f64 {
        md.get(&format!("{arch_name}.{k}"))
            .and_then(|v| v.to_f32().ok().map(f64::from).or_else(|| v.to_f64().ok()))
            .unwrap_or(default)
    };
    let embd = content
        .tensor_infos
        .get("token_embd.weight")
        .ok_or_else(|| ModelError::MissingTensor {
            path: path.to_path_buf(),
            name: "token_embd.weight".into(),
        })?;
    let vocab_size = embd.shape.dims()[0];
    let heads = num("attention.head_count")? as usize;
    let kv_heads = num("attention.head_count_kv").unwrap_or(heads as u64) as usize;
    let tied = !content.tensor_infos.contains_key("output.weight");
    let meta_id = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
    let cfg = Config {
        architecture: arch,
        vocab_size,
        hidden_size: num("embedding_length")? as usize,
        intermediate_size: num("feed_forward_length")? as usize,
        num_hidden_layers: num("block_count")? as usize,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        max_position_embeddings: num("context_length").unwrap_or(32768) as usize,
        rope_theta: float("rope.freq_base", 10_000.0),
        rms_norm_eps: float("attention.layer_norm_rms_epsilon", 1e-6),
        tie_word_embeddings: tied,
        attention_bias: arch == Architecture::Qwen2
            || content.tensor_infos.contains_key("blk.0.attn_q.bias"),
        bos_token_id: meta_id("tokenizer.ggml.bos_token_id"),
        eos_token_id: meta_id("tokenizer.ggml.eos_token_id"),
    };
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let Some(hf) = gguf_to_hf_name(name) else {
            continue; // e.g. rope_freqs: not a weight of this decoder
        };
        let q = content
            .tensor(&mut file, name, &Device::Cpu)
            .map_err(|e| ModelError::Candle {
                context: format!("{}: tensor {name}", path.display()),
                source: e,
            })?;
        let mut t = q.dequantize(&Device::Cpu)?;
        if arch == Architecture::Llama && name.ends_with(".weight") {
            if name.contains(".attn_q.") {
                t = unpermute_qk(&t, heads)?;
            } else if name.contains(".attn_k.") {
                t = unpermute_qk(&t, kv_heads)?;
            }
        }
        tensors.insert(hf, t);
    }
    let (model, varmap) = from_tensors_as(&cfg, &tensors, path, dtype, device)?;
    drop(tensors);
    let tok = tokenizer::from_gguf(&content, path)?;
    check_vocab(&tok, &cfg, path)?;
    let name = meta_str("general.name").unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let template = meta_str("tokenizer.chat_template");
    let chat = ChatTemplate::detect(
        template.as_deref(),
        tok.token_to_id("<|im_start|>").is_some(),
        Some(&name),
    );
    let special = special_tokens(
        &tok,
        cfg.eos_token_id.into_iter().collect(),
        meta_id("tokenizer.ggml.padding_token_id"),
        cfg.bos_token_id,
        &chat,
    );
    Ok(LoadedModel {
        model,
        config: cfg,
        varmap,
        tokenizer: tok,
        special,
        chat,
        source: path.to_path_buf(),
        name,
    })
}

//! Tokenizers: the byte-level BPE held in a GGUF file's metadata, and a small BPE trained on a text
//! corpus for tiny models. Both are `tokenizers::Tokenizer`s, saved as `tokenizer.json`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::{ModelError, Result};

/// Qwen2's split pattern (the reference `tokenizer.json`'s `Split` pre-tokenizer).
pub const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split pattern (GGUF `tokenizer.ggml.pre` = `llama-bpe`).
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The special tokens a tiny model's tokenizer gets, so that ChatML prompts work on it too.
pub const TINY_SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

fn gguf_err(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Build the tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.*`): a byte-level BPE
/// with the split pattern named by `tokenizer.ggml.pre`, its special (control) tokens added.
pub fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Tokenizer> {
    let md = &content.metadata;
    let get = |k: &str| {
        md.get(k)
            .ok_or_else(|| gguf_err(path, format!("metadata {k} is missing")))
    };
    let model = get("tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| gguf_err(path, e.to_string()))?;
    if model != "gpt2" {
        return Err(gguf_err(
            path,
            format!(
                "tokenizer.ggml.model is {model:?}; only byte-level BPE (gpt2) is supported — \
use the model's tokenizer.json instead"
            ),
        ));
    }
    let tokens: Vec<String> = get("tokenizer.ggml.tokens")?
        .to_vec()
        .map_err(|e| gguf_err(path, e.to_string()))?
        .iter()
        .map(|v| v.to_string().cloned())
        .collect::<candle_core::Result<_>>()
        .map_err(|e| gguf_err(path, format!("tokenizer.ggml.tokens: {e}")))?;
    let merges: Vec<String> = match md.get("tokenizer.ggml.merges") {
        Some(v) => v
            .to_vec()
            .map_err(|e| gguf_err(path, e.to_string()))?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<candle_core::Result<_>>()
            .map_err(|e| gguf_err(path, format!("tokenizer.ggml.merges: {e}")))?,
        None => Vec::new(),
    };
    let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| gguf_err(path, e.to_string()))?
            .iter()
            .map(|x| x.to_i32().map(i64::from))
            .collect::<candle_core::Result<_>>()
            .map_err(|e| gguf_err(path, format!("tokenizer.ggml.token_type: {e}")))?,
        None => vec![1; tokens.len()],
    };
    let pattern = match md
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
    {
        Some("qwen2") | None => QWEN2_PATTERN,
        Some("llama-bpe") | Some("llama3") => LLAMA3_PATTERN,
        Some(other) => {
            return Err(gguf_err(
                path,
                format!("tokenizer.ggml.pre {other:?} is not supported (qwen2, llama-bpe)"),
            ));
        }
    };
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::Value::from(i)))
        .collect();
    // Control (3) and user-defined (4) tokens are matched whole before BPE, as in tokenizer.json;
    // only control tokens are "special" (skipped when decoding with skip_special_tokens).
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(3) | Some(4)))
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": types[i] == 3})
        })
        .collect();
    let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false,
        "trim_offsets": false, "use_regex": false});
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
            byte_level.clone(),
        ]},
        "post_processor": byte_level.clone(),
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges},
    });
    json.to_string()
        .parse::<Tokenizer>()
        .map_err(|e| gguf_err(path, format!("building the BPE from metadata: {e}")))
}

/// Load a `tokenizer.json`.
pub fn from_file(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: format!("cannot read tokenizer.json: {e}"),
    })
}

/// Train a byte-level BPE of about `vocab_size` tokens on `texts` (a tiny model's tokenizer).
/// [`TINY_SPECIAL_TOKENS`] come first (ids 0, 1, 2). Byte-level means every input is encodable.
pub fn train_bpe<I, S>(texts: I, vocab_size: usize) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    let err = |e: tokenizers::Error| ModelError::Tokenizer {
        path: "<training>".into(),
        message: e.to_string(),
    };
    // Qwen's pre-tokenizer (split pattern, then byte-level without its own regex), so that a tiny
    // model tokenizes like the real one and its tokenizer survives a GGUF round trip.
    let split = Split::new(
        SplitPattern::Regex(QWEN2_PATTERN.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(err)?;
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)),
    ])));
    tok.with_decoder(Some(ByteLevel::new(false, false, false)));
    let specials: Vec<AddedToken> = TINY_SPECIAL_TOKENS
        .iter()
        .map(|s| AddedToken::from(*s, true))
        .collect();
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tok.train(&mut trainer, texts).map_err(err)?;
    tok.add_special_tokens(&specials);
    Ok(tok)
}

/// The id of `token` when the vocabulary holds it.
pub fn token_id(tok: &Tokenizer, token: &str) -> Option<u32> {
    tok.token_to_id(token)
}

/// Encode without adding special tokens (prompts are rendered with their specials spelled out).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    tok.encode(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| ModelError::Tokenizer {
            path: "<encode>".into(),
            message: e.to_string(),
        })
}

/// Decode, dropping special tokens.
pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, true).map_err(|e| ModelError::Tokenizer {
        path: "<decode>".into(),
        message: e.to_string(),
    })
}

/// Vocabulary as id → token, e.g. for writing GGUF metadata in tests.
pub fn vocab_by_id(tok: &Tokenizer) -> Vec<String> {
    let v: HashMap<String, u32> = tok.get_vocab(true);
    let mut out = vec![String::new(); v.values().map(|&i| i as usize + 1).max().unwrap_or(0)];
    for (t, i) in v {
        out[i as usize] = t;
    }
    out
}

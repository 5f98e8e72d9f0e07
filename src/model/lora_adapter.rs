//! One LoRA adapter (`y = x Wᵀ + b + scale · dropout(x) Aᵀ Bᵀ`, scale = alpha / rank) as the
//! decoder's linear layer holds it. `candle-lora` is pinned to an old candle, so the adapter is
//! written here. Attaching adapters to a model and PEFT's files are in `lora.rs`; this file does not
//! know the decoder, so the decoder can hold an adapter without a dependency cycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::Tensor;

/// One adapter: `a` (rank, in), `b` (out, rank).
#[derive(Debug, Clone)]
pub struct Lora {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
    pub dropout: f32,
    pub training: bool,
    /// This adapter's place in the model (its dropout stream), and the model's forward-pass
    /// counter: the dropout mask is a function of the two, so a pass recomputed for activation
    /// checkpointing drops exactly the units the first pass dropped (`src/model/recompute.rs`).
    pub site: u64,
    pub pass: Arc<AtomicU64>,
}

impl Lora {
    /// The adapter's contribution for a 2-D input (rows, in).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = if self.training && self.dropout > 0.0 {
            let key = self.pass.load(Ordering::Relaxed);
            (x * dropout_mask(x, self.dropout, key, self.site)?)?
        } else {
            x.clone()
        };
        exspin_kernels::dense(&exspin_kernels::dense(&x, &self.a)?, &self.b)? * self.scale
    }

    /// `scale · B·A`, the update merging adds to the base weight.
    pub fn delta_weight(&self) -> candle_core::Result<Tensor> {
        self.b.matmul(&self.a)? * self.scale
    }
}

/// Inverted dropout's mask for `x` (0 or 1/(1-p) per element) as a pure function of (pass, site,
/// element): counter-based hashing instead of a stateful generator, so the same pass can be
/// replayed.
fn dropout_mask(x: &Tensor, p: f32, pass: u64, site: u64) -> candle_core::Result<Tensor> {
    let n = x.elem_count();
    let key = mix(pass ^ mix(site.wrapping_add(0x5851_F42D_4C95_7F2D)));
    let keep = 1.0 / (1.0 - p);
    // A 24-bit uniform per element, compared with p.
    let threshold = (p as f64 * (1u64 << 24) as f64) as u64;
    let mask: Vec<f32> = (0..n as u64)
        .map(|i| {
            if (mix(key.wrapping_add(i)) >> 40) < threshold {
                0.0
            } else {
                keep
            }
        })
        .collect();
    Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())
}

/// splitmix64's finaliser: a well-mixed 64-bit hash of a counter.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

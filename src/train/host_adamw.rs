//! AdamW for f32 parameters on the CPU in one pass, in place.
//!
//! Composed from tensor ops, one AdamW update reads and writes each parameter's memory about a
//! dozen times and allocates as many temporaries (`m·β₁`, `g·(1−β₁)`, their sum, `g²`, …): on a
//! 31M-parameter model that is several GB of memory traffic a step, as much time as a large part
//! of the backward pass. Here the moments live in plain vectors and one loop reads the gradient,
//! updates both moments and writes the parameter through candle's in-place op, element by element,
//! in parallel chunks. The gradient-clipping scale is applied in the same loop.

use std::sync::Mutex;

use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Storage, Tensor};
use rayon::prelude::*;

/// The scalars of one update.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hyper {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub lr: f32,
    /// `1 − lr·weight_decay`, or 1 for parameters that are not decayed.
    pub decay: f32,
    /// Bias corrections `1 − βᵗ`.
    pub bc1: f32,
    pub bc2: f32,
    /// Gradient multiplier (the clipping scale, 1 when not clipped).
    pub grad_scale: f32,
}

/// Elements per parallel chunk: large enough that scheduling is noise, small enough to balance.
const CHUNK: usize = 1 << 15;

/// Whether a parameter can take the host path: a contiguous f32 tensor on the CPU.
pub(crate) fn eligible(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32 && t.is_contiguous()
}

/// Runs `f` on the f32 elements of a contiguous CPU tensor.
fn with_host_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let n = layout.shape().elem_count();
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Ok(f(&v[layout.start_offset()..][..n])),
        _ => candle_core::bail!("expected an f32 CPU tensor, got {:?}", t.dtype()),
    }
}

/// Σ x² of an f32 CPU tensor, in one pass without temporaries.
pub(crate) fn sum_squares(t: &Tensor) -> candle_core::Result<f64> {
    with_host_slice(t, |x| {
        x.par_chunks(CHUNK)
            .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
            .sum()
    })
}

/// Applies one update to `param` in place, moving `m` and `v` along.
pub(crate) fn update(
    param: &Tensor,
    grad: &Tensor,
    m: &mut [f32],
    v: &mut [f32],
    hyper: Hyper,
) -> candle_core::Result<()> {
    with_host_slice(grad, |g| {
        let n = param.elem_count();
        if g.len() != n || m.len() != n || v.len() != n {
            candle_core::bail!(
                "AdamW: parameter has {n} elements, gradient {}, moments {} and {}",
                g.len(),
                m.len(),
                v.len()
            );
        }
        param.inplace_op1(&Step {
            grad: g,
            moments: Mutex::new((m, v)),
            hyper,
        })
    })?
}

struct Step<'a> {
    grad: &'a [f32],
    /// `InplaceOp1::cpu_fwd` takes `&self`; the lock is taken once per update.
    moments: Mutex<(&'a mut [f32], &'a mut [f32])>,
    hyper: Hyper,
}

impl InplaceOp1 for Step<'_> {
    fn name(&self) -> &'static str {
        "adamw-host"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(p) = storage else {
            candle_core::bail!("adamw-host: the parameter is not f32");
        };
        if !layout.is_contiguous() {
            candle_core::bail!("adamw-host: the parameter is not contiguous");
        }
        let p = &mut p[layout.start_offset()..][..layout.shape().elem_count()];
        let mut guard = self.moments.lock().expect("moments lock");
        let (m, v) = &mut *guard;
        let (m, v): (&mut [f32], &mut [f32]) = (m, v);
        let h = self.hyper;
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(self.grad.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| {
                for i in 0..p.len() {
                    let gi = g[i] * h.grad_scale;
                    let mi = h.beta1 * m[i] + (1.0 - h.beta1) * gi;
                    let vi = h.beta2 * v[i] + (1.0 - h.beta2) * gi * gi;
                    m[i] = mi;
                    v[i] = vi;
                    let step = (mi / h.bc1) / ((vi / h.bc2).sqrt() + h.eps);
                    p[i] = p[i] * h.decay - step * h.lr;
                }
            });
        Ok(())
    }
}

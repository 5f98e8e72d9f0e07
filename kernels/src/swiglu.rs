//! The gated MLP activation `silu(gate) ⊙ up` as one autograd node (CPU, f32): one pass forward
//! and one backward, where the composition is two nodes and candle's `silu` backward alone is
//! several element-wise ops over the MLP's widest activation.
//!
//! With `s = σ(g)`: `d gate = dy ⊙ up ⊙ s·(1 + g·(1 − s))`, `d up = dy ⊙ g·s`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::host::contiguous_f32;

/// `silu(gate) ⊙ up` for two tensors of the same shape, f32 on the CPU. Differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        bail!(
            "swiglu: gate {:?} and up {:?} differ",
            gate.dims(),
            up.dims()
        );
    }
    for t in [gate, up] {
        if !t.device().is_cpu() || t.dtype() != candle_core::DType::F32 {
            bail!("swiglu: the fused op is for f32 on the CPU");
        }
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

struct SwiGlu;

const CHUNK: usize = 1 << 14;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        s_g: &CpuStorage,
        l_g: &Layout,
        s_u: &CpuStorage,
        l_u: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = (
            contiguous_f32("swiglu", s_g, l_g)?,
            contiguous_f32("swiglu", s_u, l_u)?,
        );
        let mut y = vec![0f32; g.len()];
        y.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(y, (g, u))| {
                for i in 0..y.len() {
                    y[i] = g[i] * sigmoid(g[i]) * u[i];
                }
            });
        Ok((CpuStorage::F32(y), l_g.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both = gate.detach().apply_op3_no_bwd(
            &up.detach(),
            &grad.detach().contiguous()?,
            &SwiGluBackward,
        )?;
        let needs = crate::host::needs_grad;
        let grad_gate = if needs(gate) {
            Some(both.get(0)?.reshape(gate.dims())?)
        } else {
            None
        };
        let grad_up = if needs(up) {
            Some(both.get(1)?.reshape(up.dims())?)
        } else {
            None
        };
        Ok((grad_gate, grad_up))
    }
}

/// `[2, n]`: d gate, then d up.
struct SwiGluBackward;

impl CustomOp3 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "swiglu-backward"
    }

    fn cpu_fwd(
        &self,
        s_g: &CpuStorage,
        l_g: &Layout,
        s_u: &CpuStorage,
        l_u: &Layout,
        s_d: &CpuStorage,
        l_d: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u, dy) = (
            contiguous_f32("swiglu", s_g, l_g)?,
            contiguous_f32("swiglu", s_u, l_u)?,
            contiguous_f32("swiglu", s_d, l_d)?,
        );
        let n = g.len();
        let mut out = vec![0f32; 2 * n];
        let (dg, du) = out.split_at_mut(n);
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .zip(dy.par_chunks(CHUNK))
            .for_each(|(((dg, du), (g, u)), dy)| {
                for i in 0..dg.len() {
                    let s = sigmoid(g[i]);
                    dg[i] = dy[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                    du[i] = dy[i] * g[i] * s;
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((2, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{max_abs, rand};
    use candle_core::Var;

    #[test]
    fn matches_the_composition_forward_and_backward() {
        let g = Var::from_tensor(&(rand(&[3, 5, 7000], 1) * 8.0).unwrap()).unwrap();
        let u = Var::from_tensor(&(rand(&[3, 5, 7000], 2) * 8.0).unwrap()).unwrap();
        let w = rand(&[3, 5, 7000], 3);
        let ours = swiglu(&g, &u).unwrap();
        let theirs = (g.silu().unwrap() * u.as_tensor()).unwrap();
        assert!(max_abs(&ours, &theirs) < 1e-5);
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, t) in [("gate", &g), ("up", &u)] {
            let err = max_abs(g1.get(t).unwrap(), g2.get(t).unwrap());
            assert!(err < 1e-4, "d{name} differs by {err}");
        }
    }

    #[test]
    fn shapes_must_agree() {
        assert!(swiglu(&rand(&[2, 3], 4), &rand(&[3, 2], 5)).is_err());
    }
}

//! RMS norm `y = x · w / sqrt(mean(x²) + eps)` over the last dimension as one autograd node (CPU,
//! f32): one pass forward, one pass backward, where the composition (square, mean, add, sqrt,
//! reciprocal, two broadcast multiplies) is seven nodes, each with a zero-filled gradient buffer
//! and an add in candle's backward.
//!
//! Backward, with `r = (mean(x²) + eps)^(-1/2)` per row and `h` the width:
//! `dx = r·w⊙dy − x·r³/h · Σⱼ wⱼ dyⱼ xⱼ`, `dw = Σ_rows dy ⊙ x · r`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::host::contiguous_f32;

/// RMS norm of `x [..., h]` with gain `weight [h]`; f32 on the CPU. Differentiable in both.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let h = x.dim(candle_core::D::Minus1)?;
    if weight.dims() != [h] {
        bail!("rms_norm: weight {:?}, expected [{h}]", weight.dims());
    }
    for t in [x, weight] {
        if !t.device().is_cpu() || t.dtype() != candle_core::DType::F32 {
            bail!("rms_norm: the fused op is for f32 on the CPU");
        }
    }
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })
}

struct RmsNorm {
    eps: f32,
}

fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let ms = crate::fastmath::dot(row, row) / row.len() as f32;
    1.0 / (ms + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        s_x: &CpuStorage,
        l_x: &Layout,
        s_w: &CpuStorage,
        l_w: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (
            contiguous_f32("rms_norm", s_x, l_x)?,
            contiguous_f32("rms_norm", s_w, l_w)?,
        );
        let h = w.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(h).zip(x.par_chunks(h)).for_each(|(y, x)| {
            let r = inv_rms(x, self.eps);
            for j in 0..h {
                y[j] = x[j] * r * w[j];
            }
        });
        Ok((CpuStorage::F32(y), l_x.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = x.elem_count() / w.elem_count();
        let both = x.detach().apply_op3_no_bwd(
            &w.detach(),
            &grad.detach().contiguous()?,
            &RmsNormBackward { eps: self.eps },
        )?;
        let needs = crate::host::needs_grad;
        let grad_x = if needs(x) {
            Some(both.narrow(0, 0, rows)?.reshape(x.dims())?)
        } else {
            None
        };
        let grad_w = if needs(w) {
            Some(both.narrow(0, rows, 1)?.reshape(w.dims())?)
        } else {
            None
        };
        Ok((grad_x, grad_w))
    }
}

/// `[rows + 1, h]`: dx in the first rows, dw in the last.
struct RmsNormBackward {
    eps: f32,
}

/// Rows per parallel task of the backward (each task keeps its own dw partial sum).
const ROWS_PER_TASK: usize = 64;

impl CustomOp3 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "rms-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s_x: &CpuStorage,
        l_x: &Layout,
        s_w: &CpuStorage,
        l_w: &Layout,
        s_g: &CpuStorage,
        l_g: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, dy) = (
            contiguous_f32("rms_norm", s_x, l_x)?,
            contiguous_f32("rms_norm", s_w, l_w)?,
            contiguous_f32("rms_norm", s_g, l_g)?,
        );
        let h = w.len();
        let rows = x.len() / h;
        let mut out = vec![0f32; x.len() + h];
        let (dx, dw) = out.split_at_mut(x.len());
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(h * ROWS_PER_TASK)
            .zip(x.par_chunks(h * ROWS_PER_TASK))
            .zip(dy.par_chunks(h * ROWS_PER_TASK))
            .map(|((dx, x), dy)| {
                let mut dw = vec![0f32; h];
                for ((dx, x), dy) in dx.chunks_mut(h).zip(x.chunks(h)).zip(dy.chunks(h)) {
                    let r = inv_rms(x, self.eps);
                    // dx's first term (w ⊙ dy) doubles as the buffer of the dot product.
                    for j in 0..h {
                        dx[j] = w[j] * dy[j];
                    }
                    let c = r * r * r * crate::fastmath::dot(dx, x) / h as f32;
                    for j in 0..h {
                        dx[j] = r * dx[j] - x[j] * c;
                        dw[j] += dy[j] * x[j] * r;
                    }
                }
                dw
            })
            .collect();
        for p in partials {
            for j in 0..h {
                dw[j] += p[j];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 1, h))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{max_abs, rand};
    use candle_core::{D, Var};

    #[test]
    fn matches_the_composition_forward_and_backward() {
        // 3 × 70 rows: more than one backward task, and a partial last one.
        let x = Var::from_tensor(&rand(&[3, 70, 12], 1)).unwrap();
        let w = Var::from_tensor(&(rand(&[12], 2) + 1.0).unwrap()).unwrap();
        let up = rand(&[3, 70, 12], 3);
        let ours = rms_norm(&x, &w, 1e-6).unwrap();
        let inv = (x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap() + 1e-6)
            .unwrap()
            .sqrt()
            .unwrap()
            .recip()
            .unwrap();
        let theirs = x.broadcast_mul(&inv).unwrap().broadcast_mul(&w).unwrap();
        assert!(max_abs(&ours, &theirs) < 1e-6);
        let g1 = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, t) in [("x", &x), ("w", &w)] {
            let (a, b) = (g1.get(t).unwrap(), g2.get(t).unwrap());
            // dw sums 210 rows: compare relative to the gradient's size.
            let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            let rel = max_abs(a, b) / scale.to_scalar::<f32>().unwrap().max(1.0);
            assert!(rel < 1e-5, "d{name} differs by {rel} (relative)");
        }
    }

    #[test]
    fn a_wrong_gain_shape_is_an_error() {
        let e = rms_norm(&rand(&[2, 4], 4), &rand(&[5], 5), 1e-6).unwrap_err();
        assert!(e.to_string().contains("weight"), "{e}");
    }
}

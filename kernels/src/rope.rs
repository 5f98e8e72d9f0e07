//! Rotary position embedding (Hugging Face's `rotate_half` form) as one autograd node (CPU, f32).
//!
//! `y = x ⊙ cos + rotate_half(x) ⊙ sin` with `rotate_half([x₁, x₂]) = [−x₂, x₁]` composes from
//! seven candle nodes (two narrows, a negation, a concatenation, two multiplies, an add), whose
//! backward pads narrowed gradients back with zeros. The map is linear in `x`, so its backward is
//! the transposed map — `dx₁ = dy₁⊙cos₁ + dy₂⊙sin₂`, `dx₂ = dy₂⊙cos₂ − dy₁⊙sin₁` — the same loop
//! with the roles swapped.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::host::contiguous_f32;

/// RoPE of `x [b, heads, t, d]` with `cos`/`sin [b, 1, t, d]`, f32 on the CPU. Differentiable
/// in `x` (the angles are constants).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, _, t, d) = x.dims4()?;
    if d % 2 != 0 {
        bail!("rope: head width {d} is odd");
    }
    for (name, a) in [("cos", cos), ("sin", sin)] {
        if a.dims() != [b, 1, t, d] {
            bail!("rope: {name} {:?}, expected [{b}, 1, {t}, {d}]", a.dims());
        }
    }
    for a in [x, cos, sin] {
        if !a.device().is_cpu() || a.dtype() != candle_core::DType::F32 {
            bail!("rope: the fused op is for f32 on the CPU");
        }
    }
    x.contiguous()?.apply_op1(Rope {
        cos: cos.contiguous()?.detach(),
        sin: sin.contiguous()?.detach(),
        transposed: false,
    })
}

struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// Apply the transposed rotation (the backward).
    transposed: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = match s {
            CpuStorage::F32(v) if l.is_contiguous() => {
                &v[l.start_offset()..][..l.shape().elem_count()]
            }
            _ => bail!("rope: expected contiguous f32"),
        };
        let (_, heads, t, d) = l.shape().dims4()?;
        let (cos_storage, cos_layout) = self.cos.storage_and_layout();
        let (sin_storage, sin_layout) = self.sin.storage_and_layout();
        let cos = match &*cos_storage {
            candle_core::Storage::Cpu(s) => contiguous_f32("rope", s, cos_layout)?,
            _ => bail!("rope: cos is not on the CPU"),
        };
        let sin = match &*sin_storage {
            candle_core::Storage::Cpu(s) => contiguous_f32("rope", s, sin_layout)?,
            _ => bail!("rope: sin is not on the CPU"),
        };
        let half = d / 2;
        let mut y = vec![0f32; x.len()];
        // One task per (batch, head): t rows of d.
        y.par_chunks_mut(t * d)
            .zip(x.par_chunks(t * d))
            .enumerate()
            .for_each(|(bh, (y, x))| {
                let batch = bh / heads;
                for p in 0..t {
                    let at = (batch * t + p) * d;
                    let (c, s) = (&cos[at..at + d], &sin[at..at + d]);
                    let (x, y) = (&x[p * d..][..d], &mut y[p * d..][..d]);
                    for j in 0..half {
                        let (x1, x2) = (x[j], x[j + half]);
                        if self.transposed {
                            y[j] = x1 * c[j] + x2 * s[j + half];
                            y[j + half] = x2 * c[j + half] - x1 * s[j];
                        } else {
                            y[j] = x1 * c[j] - x2 * s[j];
                            y[j + half] = x2 * c[j + half] + x1 * s[j + half];
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            transposed: !self.transposed,
        };
        Ok(Some(grad.detach().contiguous()?.apply_op1_no_bwd(&back)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{max_abs, rand};
    use candle_core::{D, Var};

    #[test]
    fn matches_the_composition_forward_and_backward() {
        let (b, h, t, d) = (2, 3, 5, 8);
        let x = Var::from_tensor(&rand(&[b, h, t, d], 1)).unwrap();
        // Arbitrary (not duplicated-half) angles, so a swapped half would show.
        let cos = rand(&[b, 1, t, d], 2);
        let sin = rand(&[b, 1, t, d], 3);
        let up = rand(&[b, h, t, d], 4);
        let ours = rope(&x, &cos, &sin).unwrap();
        let x1 = x.narrow(D::Minus1, 0, d / 2).unwrap();
        let x2 = x.narrow(D::Minus1, d / 2, d / 2).unwrap();
        let rot = Tensor::cat(&[&x2.neg().unwrap(), &x1], D::Minus1).unwrap();
        let theirs = (x.broadcast_mul(&cos).unwrap() + rot.broadcast_mul(&sin).unwrap()).unwrap();
        assert!(max_abs(&ours, &theirs) < 1e-6);
        let g1 = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let err = max_abs(g1.get(&x).unwrap(), g2.get(&x).unwrap());
        assert!(err < 1e-6, "dx differs by {err}");
    }

    #[test]
    fn angle_shapes_are_checked() {
        let x = rand(&[1, 2, 3, 4], 5);
        let e = rope(&x, &rand(&[1, 1, 2, 4], 6), &rand(&[1, 1, 3, 4], 7)).unwrap_err();
        assert!(e.to_string().contains("cos"), "{e}");
    }
}

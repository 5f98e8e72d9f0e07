//! Moving between the token-major `[b, t, heads·d]` layout of a projection and the head-major
//! `[b, heads, t, d]` layout of attention, as one autograd node each way (CPU, f32).
//!
//! `reshape → transpose → contiguous` does the copy fine, but candle's backward of the transpose
//! accumulates a transposed view of the gradient into a zero buffer with a strided add, its slow
//! element-indexed path, for q, k, v and the attention output of every layer. Here the backward of
//! each direction is the other direction: a plain copy.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// `[b, t, heads·d]` → `[b, heads, t, d]` (f32, CPU). Differentiable.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, hd) = x.dims3()?;
    if heads == 0 || hd % heads != 0 {
        bail!("split_heads: width {hd} is not a multiple of {heads} heads");
    }
    check(x)?;
    x.contiguous()?.apply_op1(Heads {
        dims: (b, heads, t, hd / heads),
        split: true,
    })
}

/// `[b, heads, t, d]` → `[b, t, heads·d]` (f32, CPU). Differentiable.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let dims = x.dims4()?;
    check(x)?;
    x.contiguous()?.apply_op1(Heads { dims, split: false })
}

fn check(x: &Tensor) -> Result<()> {
    if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
        bail!("heads: the fused op is for f32 on the CPU");
    }
    Ok(())
}

struct Heads {
    /// (b, heads, t, d) of the head-major side.
    dims: (usize, usize, usize, usize),
    /// token-major → head-major (else the reverse).
    split: bool,
}

impl CustomOp1 for Heads {
    fn name(&self) -> &'static str {
        if self.split {
            "split-heads"
        } else {
            "merge-heads"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = match s {
            CpuStorage::F32(v) if l.is_contiguous() => {
                &v[l.start_offset()..][..l.shape().elem_count()]
            }
            _ => bail!("heads: expected contiguous f32"),
        };
        let (b, h, t, d) = self.dims;
        let mut y = vec![0f32; x.len()];
        // One task per (batch, position): that token's h·d values, one row of d per head.
        if self.split {
            y.par_chunks_mut(t * d).enumerate().for_each(|(bh, out)| {
                let (bi, hi) = (bh / h, bh % h);
                for p in 0..t {
                    let src = ((bi * t + p) * h + hi) * d;
                    out[p * d..][..d].copy_from_slice(&x[src..][..d]);
                }
            });
        } else {
            y.par_chunks_mut(h * d).enumerate().for_each(|(bp, out)| {
                let (bi, p) = (bp / t, bp % t);
                for hi in 0..h {
                    let src = ((bi * h + hi) * t + p) * d;
                    out[hi * d..][..d].copy_from_slice(&x[src..][..d]);
                }
            });
        }
        let shape = if self.split {
            Shape::from((b, h, t, d))
        } else {
            Shape::from((b, t, h * d))
        };
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = Heads {
            dims: self.dims,
            split: !self.split,
        };
        Ok(Some(grad.detach().contiguous()?.apply_op1_no_bwd(&back)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(dims: &[usize], seed: u64) -> Tensor {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15 ^ seed) >> 40) as f32)
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn both_directions_match_reshape_and_transpose_with_gradients() {
        let (b, t, h, d) = (2, 5, 3, 4);
        let x = Var::from_tensor(&rand(&[b, t, h * d], 1)).unwrap();
        let ours = split_heads(&x, h).unwrap();
        let theirs = x
            .reshape((b, t, h, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        let diff = (&ours - &theirs).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        let back = merge_heads(&ours).unwrap();
        let diff = (&back - x.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "merge undoes split");
        // d/dx Σ up ⊙ split(x) = merge(up).
        let up = rand(&[b, h, t, d], 2);
        let g = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let want = merge_heads(&up).unwrap();
        let diff = (g.get(&x).unwrap() - want)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn a_width_that_does_not_split_is_an_error() {
        let e = split_heads(&rand(&[1, 2, 10], 3), 3).unwrap_err();
        assert!(e.to_string().contains("multiple"), "{e}");
    }
}

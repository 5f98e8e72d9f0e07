//! A dense layer's product `x · Wᵀ` as one autograd node.
//!
//! Written the obvious way, `x.matmul(&w.t()?)`, candle records two nodes: a transpose and a
//! matmul. Its backward then always computes both operand gradients (a frozen LoRA base weight
//! still costs a full `xᵀ · g` GEMM per layer), produces the weight gradient in the transposed
//! `[in, out]` layout, and accumulates it through the transpose node into a zero `[out, in]`
//! tensor with a strided add, candle's slow element-indexed path, over every weight of the model
//! on every step. This op's backward computes only the gradients some operand needs, and writes
//! the weight gradient directly in the weight's `[out, in]` layout (`gᵀ · x`, one GEMM reading the
//! transposed operand in place), so the accumulation is a contiguous add.
//!
//! The forward is candle's own matmul on the same layouts as the two-node version, on any device
//! and dtype, so results are bit-identical to it.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};

/// `x [N, in] · weightᵀ` with `weight [out, in]` → `[N, out]`. Differentiable in both operands.
pub fn dense(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (_, inp) = x.dims2()?;
    let (_, w_in) = weight.dims2()?;
    if inp != w_in {
        bail!("dense: input width {inp} differs from the weight's width {w_in}");
    }
    x.apply_op2(weight, Dense)
}

struct Dense;

/// candle's matmul arguments: (batch, m, n, k).
type Bmnk = (usize, usize, usize, usize);

/// The matmul arguments of `x · wᵀ`, the transposed weight layout and the output shape.
fn plan(l_x: &Layout, l_w: &Layout) -> Result<(Bmnk, Layout, Shape)> {
    let (n, k) = l_x.shape().dims2()?;
    let (out, _) = l_w.shape().dims2()?;
    Ok(((1, n, out, k), l_w.transpose(0, 1)?, Shape::from((n, out))))
}

impl CustomOp2 for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn cpu_fwd(
        &self,
        s_x: &CpuStorage,
        l_x: &Layout,
        s_w: &CpuStorage,
        l_w: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (bmnk, l_wt, shape) = plan(l_x, l_w)?;
        Ok((s_x.matmul(s_w, bmnk, l_x, &l_wt)?, shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s_x: &candle_core::CudaStorage,
        l_x: &Layout,
        s_w: &candle_core::CudaStorage,
        l_w: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (bmnk, l_wt, shape) = plan(l_x, l_w)?;
        Ok((s_x.matmul(s_w, bmnk, l_x, &l_wt)?, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let needs = crate::host::needs_grad;
        let grad = grad.detach();
        let grad_x = if needs(x) {
            Some(grad.matmul(&weight.detach())?)
        } else {
            None
        };
        let grad_w = if needs(weight) {
            Some(grad.t()?.matmul(&x.detach())?)
        } else {
            None
        };
        Ok((grad_x, grad_w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{max_abs, rand};
    use candle_core::Var;

    #[test]
    fn forward_and_gradients_match_the_two_node_composition() {
        let x = Var::from_tensor(&rand(&[7, 5], 1)).unwrap();
        let w = Var::from_tensor(&rand(&[3, 5], 2)).unwrap();
        let up = rand(&[7, 3], 3);
        let ours = dense(&x, &w).unwrap();
        let reference = x.matmul(&w.t().unwrap()).unwrap();
        assert_eq!(max_abs(&ours, &reference), 0.0, "same matmul, same bits");
        let g1 = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w] {
            let (a, b) = (g1.get(v).unwrap(), g2.get(v).unwrap());
            assert_eq!(a.dims(), v.dims());
            assert!(
                max_abs(a, b) < 1e-6,
                "gradient differs by {}",
                max_abs(a, b)
            );
        }
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient() {
        let x = Var::from_tensor(&rand(&[4, 6], 4)).unwrap();
        let frozen = rand(&[2, 6], 5);
        let g = dense(&x, &frozen)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&frozen).is_none());
        // d/dx Σ x·Wᵀ = column sums of W, repeated per row.
        let expected = frozen
            .sum_keepdim(0)
            .unwrap()
            .broadcast_as((4, 6))
            .unwrap()
            .contiguous()
            .unwrap();
        assert!(max_abs(g.get(&x).unwrap(), &expected) < 1e-6);
    }

    #[test]
    fn mismatched_widths_are_an_error() {
        let e = dense(&rand(&[2, 3], 6), &rand(&[4, 5], 7)).unwrap_err();
        assert!(e.to_string().contains("width"), "{e}");
    }
}

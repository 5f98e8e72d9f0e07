//! Fused token log-prob: logits [N, V] and targets [N] → log p(target) [N], as a candle custom op
//! with a backward pass.
//!
//! The op's raw output is `[N, 3]` = `[log p, max, lse]` per row; [`token_logprobs`] hands out
//! column 0. Keeping the two statistics in the result (where candle's autograd gives them back to
//! `bwd`) is what lets the backward write `g · (onehot − softmax)` in a single pass without
//! storing the softmax or reducing the row again. Narrow's backward pads the gradient of the
//! unused columns with zeros, which `bwd` ignores.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};

use crate::{IGNORE, cpu};

/// log p(target) for each row of `logits` ([N, V], f32 / bf16 / f16; any device with a kernel).
///
/// `targets` is [N] u32. A row is skipped (not read, log-prob 0, zero gradient) when its target is
/// [`IGNORE`] or, if `mask` ([N], any dtype) is given, when its mask value is 0. Other targets must
/// be < V. The result is f32 whatever the logits dtype, and differentiable with respect to
/// `logits` through candle's autograd.
pub fn token_logprobs(logits: &Tensor, targets: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    // Contiguous: column 0 of [N, 3] is a strided view, and candle's CUDA matmul refuses strided
    // operands (a caller summing log-probs with a mask matmul failed on the GPU only).
    token_stats(logits, targets, mask)?
        .narrow(1, 0, 1)?
        .squeeze(1)?
        .contiguous()
}

/// The op's raw `[N, 3]` output (see the module doc), differentiable.
pub(crate) fn token_stats(
    logits: &Tensor,
    targets: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let targets = masked_targets(targets, mask)?;
    logits.contiguous()?.apply_op2(&targets, TokenLogprob)
}

/// The forward without graph recording: for callers (the fused linear op) that do their own
/// backward. `targets` must already carry the mask.
pub(crate) fn token_stats_no_grad(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2_no_bwd(targets, &TokenLogprob)
}

/// g · (onehot − softmax) for a block of columns starting at `col_offset` of rows whose full-row
/// statistics are in `stats` ([N, 3] as produced by the forward) and whose upstream gradient is
/// `grad` ([N]).
pub(crate) fn token_grad(
    logits: &Tensor,
    targets: &Tensor,
    grad: &Tensor,
    stats: &Tensor,
    col_offset: usize,
) -> Result<Tensor> {
    let gs = Tensor::cat(
        &[
            &grad.to_dtype(DType::F32)?.unsqueeze(1)?,
            &stats.narrow(1, 1, 2)?,
        ],
        1,
    )?;
    logits.contiguous()?.apply_op3_no_bwd(
        &targets.contiguous()?,
        &gs.contiguous()?,
        &TokenLogprobGrad { col_offset },
    )
}

/// Folds an optional mask into the targets as [`IGNORE`], so the kernels test one thing per row.
pub(crate) fn masked_targets(targets: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    if targets.dtype() != DType::U32 {
        bail!("targets must be u32, got {:?}", targets.dtype());
    }
    let targets = targets.contiguous()?;
    match mask {
        None => Ok(targets),
        Some(mask) => {
            if mask.dims() != targets.dims() {
                bail!(
                    "mask shape {:?} differs from targets shape {:?}",
                    mask.dims(),
                    targets.dims()
                );
            }
            let keep = mask.ne(&mask.zeros_like()?)?;
            let ignore = Tensor::full(IGNORE, targets.shape(), targets.device())?;
            keep.where_cond(&targets, &ignore)?.contiguous()
        }
    }
}

/// Checks shapes and target range; returns (N, V).
fn check(l_logits: &Layout, targets: &[u32]) -> Result<(usize, usize)> {
    let (n, v) = l_logits.shape().dims2()?;
    if targets.len() != n {
        bail!("{n} rows of logits but {} targets", targets.len());
    }
    if let Some(&bad) = targets.iter().find(|&&t| t != IGNORE && t as usize >= v) {
        bail!("target {bad} out of range for a vocabulary of {v}");
    }
    Ok((n, v))
}

fn contiguous<'a, T>(data: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("fused log-prob kernels need contiguous inputs"),
    }
}

struct TokenLogprob;

impl CustomOp2 for TokenLogprob {
    fn name(&self) -> &'static str {
        "token-logprob"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let targets = contiguous(s2.as_slice::<u32>()?, l2)?;
        let (n, v) = check(l1, targets)?;
        let out = match s1 {
            CpuStorage::F32(d) => cpu::forward(contiguous(d, l1)?, targets, v),
            CpuStorage::BF16(d) => cpu::forward(contiguous(d, l1)?, targets, v),
            CpuStorage::F16(d) => cpu::forward(contiguous(d, l1)?, targets, v),
            other => bail!(
                "token-logprob: unsupported logits dtype {:?}",
                other.dtype()
            ),
        };
        Ok((CpuStorage::F32(out), Shape::from((n, 3))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::forward(s1, l1, s2, l2)
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad_res.narrow(1, 0, 1)?.squeeze(1)?;
        Ok((Some(token_grad(logits, targets, &grad, res, 0)?), None))
    }
}

/// Backward kernel as an op of its own (no graph): logits, targets, `[g, max, lse]` rows.
struct TokenLogprobGrad {
    col_offset: usize,
}

impl CustomOp3 for TokenLogprobGrad {
    fn name(&self) -> &'static str {
        "token-logprob-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let targets = contiguous(s2.as_slice::<u32>()?, l2)?;
        let (n, v) = l1.shape().dims2()?;
        if targets.len() != n || l3.shape().dims() != [n, 3] {
            bail!(
                "token-logprob-grad: shapes {:?} {:?} {:?}",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        let gs = contiguous(s3.as_slice::<f32>()?, l3)?;
        let c = self.col_offset;
        let out = match s1 {
            CpuStorage::F32(d) => {
                CpuStorage::F32(cpu::backward(contiguous(d, l1)?, targets, gs, v, c))
            }
            CpuStorage::BF16(d) => {
                CpuStorage::BF16(cpu::backward(contiguous(d, l1)?, targets, gs, v, c))
            }
            CpuStorage::F16(d) => {
                CpuStorage::F16(cpu::backward(contiguous(d, l1)?, targets, gs, v, c))
            }
            other => bail!(
                "token-logprob-grad: unsupported logits dtype {:?}",
                other.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::backward(s1, l1, s2, l2, s3, l3, self.col_offset)
    }
}

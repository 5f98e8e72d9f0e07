//! The plain candle composition the fused ops replace (`log_softmax → gather`, as in
//! `candle_nn::ops::log_softmax`), for tests and benchmarks.

use candle_core::{D, DType, Result, Tensor};

use crate::IGNORE;

/// log p(target) per row via log_softmax over [N, V] then gather; masked rows (mask 0 or target
/// [`IGNORE`]) give 0. Differentiable through candle's own ops.
pub fn token_logprobs(logits: &Tensor, targets: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?;
    let diff = logits.broadcast_sub(&max)?;
    let sum_exp = diff.exp()?.sum_keepdim(D::Minus1)?;
    let log_sm = diff.broadcast_sub(&sum_exp.log()?)?;
    let ignored = targets.eq(IGNORE)?;
    let safe = ignored.where_cond(&targets.zeros_like()?, targets)?;
    let picked = log_sm.gather(&safe.unsqueeze(1)?, 1)?.squeeze(1)?;
    let mut keep = ignored.eq(0u8)?.to_dtype(picked.dtype())?;
    if let Some(mask) = mask {
        keep = (keep * mask.ne(&mask.zeros_like()?)?.to_dtype(picked.dtype())?)?;
    }
    (picked * keep)?.to_dtype(DType::F32)
}

/// The composition for the linear case: logits = hidden · weightᵀ materialized, then as above.
pub fn linear_token_logprobs(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    token_logprobs(&hidden.matmul(&weight.t()?)?, targets, mask)
}

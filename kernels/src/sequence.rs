//! Masked per-sequence sums over a [B, T] layout: the shape a sequence-level loss (SPIN, DPO)
//! consumes. Thin wrappers: flatten to rows, run the fused op (masked rows give 0), sum over T.

use candle_core::{Result, Tensor};

use crate::{linear_token_logprobs, token_logprobs};

/// Σₜ mask[b, t] · log p(targets[b, t]) for logits [B, T, V] → [B] (f32), differentiable.
pub fn sequence_logprobs(
    logits: &Tensor,
    targets: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    let rows = token_logprobs(
        &logits.reshape((b * t, v))?,
        &targets.reshape(b * t)?,
        mask.map(|m| m.reshape(b * t)).transpose()?.as_ref(),
    )?;
    rows.reshape((b, t))?.sum(1)
}

/// The same from hidden states [B, T, H] and the output weight [V, H], through
/// [`linear_token_logprobs`].
pub fn linear_sequence_logprobs(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    mask: Option<&Tensor>,
    chunk_rows: usize,
) -> Result<Tensor> {
    let (b, t, h) = hidden.dims3()?;
    let rows = linear_token_logprobs(
        &hidden.reshape((b * t, h))?,
        weight,
        &targets.reshape(b * t)?,
        mask.map(|m| m.reshape(b * t)).transpose()?.as_ref(),
        chunk_rows,
    )?;
    rows.reshape((b, t))?.sum(1)
}

/// Policy-minus-reference sequence log-ratio: [`sequence_logprobs`] − `reference` ([B], the
/// opponent's log-probs recorded at generation time, so no reference model is held).
pub fn sequence_log_ratios(
    logits: &Tensor,
    targets: &Tensor,
    mask: Option<&Tensor>,
    reference: &Tensor,
) -> Result<Tensor> {
    sequence_logprobs(logits, targets, mask)? - reference.to_dtype(candle_core::DType::F32)?
}

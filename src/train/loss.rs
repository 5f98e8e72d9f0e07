//! Training losses on summed response log-probs ([`crate::model::logprob`]). Each returns the loss
//! (a scalar tensor to call `backward` on) and plain-number metrics.
//!
//! The pair losses all score `z = β·[(log pθ(y⁺|x) − log p_ref(y⁺|x)) − (log pθ(y⁻|x) − log p_ref(y⁻|x))]`
//! with y⁺ the chosen answer (the gold SQL) and y⁻ the rejected one (the opponent's generation):
//! * SPIN / ExSPIN: `−log σ(z)` with β = λ and the reference the previous iterate θt, i.e. the
//!   issue's `−log σ(λ·[log pθ(y|x) − log pθt(y|x)] − λ·[log pθ(y_w|x) − log pθt(y_w|x)])`, y the
//!   gold and y_w the generated answer. ExSPIN differs from SPIN in which pairs it is given
//!   (only generations that execution proved wrong), not in the formula.
//! * DPO: the same formula with the reference the frozen SFT model.
//! * Hinge: `max(0, 1 − z)` (SLiC-style).
//!
//! [`with_gold_nll`] adds `α · mean_i(−log pθ(y⁺_i|x_i) / |y⁺_i|)` to any of them: a pair loss
//! alone is satisfied by pushing both answers down, the rejected one faster, and on a real model
//! that takes the gold's likelihood (and greedy accuracy) with it (iterative RPO, Pang et al.
//! 2024, adds this term for the same reason).
//!
//! Reference log-probs are inputs (computed by the opponent at generation time), so training never
//! holds a second model.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::logprob::ResponseLogprobs;
use crate::model::{ModelError, Result};

/// Numbers to log for one loss evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub loss: f32,
    /// Mean β·(log pθ − log p_ref) of the chosen / rejected answers.
    pub chosen_reward: f32,
    pub rejected_reward: f32,
    /// Mean of chosen − rejected reward.
    pub margin: f32,
    /// Fraction of pairs with a positive margin.
    pub accuracy: f32,
    /// Mean per-token negative log-likelihood of the gold answers, when the loss includes it
    /// ([`with_gold_nll`]; 0 otherwise).
    #[serde(default)]
    pub gold_nll: f32,
    /// Pairs (or sequences for SFT) in the batch.
    pub n: usize,
    /// Response tokens (SFT).
    pub tokens: usize,
}

/// A loss and its metrics.
#[derive(Debug, Clone)]
pub struct LossOutput {
    pub loss: Tensor,
    pub metrics: Metrics,
}

/// Supervised fine-tuning: mean negative log-likelihood per response token.
pub fn sft_loss(lp: &ResponseLogprobs) -> Result<LossOutput> {
    let tokens: usize = lp.n_tokens.iter().sum();
    if tokens == 0 {
        return Err(ModelError::invalid(
            "sft_loss",
            "no response tokens in the batch",
        ));
    }
    let loss = (lp.sum.sum_all()?.neg()? / tokens as f64)?;
    let value = loss.to_scalar::<f32>()?;
    Ok(LossOutput {
        loss,
        metrics: Metrics {
            loss: value,
            n: lp.n_tokens.len(),
            tokens,
            ..Metrics::default()
        },
    })
}

/// Which function of the margin z a pair loss takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairKind {
    /// `−log σ(z)` (SPIN, ExSPIN, DPO).
    Logistic,
    /// `max(0, 1 − z)`.
    Hinge,
}

/// Policy log-probs (tensors, differentiable) and reference log-probs (plain numbers) of a batch of
/// (chosen, rejected) pairs, all summed over response tokens.
#[derive(Debug, Clone, Copy)]
pub struct PairLogprobs<'a> {
    pub policy_chosen: &'a Tensor,
    pub policy_rejected: &'a Tensor,
    pub ref_chosen: &'a [f32],
    pub ref_rejected: &'a [f32],
}

/// `−log σ(z)` computed stably as `relu(−z) + log(1 + e^{−|z|})`.
fn neg_log_sigmoid(z: &Tensor) -> candle_core::Result<Tensor> {
    let a = z.neg()?.relu()?;
    let b = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
    a + b
}

/// The mean pair loss of `kind` at scale `beta`.
pub fn pair_loss(kind: PairKind, beta: f64, lp: PairLogprobs<'_>) -> Result<LossOutput> {
    let n = lp.ref_chosen.len();
    if n == 0
        || lp.ref_rejected.len() != n
        || lp.policy_chosen.dims1()? != n
        || lp.policy_rejected.dims1()? != n
    {
        return Err(ModelError::invalid(
            "pair_loss",
            format!(
                "needs the same non-zero number of chosen and rejected log-probs (policy {} / {}, reference {} / {})",
                lp.policy_chosen.elem_count(),
                lp.policy_rejected.elem_count(),
                n,
                lp.ref_rejected.len()
            ),
        ));
    }
    let dev: &Device = lp.policy_chosen.device();
    let rc = Tensor::new(lp.ref_chosen, dev)?;
    let rr = Tensor::new(lp.ref_rejected, dev)?;
    let chosen = ((lp.policy_chosen - rc)? * beta)?;
    let rejected = ((lp.policy_rejected - rr)? * beta)?;
    let z = (&chosen - &rejected)?;
    let per = match kind {
        PairKind::Logistic => neg_log_sigmoid(&z)?,
        PairKind::Hinge => (z.neg()? + 1.0)?.relu()?,
    };
    let loss = per.mean_all()?;
    let cv: Vec<f32> = chosen.to_vec1()?;
    let rv: Vec<f32> = rejected.to_vec1()?;
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let margins: Vec<f32> = cv.iter().zip(&rv).map(|(c, r)| c - r).collect();
    let metrics = Metrics {
        loss: loss.to_scalar::<f32>()?,
        chosen_reward: mean(&cv),
        rejected_reward: mean(&rv),
        margin: mean(&margins),
        accuracy: margins.iter().filter(|&&m| m > 0.0).count() as f32 / n as f32,
        n,
        ..Metrics::default()
    };
    Ok(LossOutput { loss, metrics })
}

/// `out` (a pair loss) plus `weight` × the mean over pairs of the gold answer's negative
/// log-likelihood per token, `policy_chosen` holding each pair's summed gold log-prob and
/// `gold_tokens` its gold answer's length. The metrics' `loss` becomes the total and `gold_nll`
/// the mean per-token NLL; the rewards and margin stay the pair loss's.
pub fn with_gold_nll(
    out: LossOutput,
    weight: f64,
    policy_chosen: &Tensor,
    gold_tokens: &[usize],
) -> Result<LossOutput> {
    let n = gold_tokens.len();
    if n == 0 || policy_chosen.dims1()? != n || gold_tokens.contains(&0) {
        return Err(ModelError::invalid(
            "with_gold_nll",
            format!(
                "needs a non-empty gold answer per pair ({} log-probs, token counts {:?})",
                policy_chosen.elem_count(),
                gold_tokens
            ),
        ));
    }
    let inverse_lengths: Vec<f32> = gold_tokens.iter().map(|&t| 1.0 / t as f32).collect();
    let per_token = Tensor::new(inverse_lengths, policy_chosen.device())?;
    let nll = (policy_chosen * per_token)?.neg()?.mean_all()?;
    let loss = (&out.loss + (&nll * weight)?)?;
    let metrics = Metrics {
        loss: loss.to_scalar::<f32>()?,
        gold_nll: nll.to_scalar::<f32>()?,
        ..out.metrics
    };
    Ok(LossOutput { loss, metrics })
}

/// SPIN's loss (λ = `lambda`, reference = the previous iterate θt). ExSPIN uses it too, on the
/// pairs whose rejected answer execution proved wrong.
pub fn spin_loss(lambda: f64, lp: PairLogprobs<'_>) -> Result<LossOutput> {
    pair_loss(PairKind::Logistic, lambda, lp)
}

/// DPO's loss (reference = the frozen SFT model).
pub fn dpo_loss(beta: f64, lp: PairLogprobs<'_>) -> Result<LossOutput> {
    pair_loss(PairKind::Logistic, beta, lp)
}

/// The hinge variant.
pub fn hinge_loss(beta: f64, lp: PairLogprobs<'_>) -> Result<LossOutput> {
    pair_loss(PairKind::Hinge, beta, lp)
}

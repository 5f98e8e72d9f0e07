//! GRPO with an execution reward: the method today's best small text-to-SQL models train with
//! (FINER-SQL, SQL-R1, Arctic-Text2SQL-R1), as the baseline ExSPIN is compared against.
//!
//! For one prompt, G samples o_1..o_G of the opponent (the policy at generation time, θ_old):
//! * reward: 1 when the result equals gold, 0.1 when the SQL executes, 0 otherwise
//!   ([`execution_reward`]);
//! * advantage: the group-normalized reward `(r_i − mean r) / std r` ([`group_advantages`]);
//!   a group whose rewards are all equal teaches nothing (advantage 0);
//! * loss: `−(1/G) Σ_i [min(ρ_i·A_i, clip(ρ_i, 1−ε, 1+ε)·A_i) − β·KL_i]` ([`grpo_loss`]).
//!
//! The importance ratio is per sequence and length-normalized,
//! `ρ_i = exp((log pθ(o_i|x) − log pθ_old(o_i|x)) / |o_i|)`, the geometric mean of the token
//! ratios (GSPO's sequence-level ratio): the learner computes summed response log-probs, and
//! θ_old's are the ones the opponent records while decoding, so no token-level log-probs are
//! stored. KL_i, to version 0 when β > 0, is the k3 estimator on the same per-token scale:
//! `exp(d) − d − 1` with `d = (log p_ref(o_i|x) − log pθ(o_i|x)) / |o_i|`, never negative and 0
//! when the two agree.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::loss::{LossOutput, Metrics};
use crate::eval::Verdict;
use crate::model::logprob::ResponseLogprobs;
use crate::model::{ModelError, Result};

/// The reward of a generation whose result equals gold.
pub const REWARD_CORRECT: f32 = 1.0;
/// The reward of a generation that executes but returns another result.
pub const REWARD_EXECUTES: f32 = 0.1;

/// The execution reward of one judged generation. A failed gold (the example cannot be judged)
/// rewards nothing; callers drop such examples before they form a group.
pub fn execution_reward(verdict: &Verdict) -> f32 {
    match verdict {
        Verdict::Correct => REWARD_CORRECT,
        Verdict::WrongResult => REWARD_EXECUTES,
        Verdict::Error { .. } | Verdict::Timeout | Verdict::GoldFailed => 0.0,
    }
}

/// Group-normalized advantages `(r_i − mean) / std` (population std over the group); all zeros
/// when the rewards do not differ.
pub fn group_advantages(rewards: &[f32]) -> Vec<f32> {
    if rewards.is_empty() {
        return Vec::new();
    }
    let n = rewards.len() as f64;
    let mean = rewards.iter().map(|&r| r as f64).sum::<f64>() / n;
    let var = rewards
        .iter()
        .map(|&r| (r as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    if std < 1e-6 {
        return vec![0.0; rewards.len()];
    }
    rewards
        .iter()
        .map(|&r| ((r as f64 - mean) / std) as f32)
        .collect()
}

/// GRPO's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GrpoSettings {
    /// ε of the clipped ratio.
    pub clip: f64,
    /// β of the KL to version 0 (0: no KL term, and no reference log-probs needed).
    pub kl_beta: f64,
}

impl Default for GrpoSettings {
    fn default() -> Self {
        GrpoSettings {
            clip: 0.2,
            kl_beta: 0.0,
        }
    }
}

/// GRPO's loss over one or more groups, flattened: `lp` the policy's summed log-probs of the G
/// samples (with the graph), `old` θ_old's (recorded while generating), `reference` version 0's
/// (read only when `kl_beta > 0`), `advantages` from [`group_advantages`] per group. Metrics:
/// `loss`, `n` samples, `tokens`, `accuracy` = the share of samples whose ratio was clipped.
pub fn grpo_loss(
    lp: &ResponseLogprobs,
    old: &[f32],
    reference: Option<&[f32]>,
    advantages: &[f32],
    settings: &GrpoSettings,
) -> Result<LossOutput> {
    let g = lp.n_tokens.len();
    if g == 0 || old.len() != g || advantages.len() != g {
        return Err(ModelError::invalid(
            "grpo_loss",
            format!(
                "{g} samples, {} old log-probs, {} advantages: give one of each per sample",
                old.len(),
                advantages.len()
            ),
        ));
    }
    if lp.n_tokens.contains(&0) {
        return Err(ModelError::invalid(
            "grpo_loss",
            "a sample without response tokens",
        ));
    }
    let dev = lp.sum.device();
    let lengths: Vec<f32> = lp.n_tokens.iter().map(|&n| n as f32).collect();
    let lengths = Tensor::from_vec(lengths, g, dev)?;
    let old_t = Tensor::from_vec(old.to_vec(), g, dev)?;
    let adv = Tensor::from_vec(advantages.to_vec(), g, dev)?;
    let log_ratio = ((&lp.sum - &old_t)? / &lengths)?;
    let ratio = log_ratio.exp()?;
    let (lo, hi) = (1.0 - settings.clip, 1.0 + settings.clip);
    let clipped = ratio.clamp(lo as f32, hi as f32)?;
    let surrogate = (&ratio * &adv)?.minimum(&(&clipped * &adv)?)?;
    let objective = if settings.kl_beta > 0.0 {
        let reference = reference.filter(|r| r.len() == g).ok_or_else(|| {
            ModelError::invalid(
                "grpo_loss",
                "kl_beta > 0 needs version 0's log-prob of every sample",
            )
        })?;
        let ref_t = Tensor::from_vec(reference.to_vec(), g, dev)?;
        let d = ((&ref_t - &lp.sum)? / &lengths)?;
        let kl = ((d.exp()? - &d)? - 1.0)?;
        (surrogate - (kl * settings.kl_beta)?)?
    } else {
        surrogate
    };
    let loss = (objective.sum_all()?.neg()? / g as f64)?;
    let ratios: Vec<f32> = ratio.to_vec1()?;
    let clipped_share = ratios
        .iter()
        .filter(|&&r| (r as f64) < lo || (r as f64) > hi)
        .count() as f32
        / g as f32;
    Ok(LossOutput {
        metrics: Metrics {
            loss: loss.to_scalar::<f32>()?,
            accuracy: clipped_share,
            n: g,
            tokens: lp.n_tokens.iter().sum(),
            ..Metrics::default()
        },
        loss,
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn rewards_follow_execution() {
        assert_eq!(execution_reward(&Verdict::Correct), 1.0);
        assert_eq!(execution_reward(&Verdict::WrongResult), 0.1);
        let error = Verdict::Error {
            kind: "sql_error".into(),
        };
        assert_eq!(execution_reward(&error), 0.0);
        assert_eq!(execution_reward(&Verdict::Timeout), 0.0);
    }

    #[test]
    fn advantages_are_normalized_within_the_group() {
        // Rewards 1, 0, 0, 0.1: mean 0.275; deviations 0.725, -0.275, -0.275, -0.175; their
        // squares sum to 0.7075, so the population std is sqrt(0.176875) = 0.4205651.
        let a = group_advantages(&[1.0, 0.0, 0.0, 0.1]);
        let std = 0.176_875f32.sqrt();
        for (got, dev) in a.iter().zip([0.725f32, -0.275, -0.275, -0.175]) {
            assert!(close(*got, dev / std), "{got} vs {}", dev / std);
        }
        assert!(close(a.iter().sum::<f32>(), 0.0));
        // Nothing to learn from a group that agrees.
        assert_eq!(group_advantages(&[0.1, 0.1, 0.1]), vec![0.0; 3]);
        assert!(group_advantages(&[]).is_empty());
    }

    /// The policy's log-probs as a Var, so the loss's gradient can be read back.
    fn policy(sums: &[f32], tokens: &[usize]) -> (Var, ResponseLogprobs) {
        let v = Var::from_vec(sums.to_vec(), sums.len(), &Device::Cpu).unwrap();
        let lp = ResponseLogprobs {
            sum: v.as_tensor().clone(),
            n_tokens: tokens.to_vec(),
        };
        (v, lp)
    }

    #[test]
    fn at_the_generating_policy_the_loss_is_minus_the_mean_advantage_and_its_gradient_is_per_token()
    {
        // ρ = 1 for every sample: loss = -(1/G) Σ A_i, and d loss / d log pθ(o_i) = -A_i/(G·|o_i|).
        let (v, lp) = policy(&[-4.0, -6.0], &[4, 2]);
        let adv = [1.0f32, -0.5];
        let out = grpo_loss(&lp, &[-4.0, -6.0], None, &adv, &GrpoSettings::default()).unwrap();
        assert!(close(out.metrics.loss, -(1.0 - 0.5) / 2.0));
        assert_eq!(out.metrics.accuracy, 0.0);
        let grads = out.loss.backward().unwrap();
        let g: Vec<f32> = grads.get(v.as_tensor()).unwrap().to_vec1().unwrap();
        assert!(close(g[0], -1.0 / (2.0 * 4.0)), "{g:?}");
        assert!(close(g[1], 0.5 / (2.0 * 2.0)), "{g:?}");
    }

    #[test]
    fn the_ratio_is_clipped_only_where_it_would_help_the_objective() {
        // Per-token log-ratio 0.5 (sums differ by 1 over 2 tokens): ρ = e^0.5 = 1.6487 > 1.2.
        // Positive advantage: min(ρA, 1.2A) = 1.2A, constant, so no gradient.
        // Negative advantage: min(ρA, 1.2A) = ρA, the unclipped term, so the gradient stays.
        let rho = 0.5f32.exp();
        let (v, lp) = policy(&[-1.0, -1.0], &[2, 2]);
        let adv = [2.0f32, -2.0];
        let out = grpo_loss(&lp, &[-2.0, -2.0], None, &adv, &GrpoSettings::default()).unwrap();
        let expected = -(1.2 * 2.0 + rho * -2.0) / 2.0;
        assert!(
            close(out.metrics.loss, expected),
            "{} vs {expected}",
            out.metrics.loss
        );
        assert_eq!(out.metrics.accuracy, 1.0);
        let grads = out.loss.backward().unwrap();
        let g: Vec<f32> = grads.get(v.as_tensor()).unwrap().to_vec1().unwrap();
        assert_eq!(g[0], 0.0);
        // d/d s of -(1/2)·exp((s - old)/2)·(-2) = exp(...)/2 · ... = ρ·2/(2·2).
        assert!(close(g[1], rho * 2.0 / (2.0 * 2.0)), "{g:?}");
    }

    #[test]
    fn the_kl_to_version_0_is_k3_per_token_and_needs_its_log_probs() {
        // d = (ref - logp)/|o| = (-3 - -1)/2 = -1: KL = e^-1 + 1 - 1 = e^-1.
        let (_, lp) = policy(&[-1.0], &[2]);
        let s = GrpoSettings {
            clip: 0.2,
            kl_beta: 0.5,
        };
        let out = grpo_loss(&lp, &[-1.0], Some(&[-3.0]), &[0.0], &s).unwrap();
        assert!(
            close(out.metrics.loss, 0.5 * (-1.0f32).exp()),
            "{}",
            out.metrics.loss
        );
        // The same log-probs as version 0: no KL.
        let out = grpo_loss(&lp, &[-1.0], Some(&[-1.0]), &[0.0], &s).unwrap();
        assert!(close(out.metrics.loss, 0.0));
        let err = grpo_loss(&lp, &[-1.0], None, &[0.0], &s)
            .unwrap_err()
            .to_string();
        assert!(err.contains("version 0"), "{err}");
    }

    #[test]
    fn mismatched_inputs_are_refused_in_words() {
        let (_, lp) = policy(&[-1.0, -2.0], &[1, 1]);
        let err = grpo_loss(&lp, &[-1.0], None, &[0.0, 0.0], &GrpoSettings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("one of each per sample"), "{err}");
    }
}

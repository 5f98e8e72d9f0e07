//! The gradients of a pair loss over a batch of (prompt, chosen, rejected) token triples, in
//! either layout — per pair (each pair's prompt runs for its chosen and for its rejected row) or
//! prompt-shared ([`crate::model::shared_prompt`]: a prompt runs once for all its answers) —
//! with or without activation checkpointing. The learner and `exspin bench pairs` both go
//! through here; the loss per pair is the same in every layout.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use super::loss::LossOutput;
use super::prompt_groups::{PairTokens, PromptGroups};
use crate::model::Result;
use crate::model::decoder::Model;
use crate::model::logprob::{Pair, ResponseLogprobs, response_logprobs};
use crate::model::recompute::backward_checkpointed;
use crate::model::shared_prompt::{backward_checkpointed_shared, shared_prompt_logprobs};

/// How a batch of pairs runs through the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairLayout {
    /// A row per answer: each pair's prompt runs twice (the baseline).
    PerPair,
    /// Each distinct prompt runs once for its gold and every negative.
    SharedPrompt,
}

/// The loss `pair_loss` builds from per-pair (chosen, rejected) policy log-probs, and its
/// gradients for `params`, the loss multiplied by `scale` first (the optimizer's
/// micro-batch scale).
#[allow(clippy::too_many_arguments)]
pub fn pair_gradients(
    model: &Model,
    pad: u32,
    pairs: &[PairTokens],
    layout: PairLayout,
    checkpointing: bool,
    params: &[Var],
    scale: f64,
    pair_loss: impl Fn(&Tensor, &Tensor) -> Result<LossOutput>,
) -> Result<(LossOutput, GradStore)> {
    let n = pairs.len();
    let scaled =
        |out: LossOutput| -> Result<(Tensor, LossOutput)> { Ok(((&out.loss * scale)?, out)) };
    match layout {
        PairLayout::PerPair => {
            let rows: Vec<Pair> = pairs
                .iter()
                .map(|p| Pair {
                    prompt: p.prompt.clone(),
                    response: p.chosen.clone(),
                })
                .chain(pairs.iter().map(|p| Pair {
                    prompt: p.prompt.clone(),
                    response: p.rejected.clone(),
                }))
                .collect();
            let loss_of = |lp: &ResponseLogprobs| {
                pair_loss(&lp.sum.narrow(0, 0, n)?, &lp.sum.narrow(0, n, n)?)
            };
            if checkpointing {
                backward_checkpointed(model, &rows, pad, params, |lp| scaled(loss_of(lp)?))
            } else {
                let (loss, out) = scaled(loss_of(&response_logprobs(model, &rows, pad)?)?)?;
                Ok((out, loss.backward()?))
            }
        }
        PairLayout::SharedPrompt => {
            let g = PromptGroups::new(pairs);
            let loss_of = |lp: &ResponseLogprobs| {
                let (pc, pr) = g.split(&lp.sum)?;
                pair_loss(&pc, &pr)
            };
            if checkpointing {
                backward_checkpointed_shared(model, &g.prompts, &g.responses, pad, params, |lp| {
                    scaled(loss_of(lp)?)
                })
            } else {
                let lp = shared_prompt_logprobs(model, &g.prompts, &g.responses, pad)?;
                let (loss, out) = scaled(loss_of(&lp)?)?;
                Ok((out, loss.backward()?))
            }
        }
    }
}

//! Prompt-shared log-probs for training: a prompt group (the gold answer and its negatives)
//! runs its prompt once, forward and backward, and every response attends to that prompt's keys
//! and values with their graph. A per-pair batch runs the ~1k-token Spider prompt twice per pair
//! (gold and negative) for ~40-token answers; here once per prompt however many pairs share it.
//!
//! The layout: prompts left-padded (each one's last token sits at the last position and predicts
//! its responses' first token), responses right-padded after their prompt's cached positions
//! (position j predicts token j + 1). The sums equal [`super::logprob::response_logprobs`] on
//! (prompt, response) rows, and so do their gradients (tests/model.rs).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::decoder::{Model, PassContext, pad_batch};
use super::layered::{LayeredBatch, forward_logprobs};
use super::logprob::ResponseLogprobs;
use super::{ModelError, Result};

/// Prompts and responses, each response naming its prompt by index.
pub(crate) struct SharedPromptBatch {
    prompt_ids: Tensor,
    ctx_prompts: PassContext,
    response_ids: Tensor,
    ctx_responses: PassContext,
    /// (b_r,) u32: each response row's prompt row.
    owners: Tensor,
    /// (n,) u32: flat indices into [prompts' last positions (b_p); responses' positions
    /// (b_r · t_r)] of the hidden states that predict each response token.
    predictors: Tensor,
    targets: Tensor,
    /// (b_r, n) f32: 1 where token j belongs to response r.
    owner_of_token: Tensor,
    n_tokens: Vec<usize>,
}

impl SharedPromptBatch {
    pub(crate) fn new(
        model: &Model,
        prompts: &[Vec<u32>],
        responses: &[(usize, Vec<u32>)],
        pad: u32,
    ) -> Result<Self> {
        if responses.is_empty() {
            return Err(ModelError::invalid("logprob", "empty batch"));
        }
        for (i, (p, r)) in responses.iter().enumerate() {
            if r.is_empty() || prompts.get(*p).is_none_or(|ids| ids.is_empty()) {
                return Err(ModelError::invalid(
                    "logprob",
                    format!(
                        "response {i}: needs a prompt (index {p} of {}) and a response of at least one token each",
                        prompts.len()
                    ),
                ));
            }
        }
        let device = model.device();
        let (prompt_ids, prompt_mask) = pad_batch(prompts, pad, true, device)?;
        let (ctx_prompts, full) = model.pass_context(&prompt_mask, &[])?;
        // All of each response's tokens run (the last one's output is unused) so that a batch of
        // one-token answers still has a response part.
        let rows: Vec<Vec<u32>> = responses.iter().map(|(_, r)| r.clone()).collect();
        let (response_ids, response_mask) = pad_batch(&rows, pad, false, device)?;
        let cached: Vec<Vec<u8>> = responses.iter().map(|(p, _)| full[*p].clone()).collect();
        let (ctx_responses, _) = model.pass_context(&response_mask, &cached)?;
        let b_p = prompts.len();
        let t_r = response_ids.dims2()?.1;
        let n: usize = rows.iter().map(Vec::len).sum();
        let (mut predictors, mut targets) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut owner_of_token = vec![0f32; responses.len() * n];
        for (r, (p, tokens)) in responses.iter().enumerate() {
            for (j, &tok) in tokens.iter().enumerate() {
                owner_of_token[r * n + predictors.len()] = 1.0;
                predictors.push(if j == 0 {
                    *p as u32
                } else {
                    (b_p + r * t_r + j - 1) as u32
                });
                targets.push(tok);
            }
        }
        let owners: Vec<u32> = responses.iter().map(|(p, _)| *p as u32).collect();
        Ok(SharedPromptBatch {
            prompt_ids,
            ctx_prompts,
            response_ids,
            ctx_responses,
            owners: Tensor::from_vec(owners, responses.len(), device)?,
            predictors: Tensor::from_vec(predictors, n, device)?,
            targets: Tensor::from_vec(targets, n, device)?,
            owner_of_token: Tensor::from_vec(owner_of_token, (responses.len(), n), device)?,
            n_tokens: rows.iter().map(Vec::len).collect(),
        })
    }
}

impl LayeredBatch for SharedPromptBatch {
    fn embed(&self, model: &Model) -> Result<Vec<Tensor>> {
        Ok(vec![
            model.embed_tokens(&self.prompt_ids)?,
            model.embed_tokens(&self.response_ids)?,
        ])
    }

    fn layer(&self, model: &Model, li: usize, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let (p, r) = model.layer_forward_shared(
            li,
            &xs[0],
            &self.ctx_prompts,
            &xs[1],
            &self.ctx_responses,
            &self.owners,
        )?;
        Ok(vec![p, r])
    }

    fn logprobs(&self, model: &Model, top: &[Tensor]) -> Result<ResponseLogprobs> {
        let (b_p, t_p, h) = top[0].dims3()?;
        let (b_r, t_r, _) = top[1].dims3()?;
        let last = model
            .final_norm(&top[0].narrow(1, t_p - 1, 1)?)?
            .reshape((b_p, h))?;
        let resp = model.final_norm(&top[1])?.reshape((b_r * t_r, h))?;
        let picked = Tensor::cat(&[&last, &resp], 0)?.index_select(&self.predictors, 0)?;
        let lp = model.head_logprobs(&picked, &self.targets)?;
        let sum = self.owner_of_token.matmul(&lp.unsqueeze(1)?)?.squeeze(1)?;
        Ok(ResponseLogprobs {
            sum,
            n_tokens: self.n_tokens.clone(),
        })
    }
}

/// Σ log p(response | prompt) per response, differentiable, each prompt run once for all the
/// responses that name it. `responses` are (prompt index, tokens); the result follows their order.
pub fn shared_prompt_logprobs(
    model: &Model,
    prompts: &[Vec<u32>],
    responses: &[(usize, Vec<u32>)],
    pad: u32,
) -> Result<ResponseLogprobs> {
    forward_logprobs(
        model,
        &SharedPromptBatch::new(model, prompts, responses, pad)?,
    )
}

/// [`shared_prompt_logprobs`] with activation checkpointing: `loss_of`'s report and the gradients
/// of its loss for `params` (as [`super::recompute::backward_checkpointed`]).
pub fn backward_checkpointed_shared<T>(
    model: &Model,
    prompts: &[Vec<u32>],
    responses: &[(usize, Vec<u32>)],
    pad: u32,
    params: &[Var],
    loss_of: impl FnOnce(&ResponseLogprobs) -> Result<(Tensor, T)>,
) -> Result<(T, GradStore)> {
    let batch = SharedPromptBatch::new(model, prompts, responses, pad)?;
    super::recompute::checkpointed(model, &batch, params, loss_of)
}

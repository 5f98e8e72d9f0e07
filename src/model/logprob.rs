//! Summed log p(response | prompt) over the response tokens of a padded batch of pairs: the
//! quantity every loss here is built from. Differentiable: the result carries the graph back to
//! the weights.

use candle_core::{D, Tensor};

use super::decoder::{Model, pad_batch};
use super::{ModelError, Result};

/// One (prompt, response) pair in token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
}

/// The log-probs of a batch of pairs.
#[derive(Debug, Clone)]
pub struct ResponseLogprobs {
    /// (b,) f32: Σ log p(y_t | x, y_<t) over each row's response tokens.
    pub sum: Tensor,
    /// Response tokens per row (to average per token where a loss wants it).
    pub n_tokens: Vec<usize>,
}

/// log p(target) for each position: `logits` (…, vocab), `targets` (…) u32 → (…) f32.
///
/// Runs the fused op of `exspin-kernels` (one streaming pass per row, backward without storing
/// the softmax) instead of log-softmax over the whole vocabulary followed by a gather;
/// [`token_logprobs_reference`] is that plain composition, kept for the tests.
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let dims = logits.dims();
    let (lead, vocab) = match dims.split_last() {
        Some((&vocab, lead)) if !lead.is_empty() => (lead.to_vec(), vocab),
        _ => candle_core::bail!("token_logprobs: logits must be (…, vocab), got {dims:?}"),
    };
    let rows: usize = lead.iter().product();
    let flat = logits.contiguous()?.reshape((rows, vocab))?;
    let targets = targets.contiguous()?.reshape(rows)?;
    exspin_kernels::token_logprobs(&flat, &targets, None)?.reshape(lead)
}

/// The plain composition [`token_logprobs`] replaces (log-softmax, then gather).
pub fn token_logprobs_reference(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let lsm = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    lsm.gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)
}

/// Σ log p(response | prompt) per pair. Rows are right-padded with `pad`; the LM head runs only on
/// the positions that predict a response token (for Spider prompts of ~1k tokens, ~40-token
/// answers and a vocabulary of 151k, the logits of every position would take ~0.6 GB a row).
pub fn response_logprobs(model: &Model, pairs: &[Pair], pad: u32) -> Result<ResponseLogprobs> {
    let batch = PaddedPairs::new(pairs, pad, model.device())?;
    let hidden = model.forward_hidden(&batch.ids, &batch.mask, None)?;
    batch.logprobs(model, &hidden)
}

/// Σ log p(response | prompt) for responses that share prompts, without running a prompt more
/// than once: the prompts are prefilled together (left-padded) into a KV cache, each prompt's
/// cache rows are forked into its responses' rows, and only the response tokens run after that.
/// `responses` are (prompt index, tokens); the result follows their order. For a forward-only
/// model (a detached view): the cache keeps no graph. The prompts' common start (a database's
/// schema) is prefilled once, or taken from `prefix_cache` when it holds it (e.g. from the
/// generation that just ran on these prompts).
pub fn grouped_response_logprobs(
    model: &Model,
    prompts: &[Vec<u32>],
    responses: &[(usize, Vec<u32>)],
    pad: u32,
    prefix_cache: Option<&mut super::prefix_cache::PrefixCache>,
) -> Result<Vec<f32>> {
    if responses.is_empty() {
        return Ok(Vec::new());
    }
    for (i, (p, r)) in responses.iter().enumerate() {
        if r.is_empty() || prompts.get(*p).is_none_or(|ids| ids.is_empty()) {
            return Err(ModelError::invalid(
                "logprob",
                format!("response {i}: prompt and response must each hold at least one token"),
            ));
        }
    }
    let device = model.device();
    let (mut cache, rest) =
        super::prefix_cache::prefill_common_start(model, prompts, true, prefix_cache)?;
    let (ids, mask) = pad_batch(&rest, pad, true, device)?;
    let hidden = model.forward_hidden(&ids, &mask, Some(&mut cache))?;
    let (b, t, h) = hidden.dims3()?;
    // Left padding: every prompt's last token is at the last position; it predicts the first
    // token of each of its responses.
    let last = hidden.narrow(1, t - 1, 1)?.reshape((b, h))?;
    cache.select_rows(&responses.iter().map(|(p, _)| *p).collect::<Vec<_>>())?;
    // Each response but its last token, right-padded: position j predicts token j + 1.
    let longest = responses.iter().map(|(_, r)| r.len()).max().unwrap_or(1);
    let cont = if longest > 1 {
        let rows: Vec<Vec<u32>> = responses
            .iter()
            .map(|(_, r)| {
                let mut row = r[..r.len() - 1].to_vec();
                row.resize(longest - 1, pad);
                row
            })
            .collect();
        let cont_mask: Vec<Vec<u8>> = responses
            .iter()
            .map(|(_, r)| {
                (0..longest - 1)
                    .map(|j| u8::from(j + 1 < r.len()))
                    .collect()
            })
            .collect();
        let n = rows.len();
        let flat: Vec<u32> = rows.into_iter().flatten().collect();
        let cont_ids = Tensor::from_vec(flat, (n, longest - 1), device)?;
        let hc = model.forward_hidden(&cont_ids, &cont_mask, Some(&mut cache))?;
        Some(hc.reshape((n * (longest - 1), h))?)
    } else {
        None
    };
    let all = match &cont {
        Some(c) => Tensor::cat(&[&last, c], 0)?,
        None => last,
    };
    let (mut predictors, mut targets) = (Vec::new(), Vec::new());
    for (r, (p, tokens)) in responses.iter().enumerate() {
        for (j, &tok) in tokens.iter().enumerate() {
            predictors.push(if j == 0 {
                *p as u32
            } else {
                (b + r * (longest - 1) + j - 1) as u32
            });
            targets.push(tok);
        }
    }
    let n = predictors.len();
    let picked = all.index_select(&Tensor::from_vec(predictors, n, device)?, 0)?;
    let lp: Vec<f32> = model
        .head_logprobs(&picked, &Tensor::from_vec(targets, n, device)?)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?;
    let mut out = Vec::with_capacity(responses.len());
    let mut at = 0;
    for (_, tokens) in responses {
        out.push(lp[at..at + tokens.len()].iter().sum());
        at += tokens.len();
    }
    Ok(out)
}

/// A padded batch of pairs and where its response tokens sit.
pub(crate) struct PaddedPairs {
    pub ids: Tensor,
    pub mask: Vec<Vec<u8>>,
    /// (n,) u32: flat (row · t + position) indices of the positions that predict a response
    /// token (position i predicts token i+1).
    predictors: Tensor,
    /// (n,) u32: the response token each of them predicts.
    targets: Tensor,
    /// (b, n) f32: 1 where predictor j belongs to row r; sums the token log-probs per row.
    owner: Tensor,
    n_tokens: Vec<usize>,
}

impl PaddedPairs {
    pub fn new(pairs: &[Pair], pad: u32, device: &candle_core::Device) -> Result<Self> {
        if pairs.is_empty() {
            return Err(ModelError::invalid("logprob", "empty batch"));
        }
        for (i, p) in pairs.iter().enumerate() {
            if p.prompt.is_empty() || p.response.is_empty() {
                return Err(ModelError::invalid(
                    "logprob",
                    format!("pair {i}: prompt and response must each hold at least one token"),
                ));
            }
        }
        let rows: Vec<Vec<u32>> = pairs
            .iter()
            .map(|p| p.prompt.iter().chain(&p.response).copied().collect())
            .collect();
        let (ids, mask) = pad_batch(&rows, pad, false, device)?;
        let (b, t) = ids.dims2()?;
        let n: usize = pairs.iter().map(|p| p.response.len()).sum();
        let mut predictors = Vec::with_capacity(n);
        let mut targets = Vec::with_capacity(n);
        let mut owner = vec![0f32; b * n];
        for (r, p) in pairs.iter().enumerate() {
            for (k, &tok) in p.response.iter().enumerate() {
                owner[r * n + predictors.len()] = 1.0;
                predictors.push((r * t + p.prompt.len() - 1 + k) as u32);
                targets.push(tok);
            }
        }
        Ok(PaddedPairs {
            ids,
            mask,
            predictors: Tensor::from_vec(predictors, n, device)?,
            targets: Tensor::from_vec(targets, n, device)?,
            owner: Tensor::from_vec(owner, (b, n), device)?,
            n_tokens: pairs.iter().map(|p| p.response.len()).collect(),
        })
    }

    /// The per-row sums from the final hidden states (b, t, hidden) of `ids`.
    pub fn logprobs(&self, model: &Model, hidden: &Tensor) -> Result<ResponseLogprobs> {
        let (b, t, h) = hidden.dims3()?;
        let picked = hidden
            .reshape((b * t, h))?
            .index_select(&self.predictors, 0)?;
        let lp = model.head_logprobs(&picked, &self.targets)?;
        let sum = self.owner.matmul(&lp.unsqueeze(1)?)?.squeeze(1)?;
        Ok(ResponseLogprobs {
            sum,
            n_tokens: self.n_tokens.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::{token_logprobs, token_logprobs_reference};

    #[test]
    fn fused_op_matches_the_composition_with_gradients() {
        let dev = Device::Cpu;
        let logits =
            Var::from_tensor(&(Tensor::randn(0f32, 3.0, (2, 5, 97), &dev).unwrap())).unwrap();
        let targets = Tensor::rand(0f32, 97.0, (2, 5), &dev)
            .unwrap()
            .to_dtype(candle_core::DType::U32)
            .unwrap();
        let fused = token_logprobs(logits.as_tensor(), &targets).unwrap();
        let plain = token_logprobs_reference(logits.as_tensor(), &targets).unwrap();
        assert_eq!(fused.dims(), &[2, 5]);
        let diff = (&fused - &plain).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        let g_fused = fused.sum_all().unwrap().backward().unwrap();
        let g_plain = plain.sum_all().unwrap().backward().unwrap();
        let (a, b) = (g_fused.get(&logits).unwrap(), g_plain.get(&logits).unwrap());
        let gdiff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(gdiff.to_scalar::<f32>().unwrap() < 1e-5);
    }
}

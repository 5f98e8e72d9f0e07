//! Continuous batching: at most `max_rows` sample rows decode together, and as soon as rows
//! finish, the next pending prompt is prefilled and its samples take the free slots, instead of
//! the whole batch waiting for its longest row (static batching, [`super::generate`]).
//!
//! A prompt is prefilled on its own, its schema start taken from the prefix cache when an
//! earlier prompt left it there; its cache is forked into its samples and joins the running
//! batch left-padded ([`KvCache::append_rows`]). Rows keep their per-(prompt, sample) seeds, so
//! what a row samples does not depend on which rows it shared steps with.

use std::collections::VecDeque;

use candle_core::Tensor;
use tokenizers::Tokenizer;

use super::Result;
use super::decoder::{KvCache, Model};
use super::generate::{GenerateConfig, Generation, Row, advance, new_rows, prompt_inputs};
use super::load::SpecialTokens;
use super::prefix_cache::{PrefixCache, prefill_common_start};

/// [`super::generate::generate_cached`] with continuous batching over at most `max_rows` rows
/// (at least one prompt's `cfg.n` samples). Same results, in the same order: prompt by prompt,
/// samples in order.
#[allow(clippy::too_many_arguments)]
pub fn generate_continuous(
    model: &Model,
    tok: &Tokenizer,
    special: &SpecialTokens,
    prompts: &[Vec<u32>],
    seeds: Option<&[u64]>,
    cfg: &GenerateConfig,
    max_rows: usize,
    mut prefix_cache: Option<&mut PrefixCache>,
) -> Result<Vec<Generation>> {
    let n = cfg.n.max(1);
    let max_rows = max_rows.max(n);
    let mut rows = new_rows(prompts.len(), seeds, cfg)?;
    let inputs = prompt_inputs(prompts, special);
    if rows.is_empty() || cfg.max_new_tokens == 0 {
        return Ok(rows.into_iter().map(Row::into_generation).collect());
    }
    let detached = model.detached();
    let model = &detached;
    let mut pending: VecDeque<usize> = (0..prompts.len()).collect();
    let mut cache = KvCache::new();
    // Rows decoding now (indices into `rows`, in cache order) and the token each feeds next.
    let mut active: Vec<usize> = Vec::new();
    let mut next: Vec<u32> = Vec::new();
    while !active.is_empty() || !pending.is_empty() {
        // Fill the free slots with whole prompts (a prompt's samples fork from its prefill).
        while active.len() + n <= max_rows || active.is_empty() {
            let Some(p) = pending.pop_front() else { break };
            let (mut one, rest) = prefill_common_start(
                model,
                std::slice::from_ref(&inputs[p]),
                cfg.share_prefix,
                prefix_cache.as_deref_mut(),
            )?;
            let ids = Tensor::from_vec(rest[0].clone(), (1, rest[0].len()), model.device())?;
            let hidden = model.forward_hidden(&ids, &[vec![1u8; rest[0].len()]], Some(&mut one))?;
            let t = hidden.dim(1)?;
            let logits: Vec<Vec<f32>> = model
                .logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)?
                .to_dtype(candle_core::DType::F32)?
                .to_vec2()?;
            let mut joining = Vec::new();
            for ri in p * n..(p + 1) * n {
                let id = advance(&mut rows[ri], &logits[0], 0, cfg, special, tok)?;
                if rows[ri].finish.is_none() {
                    joining.push(ri);
                    next.push(id);
                }
            }
            if joining.is_empty() {
                continue;
            }
            one.select_rows(&vec![0; joining.len()])?;
            cache.append_rows(one)?;
            active.extend(joining);
        }
        if active.is_empty() {
            break;
        }
        // One decoding step for every active row.
        let input = Tensor::from_vec(next.clone(), (next.len(), 1), model.device())?;
        let hidden =
            model.forward_hidden(&input, &vec![vec![1u8]; next.len()], Some(&mut cache))?;
        let logits: Vec<Vec<f32>> = model
            .logits(&hidden.squeeze(1)?)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec2()?;
        let (mut still, mut keep, mut fed) = (Vec::new(), Vec::new(), Vec::new());
        for (bi, &ri) in active.iter().enumerate() {
            let step = rows[ri].tokens_len();
            let id = advance(&mut rows[ri], &logits[bi], step, cfg, special, tok)?;
            if rows[ri].finish.is_none() {
                still.push(ri);
                keep.push(bi);
                fed.push(id);
            }
        }
        if keep.is_empty() {
            cache = KvCache::new();
        } else if keep.len() != active.len() {
            cache.select_rows(&keep)?;
            cache.drop_leading_padding()?;
        }
        active = still;
        next = fed;
    }
    Ok(rows.into_iter().map(Row::into_generation).collect())
}

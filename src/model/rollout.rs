//! The reference log-probs of a rollout without repeated work: the gold answer's and each
//! generation's Σ log p_ref(answer | prompt), which the self-play losses need beside the
//! samples.
//!
//! * A generation whose tokens are exactly its answer's (the query and the end of turn, as
//!   `exspin::prompt::answer_ids` spells them) was written by the policy: when the policy is the
//!   reference, its log-prob was recorded while decoding, from the unmodified logits.
//! * The golds and the other answers run only their own tokens on one prefill per prompt
//!   ([`grouped_response_logprobs`]), whose common start (a database's schema) comes from the
//!   prefix cache the generation just filled — when the cache holds the reference's keys.

use super::Result;
use super::decoder::Model;
use super::generate::Generation;
use super::logprob::grouped_response_logprobs;
use super::prefix_cache::PrefixCache;

/// Σ log p(response | prompt) of each (prompt index, response), whole prompts per forward pass
/// (a prompt's responses always share its prefill), about `chunk` responses per pass. A
/// `prefix_cache` must hold `model`'s keys.
pub fn score_by_prompt(
    model: &Model,
    prompts: &[Vec<u32>],
    responses: &[(usize, Vec<u32>)],
    pad: u32,
    chunk: usize,
    mut prefix_cache: Option<&mut PrefixCache>,
) -> Result<Vec<f32>> {
    let mut out = vec![0f32; responses.len()];
    let mut per_prompt: Vec<Vec<usize>> = vec![Vec::new(); prompts.len()];
    for (i, (p, _)) in responses.iter().enumerate() {
        per_prompt[*p].push(i);
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut rows = 0;
    for (p, mine) in per_prompt.iter().enumerate() {
        if mine.is_empty() {
            continue;
        }
        if groups.is_empty() || (rows > 0 && rows + mine.len() > chunk.max(1)) {
            groups.push(Vec::new());
            rows = 0;
        }
        groups.last_mut().expect("pushed").push(p);
        rows += mine.len();
    }
    for group in groups {
        let ps: Vec<Vec<u32>> = group.iter().map(|&p| prompts[p].clone()).collect();
        let (mut rs, mut at) = (Vec::new(), Vec::new());
        for (gi, &p) in group.iter().enumerate() {
            for &i in &per_prompt[p] {
                rs.push((gi, responses[i].1.clone()));
                at.push(i);
            }
        }
        let lp = grouped_response_logprobs(model, &ps, &rs, pad, prefix_cache.as_deref_mut())?;
        for (k, i) in at.into_iter().enumerate() {
            out[i] = lp[k];
        }
    }
    Ok(out)
}

/// The reference log-probs of a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceLogprobs {
    /// Per prompt: Σ log p_ref(gold answer | prompt).
    pub gold: Vec<f32>,
    /// Per generation: Σ log p_ref(its answer | its prompt).
    pub generations: Vec<f32>,
    /// Generations whose log-prob came from decoding (no forward pass of their own).
    pub from_decoding: usize,
}

/// The reference log-probs of `gens` (answers `answers[i]`, token ids of their extracted SQL) and
/// of each prompt's `golds`. `policy_is_reference`: the model that generated is `reference`
/// (SPIN, ExSPIN), so decoding's log-probs serve and `prefix_cache` (filled by the generation)
/// holds the reference's keys; otherwise (DPO's frozen version 0) every answer is scored and the
/// cache is not used.
#[allow(clippy::too_many_arguments)]
pub fn reference_logprobs(
    reference: &Model,
    policy_is_reference: bool,
    pad: u32,
    prompts: &[Vec<u32>],
    golds: &[Vec<u32>],
    gens: &[Generation],
    answers: &[Vec<u32>],
    chunk: usize,
    prefix_cache: Option<&mut PrefixCache>,
) -> Result<ReferenceLogprobs> {
    let mut generations: Vec<Option<f32>> = gens
        .iter()
        .zip(answers)
        .map(|(g, ids)| (policy_is_reference && g.tokens == *ids).then(|| g.logprobs.iter().sum()))
        .collect();
    let from_decoding = generations.iter().flatten().count();
    let mut to_score: Vec<(usize, Vec<u32>)> = golds.iter().cloned().enumerate().collect();
    let mut scored = Vec::new();
    for (i, (g, ids)) in gens.iter().zip(answers).enumerate() {
        if generations[i].is_none() {
            to_score.push((g.prompt, ids.clone()));
            scored.push(i);
        }
    }
    let cache = if policy_is_reference {
        prefix_cache
    } else {
        None
    };
    let detached = reference.detached();
    let scores = score_by_prompt(&detached, prompts, &to_score, pad, chunk, cache)?;
    for (k, &i) in scored.iter().enumerate() {
        generations[i] = Some(scores[golds.len() + k]);
    }
    Ok(ReferenceLogprobs {
        gold: scores[..golds.len()].to_vec(),
        generations: generations
            .into_iter()
            .map(|x| x.expect("every generation scored"))
            .collect(),
        from_decoding,
    })
}

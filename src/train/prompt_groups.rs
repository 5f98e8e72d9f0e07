//! Pairs grouped by prompt, for prompt-shared pair training
//! ([`crate::model::shared_prompt`]): each distinct prompt runs once, each distinct (prompt,
//! chosen) answer once (the gold SQL is the chosen answer of every negative of its question), and
//! each rejected answer once. [`PromptGroups::split`] gives back per-pair chosen and rejected
//! log-probs in the pairs' order, so the loss per pair is unchanged.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::model::Result;

/// One (prompt, chosen, rejected) pair in token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairTokens {
    pub prompt: Vec<u32>,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

/// The distinct prompts and answers of a batch of pairs, and where each pair's answers sit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptGroups {
    pub prompts: Vec<Vec<u32>>,
    /// (prompt index, answer tokens): the distinct chosen answers, then every rejected one.
    pub responses: Vec<(usize, Vec<u32>)>,
    /// Per pair, the index in `responses` of its chosen answer.
    pub chosen: Vec<u32>,
    /// Per pair, the index in `responses` of its rejected answer.
    pub rejected: Vec<u32>,
}

impl PromptGroups {
    pub fn new(pairs: &[PairTokens]) -> Self {
        let mut prompt_at: HashMap<&[u32], usize> = HashMap::new();
        let mut chosen_at: HashMap<(usize, &[u32]), u32> = HashMap::new();
        let mut groups = PromptGroups {
            prompts: Vec::new(),
            responses: Vec::new(),
            chosen: Vec::with_capacity(pairs.len()),
            rejected: Vec::with_capacity(pairs.len()),
        };
        let mut prompt_of = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let p = *prompt_at.entry(&pair.prompt).or_insert_with(|| {
                groups.prompts.push(pair.prompt.clone());
                groups.prompts.len() - 1
            });
            let c = *chosen_at.entry((p, &pair.chosen)).or_insert_with(|| {
                groups.responses.push((p, pair.chosen.clone()));
                (groups.responses.len() - 1) as u32
            });
            groups.chosen.push(c);
            prompt_of.push(p);
        }
        for (pair, p) in pairs.iter().zip(prompt_of) {
            groups.rejected.push(groups.responses.len() as u32);
            groups.responses.push((p, pair.rejected.clone()));
        }
        groups
    }

    /// Per-pair (chosen, rejected) log-probs, (n_pairs,) each, from the per-response sums
    /// `sum` (in `responses` order); differentiable.
    pub fn split(&self, sum: &Tensor) -> Result<(Tensor, Tensor)> {
        let dev = sum.device();
        let n = self.chosen.len();
        let chosen = sum.index_select(&Tensor::from_vec(self.chosen.clone(), n, dev)?, 0)?;
        let rejected = sum.index_select(&Tensor::from_vec(self.rejected.clone(), n, dev)?, 0)?;
        Ok((chosen, rejected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(prompt: &[u32], chosen: &[u32], rejected: &[u32]) -> PairTokens {
        PairTokens {
            prompt: prompt.to_vec(),
            chosen: chosen.to_vec(),
            rejected: rejected.to_vec(),
        }
    }

    #[test]
    fn a_prompt_and_its_gold_appear_once_and_every_negative_keeps_its_place() {
        let pairs = [
            pair(&[1, 2, 3], &[9], &[7]),
            pair(&[4, 5], &[8], &[6]),
            pair(&[1, 2, 3], &[9], &[5, 5]),
            // The same prompt with another chosen answer keeps that answer.
            pair(&[1, 2, 3], &[10], &[7]),
        ];
        let g = PromptGroups::new(&pairs);
        assert_eq!(g.prompts, vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(g.chosen, vec![0, 1, 0, 2]);
        assert_eq!(g.rejected, vec![3, 4, 5, 6]);
        for (i, p) in pairs.iter().enumerate() {
            let (pc, c) = &g.responses[g.chosen[i] as usize];
            let (pr, r) = &g.responses[g.rejected[i] as usize];
            assert_eq!((&g.prompts[*pc], c), (&p.prompt, &p.chosen));
            assert_eq!((&g.prompts[*pr], r), (&p.prompt, &p.rejected));
        }
        let sum = Tensor::new(&[0f32, 1., 2., 3., 4., 5., 6.], &candle_core::Device::Cpu).unwrap();
        let (c, r) = g.split(&sum).unwrap();
        assert_eq!(c.to_vec1::<f32>().unwrap(), vec![0., 1., 0., 2.]);
        assert_eq!(r.to_vec1::<f32>().unwrap(), vec![3., 4., 5., 6.]);
    }
}

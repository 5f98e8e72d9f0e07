//! The opponent θt: `samples_per_prompt` sampled answers per prompt, each seeded by its example and
//! round (so a re-issued prompt gets the same samples whatever batch it lands in), the SQL
//! extracted, and θt's log-probs of that SQL and of the gold SQL attached: they are the
//! reference terms of the SPIN / ExSPIN loss, so the trainer never holds a second model.

use std::path::PathBuf;

use exspin::model::chat::ChatTemplate;
use exspin::model::generate::{GenerateConfig, extract_sql, generate_seeded};
use exspin::model::logprob::Pair as TokenPair;

use super::{Lm, seed_of, weights_dir};
use crate::models::compute::Compute;
use crate::protocol::seams::{Generator, PromptItem, Sample, SeamResult, WeightsHandle};

pub struct RealGenerator {
    pub lm: Lm,
    pub run_dir: PathBuf,
    pub chat: ChatTemplate,
    /// Sampling settings (`n` is set per call).
    pub sampling: GenerateConfig,
    pub seed: u64,
    pub chunk: usize,
    pub version: u64,
    /// Where the versions it loads go.
    pub compute: Compute,
}

impl Generator for RealGenerator {
    fn generate(
        &mut self,
        batch: &[PromptItem],
        n_samples: usize,
        version: u64,
    ) -> SeamResult<Vec<Sample>> {
        super::trace_memory("generation begins");
        let lm = &self.lm;
        let prompts: Vec<Vec<u32>> = batch
            .iter()
            .map(|p| lm.prompt_ids(&p.prompt))
            .collect::<anyhow::Result<_>>()?;
        let seeds: Vec<u64> = batch
            .iter()
            .map(|p| seed_of(self.seed, &format!("{}#r{}", p.example_id, p.round)))
            .collect();
        let cfg = GenerateConfig {
            n: n_samples,
            ..self.sampling.clone()
        };
        let gens = generate_seeded(
            &lm.model,
            &lm.tokenizer,
            &lm.special,
            &prompts,
            Some(&seeds),
            &cfg,
        )?;
        // One gold row per prompt, then one row per generation.
        let mut rows = Vec::with_capacity(batch.len() + gens.len());
        for (p, item) in batch.iter().enumerate() {
            rows.push(TokenPair {
                prompt: prompts[p].clone(),
                response: lm.answer_ids(&item.gold_sql)?,
            });
        }
        let sqls: Vec<String> = gens.iter().map(|g| extract_sql(&g.text)).collect();
        for (g, sql) in gens.iter().zip(&sqls) {
            rows.push(TokenPair {
                prompt: prompts[g.prompt].clone(),
                response: lm.answer_ids(sql)?,
            });
        }
        super::trace_memory("scoring begins");
        let scores = lm.score(&rows, self.chunk)?;
        super::trace_memory("scoring ends");
        let mut out = Vec::with_capacity(gens.len());
        for (i, (g, sql)) in gens.iter().zip(sqls).enumerate() {
            let item = &batch[g.prompt];
            out.push(Sample {
                example_id: item.example_id.clone(),
                sample_id: item.sample_id(g.sample),
                round: item.round,
                sql,
                version,
                logp_gold: scores[g.prompt],
                logp_gen: scores[batch.len() + i],
                tokens: g.tokens.len() as u32,
            });
        }
        Ok(out)
    }

    fn load_version(&mut self, weights: &WeightsHandle) -> SeamResult<()> {
        if weights.version == self.version {
            return Ok(());
        }
        let path = weights
            .path
            .clone()
            .unwrap_or_else(|| weights_dir(&self.run_dir, weights.version));
        self.lm = Lm::load(&path, &self.chat, &self.compute)?;
        self.version = weights.version;
        Ok(())
    }
}

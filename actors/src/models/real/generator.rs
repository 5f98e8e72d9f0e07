//! The opponent θt: `samples_per_prompt` sampled answers per prompt, each seeded by its example and
//! round (so a re-issued prompt gets the same samples whatever batch it lands in), the SQL
//! extracted, and the reference model's log-probs of that SQL and of the gold SQL attached: they
//! are the reference terms of the loss, so the learner never holds a second model. The reference
//! is θt itself for SPIN and ExSPIN (the opponent is the reference), and the frozen version 0 (the
//! SFT model) for DPO, which the generator then keeps beside θt.

use std::path::PathBuf;

use exspin::model::chat::ChatTemplate;
use exspin::model::continuous::generate_continuous;
use exspin::model::generate::GenerateConfig;
use exspin::model::prefix_cache::PrefixCache;
use exspin::model::rollout::reference_logprobs;

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
    /// DPO's frozen reference, version 0 (None: θt scores its own samples).
    pub reference: Option<Lm>,
    /// Whether samples carry reference log-probs. Continued SFT's loss reads none, so its
    /// opponent skips the scoring pass and attaches zeros.
    pub score: bool,
    /// Where the versions it loads go.
    pub compute: Compute,
    /// θt's KV caches of recent prompt starts (a database's schema): emptied when θt changes.
    pub prefixes: PrefixCache,
}

/// Bytes of prompt-prefix KV a generator keeps (about 40 schema prefixes of the 0.5B model).
pub const PREFIX_CACHE_BYTES: usize = 1 << 30;

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
        // Continuous batching over as many rows as a scoring pass holds (at least one prompt's
        // samples): a finished row's slot goes to the next prompt at once.
        let gens = generate_continuous(
            &lm.model,
            &lm.tokenizer,
            &lm.special,
            &prompts,
            Some(&seeds),
            &cfg,
            self.chunk.max(n_samples),
            Some(&mut self.prefixes),
        )?;
        let sqls: Vec<String> = gens
            .iter()
            .map(|g| exspin::prompt::answer_sql(&lm.chat, &g.text))
            .collect();
        let (scorer, ref_version) = match &self.reference {
            Some(frozen) => (frozen, 0),
            None => (lm, version),
        };
        let reference = if self.score {
            let golds: Vec<Vec<u32>> = batch
                .iter()
                .map(|item| lm.answer_ids(&item.gold_sql))
                .collect::<anyhow::Result<_>>()?;
            let answers: Vec<Vec<u32>> = sqls
                .iter()
                .map(|sql| lm.answer_ids(sql))
                .collect::<anyhow::Result<_>>()?;
            super::trace_memory("scoring begins");
            let r = reference_logprobs(
                &scorer.model,
                self.reference.is_none(),
                scorer.special.pad,
                &prompts,
                &golds,
                &gens,
                &answers,
                self.chunk,
                Some(&mut self.prefixes),
            )?;
            super::trace_memory("scoring ends");
            r
        } else {
            exspin::model::rollout::ReferenceLogprobs {
                gold: vec![0.0; batch.len()],
                generations: vec![0.0; gens.len()],
                from_decoding: 0,
            }
        };
        let mut out = Vec::with_capacity(gens.len());
        for (i, (g, sql)) in gens.iter().zip(sqls).enumerate() {
            let item = &batch[g.prompt];
            out.push(Sample {
                example_id: item.example_id.clone(),
                sample_id: item.sample_id(g.sample),
                round: item.round,
                sql,
                version,
                ref_version,
                logp_gold: reference.gold[g.prompt],
                logp_gen: reference.generations[i],
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
        // A LoRA version may come as its adapter alone (a fleet worker's copy): merged onto
        // version 0 here, the same weights as the merged folder.
        self.lm = if path.join("adapter_config.json").is_file() {
            Lm::load_adapted(
                &weights_dir(&self.run_dir, 0),
                &path,
                &self.chat,
                &self.compute,
            )?
        } else {
            Lm::load(&path, &self.chat, &self.compute)?
        };
        self.version = weights.version;
        // Keys and values of the old weights would be wrong for the new ones.
        self.prefixes = PrefixCache::new(PREFIX_CACHE_BYTES);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use exspin::model::logprob::Pair as TokenPair;

    use super::*;

    /// Two different tiny models over one tokenizer.
    fn two_models() -> (Lm, Lm) {
        let mut lms = super::super::tiny_test_models(2);
        let v1 = lms.pop().unwrap();
        (lms.pop().unwrap(), v1)
    }

    fn generator(lm: Lm, reference: Option<Lm>) -> RealGenerator {
        RealGenerator {
            lm,
            run_dir: PathBuf::from("unused"),
            chat: ChatTemplate::Plain,
            sampling: GenerateConfig {
                max_new_tokens: 6,
                ..GenerateConfig::default()
            },
            seed: 3,
            chunk: 8,
            version: 1,
            reference,
            score: true,
            compute: Compute {
                device: Device::Cpu,
                dtype: DType::F32,
            },
            prefixes: PrefixCache::new(PREFIX_CACHE_BYTES),
        }
    }

    /// With a frozen reference (DPO) the attached log-probs are version 0's; without one
    /// (SPIN / ExSPIN) they are the opponent's own; continued SFT's attaches none. Same samples
    /// every way.
    #[test]
    fn the_reference_log_probs_come_from_the_frozen_model_when_there_is_one() {
        let (v0, v1) = two_models();
        let item = PromptItem {
            example_id: "e".into(),
            db_id: "d".into(),
            question: "how many cats?".into(),
            gold_sql: "SELECT count(*) FROM cat".into(),
            prompt: "-- Question: how many cats?".into(),
            round: 1,
        };
        let gold_row = |lm: &Lm| TokenPair {
            prompt: lm.prompt_ids(&item.prompt).unwrap(),
            response: lm.answer_ids(&item.gold_sql).unwrap(),
        };
        let v0_gold = v0.score(&[gold_row(&v0)], 8).unwrap()[0];
        let v1_gold = v1.score(&[gold_row(&v1)], 8).unwrap()[0];
        assert_ne!(v0_gold, v1_gold, "the two models must differ");

        // Another handle on the same weights (the map is only for training, not done here).
        let twin = |lm: &Lm| Lm {
            model: lm.model.clone(),
            varmap: candle_nn::VarMap::new(),
            tokenizer: lm.tokenizer.clone(),
            special: lm.special.clone(),
            chat: ChatTemplate::Plain,
        };
        let dpo = generator(twin(&v1), Some(twin(&v0)))
            .generate(std::slice::from_ref(&item), 2, 1)
            .unwrap();
        let spin = generator(twin(&v1), None)
            .generate(std::slice::from_ref(&item), 2, 1)
            .unwrap();
        for (d, s) in dpo.iter().zip(&spin) {
            assert_eq!(d.sql, s.sql, "the opponent θ1 generates either way");
            assert_eq!((d.ref_version, s.ref_version), (0, 1));
            // Scored on one prefill per prompt (or recorded while decoding), they equal a full
            // forward of each (prompt, answer) row.
            let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            close(d.logp_gold, v0_gold);
            close(s.logp_gold, v1_gold);
            let gen_row = |lm: &Lm| TokenPair {
                prompt: lm.prompt_ids(&item.prompt).unwrap(),
                response: lm.answer_ids(&d.sql).unwrap(),
            };
            close(d.logp_gen, v0.score(&[gen_row(&v0)], 8).unwrap()[0]);
            close(s.logp_gen, v1.score(&[gen_row(&v1)], 8).unwrap()[0]);
        }
        // Continued SFT's opponent draws the same samples and scores nothing.
        let mut sft = generator(twin(&v1), None);
        sft.score = false;
        let unscored = sft.generate(std::slice::from_ref(&item), 2, 1).unwrap();
        assert_eq!(unscored.len(), spin.len());
        for (u, s) in unscored.iter().zip(&spin) {
            assert_eq!((&u.sql, u.tokens), (&s.sql, s.tokens));
            assert_eq!((u.logp_gold, u.logp_gen), (0.0, 0.0));
        }
    }
}

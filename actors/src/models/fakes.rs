//! Deterministic stand-ins for the model seams, for tests and the demo config until the real
//! model lands. Every random choice is a hash of (seed, sample id, version), so the same seed gives
//! the same run whatever the scheduling, and a re-issued sample is the same sample.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::protocol::seams::{
    DevEvaluator, Generator, Learner, Pair, PromptItem, Sample, SeamResult, StepMetrics,
    WeightsHandle,
};

/// A uniform number in [0, 1) from a seed and some text.
pub fn unit(seed: u64, text: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(text.as_bytes());
    let d = h.finalize();
    let x = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Probability that the fake opponent of `version` answers with the gold query.
pub fn p_correct(p0: f64, step: f64, version: u64) -> f64 {
    (p0 + step * version as f64).min(0.95)
}

/// Answers with the gold SQL with probability p_t (rising with the version), else a corrupted query:
/// a changed constant (wrong result), a misspelt table (error) or a broken tail (syntax error).
pub struct FakeGenerator {
    pub seed: u64,
    pub p0: f64,
    pub p_step: f64,
    pub version: u64,
    /// Sleeps this long per prompt of each `generate` call (stands in for generation time).
    pub delay_per_prompt: Duration,
    /// DPO: log-probs come from the frozen version 0, not from the opponent's version.
    pub frozen_reference: bool,
}

/// The fake's log-prob of `what` ("gold" or "gen") for a sample, as scored by `version`: it
/// depends on the version, so a reference taken from the wrong version shows.
pub fn fake_logp(seed: u64, sample_id: &str, what: &str, version: u64) -> f32 {
    let base = if what == "gold" { 1.0 } else { 2.0 };
    -(base + unit(seed, &format!("{what}:{sample_id}")) as f32) - 0.25 * version as f32
}

impl FakeGenerator {
    pub fn answer(&self, gold: &str, sample_id: &str, version: u64) -> String {
        // One draw per sample, compared with a rising p_t: a sample answered right by θt stays
        // right for every later version (the fake "learns" monotonically).
        let u = unit(self.seed, sample_id);
        let p = p_correct(self.p0, self.p_step, version);
        if u < p {
            return gold.to_string();
        }
        match ((u - p) / (1.0 - p) * 3.0) as u32 {
            0 => format!("{gold} LIMIT 0"),
            1 => gold.replacen("FROM ", "FROM no_such_", 1),
            _ => format!("{gold} WHERE AND"),
        }
    }
}

impl Generator for FakeGenerator {
    fn generate(
        &mut self,
        batch: &[PromptItem],
        n_samples: usize,
        version: u64,
    ) -> SeamResult<Vec<Sample>> {
        if !self.delay_per_prompt.is_zero() {
            std::thread::sleep(self.delay_per_prompt * batch.len() as u32);
        }
        let ref_version = if self.frozen_reference { 0 } else { version };
        let mut out = Vec::with_capacity(batch.len() * n_samples);
        for item in batch {
            for k in 0..n_samples {
                let sample_id = item.sample_id(k);
                let sql = self.answer(&item.gold_sql, &sample_id, version);
                out.push(Sample {
                    // The fake has no tokenizer: its "tokens" are the whitespace-separated pieces
                    // of the SQL it answers with.
                    tokens: sql.split_whitespace().count() as u32,
                    example_id: item.example_id.clone(),
                    round: item.round,
                    sql,
                    version,
                    ref_version,
                    logp_gold: fake_logp(self.seed, &sample_id, "gold", ref_version),
                    logp_gen: fake_logp(self.seed, &sample_id, "gen", ref_version),
                    sample_id,
                });
            }
        }
        Ok(out)
    }

    fn load_version(&mut self, weights: &WeightsHandle) -> SeamResult<()> {
        self.version = weights.version;
        Ok(())
    }
}

/// What the fake trainer checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FakeLearnerState {
    pub steps: u64,
    pub version: u64,
    /// Pairs trained.
    pub trained: u64,
    /// A hash chain over every pair id trained, in order (the fake's "weights": they depend on
    /// what was trained and in which order, in constant memory).
    pub digest: String,
}

/// Records the pair ids it trains on and reports a loss that falls with the step count.
pub struct FakeLearner {
    pub state: FakeLearnerState,
    pub step_delay: Duration,
}

impl Learner for FakeLearner {
    fn train_step(&mut self, pairs: &[Pair]) -> SeamResult<StepMetrics> {
        if !self.step_delay.is_zero() {
            std::thread::sleep(self.step_delay);
        }
        self.state.steps += 1;
        for p in pairs {
            let mut h = Sha256::new();
            h.update(self.state.digest.as_bytes());
            h.update(p.id.as_bytes());
            self.state.digest = hex::encode(h.finalize());
            self.state.trained += 1;
        }
        let margin = pairs
            .iter()
            .map(|p| (p.ref_logp_chosen - p.ref_logp_rejected.unwrap_or(0.0)) as f64)
            .sum::<f64>()
            / pairs.len().max(1) as f64;
        let pieces = |s: &str| s.split_whitespace().count() as u64;
        let tokens = pairs
            .iter()
            .map(|p| {
                pieces(&p.prompt) + pieces(&p.chosen) + p.rejected.as_deref().map_or(0, pieces)
            })
            .sum();
        Ok(StepMetrics {
            loss: 1.0 / (1.0 + 0.1 * self.state.steps as f64),
            reward_margin: margin,
            chosen_reward: margin / 2.0,
            gold_nll: None,
            pairs: pairs.len(),
            tokens,
        })
    }

    fn publish(&mut self) -> SeamResult<WeightsHandle> {
        self.state.version += 1;
        Ok(WeightsHandle {
            version: self.state.version,
            path: None,
        })
    }

    fn save_state(&self, dir: &Path) -> SeamResult<()> {
        let path = dir.join("fake_trainer.json");
        std::fs::write(&path, serde_json::to_vec(&self.state)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn restore_state(&mut self, dir: &Path) -> SeamResult<()> {
        let path = dir.join("fake_trainer.json");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        self.state = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is corrupt", path.display()))?;
        Ok(())
    }
}

/// Dev accuracy of the fake opponent: the fraction of dev examples its `version` answers with the
/// gold query (every other answer of the fake is wrong by construction). Like the real evaluator,
/// it writes each example's verdict to `RUN/dev/round-{version}.jsonl` (what `exspin experiment`
/// pairs methods on).
pub struct FakeDevEvaluator {
    pub generator: FakeGenerator,
    /// (example id, gold SQL) of each dev example.
    pub dev_ids: Vec<(String, String)>,
    pub run_dir: std::path::PathBuf,
    /// Stands in for a real dev pass's time (`model.fake_evaluate_ms`).
    pub delay: Duration,
}

impl DevEvaluator for FakeDevEvaluator {
    fn evaluate(&mut self, weights: &WeightsHandle) -> SeamResult<f64> {
        std::thread::sleep(self.delay);
        if self.dev_ids.is_empty() {
            return Ok(0.0);
        }
        let mut right = 0;
        let mut lines = String::new();
        for (id, gold) in &self.dev_ids {
            let correct = self
                .generator
                .answer(gold, &format!("{id}#dev"), weights.version)
                == *gold;
            right += usize::from(correct);
            let line = serde_json::json!({
                "example_id": id,
                "gold_sql": gold,
                "correct": correct,
            });
            lines.push_str(&format!("{line}\n"));
        }
        let dir = self.run_dir.join("dev");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("round-{}.jsonl", weights.version));
        std::fs::write(&path, lines).with_context(|| format!("writing {}", path.display()))?;
        Ok(right as f64 / self.dev_ids.len() as f64)
    }
}

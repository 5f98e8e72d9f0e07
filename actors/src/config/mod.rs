//! The job config of `exspin run` (TOML), typed: every choice is an enum and every source holds
//! only the fields it reads, so nothing past [`JobConfig::load`] matches on strings. Unknown
//! fields are refused so a typo is an error; a bad value names the file, the key and the allowed
//! values; [`JobConfig::validate`] adds the checks across fields, in words a person can act on.

mod cluster;
mod data;
pub mod device;
mod model;
mod run;
mod stage;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use cluster::ClusterConfig;
pub use data::{DataConfig, DataSource, SyntheticData};
pub use device::{CUDA_BUILT, DeviceSpec, WeightDType};
pub use model::{FakeModel, ModelConfig, ModelKind, ModelSource, SchemaMode, TinyModel};
pub use run::{Mode, RoundSchedule, RunConfig};
pub use stage::{FaultAt, FaultSpec, Stage};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    pub data: DataConfig,
    pub run: RunConfig,
    pub model: ModelConfig,
    /// Observability (optional section).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Supervised fine-tuning before the self-play rounds (real models only).
    #[serde(default)]
    pub sft: SftConfig,
    /// The head's side of a rollout fleet (optional section; `--listen`/`--cookie-file` win).
    #[serde(default)]
    pub cluster: ClusterConfig,
}

/// Where the runtime's metrics go besides `RUN_DIR/metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve the Prometheus text format on 127.0.0.1:PORT (GET any path) while the run lasts;
    /// 0 (the default) = off.
    pub prometheus_port: u16,
}

/// The SFT phase `exspin run` does before the rounds (kind tiny or pretrained): NLL of the gold
/// SQL over the train split, then the result is version 0 (`RUN/weights/v0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    /// Optimizer steps (0 with epochs = 0: no SFT, version 0 is the initial model).
    pub steps: usize,
    /// Passes over the train split; when > 0 it sets the steps (epochs × batches per epoch).
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    /// Print the loss every N steps.
    pub log_every: usize,
    /// Seeds the SFT phase (the initial tiny/random weights, the SFT shuffle, the device's
    /// generator); default: `run.seed`. Set apart from `run.seed` so that runs with other
    /// self-play seeds share one version 0 (`exspin experiment`'s `seeds`).
    pub seed: Option<u64>,
    /// Train questions held out as the SFT phase's validation split (never dev; drawn with the
    /// SFT seed, and left out of the self-play prompts too). 0: no validation, SFT runs its
    /// planned steps and version 0 is the last step's model.
    pub validation: usize,
    /// Steps between validation scores (EX on the validation split, greedy); also scored before
    /// the first step and after the last.
    pub validate_every: usize,
    /// Scores in a row without a new best before SFT stops; version 0 is the best scored model.
    pub patience: usize,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            steps: 0,
            epochs: 0,
            batch_size: 8,
            lr: 3e-3,
            warmup_steps: 10,
            log_every: 20,
            seed: None,
            validation: 0,
            validate_every: 100,
            patience: 3,
        }
    }
}

impl JobConfig {
    /// Opponent seam objects (generators) this process builds: `cluster.local_generators` of
    /// `run.generators`, or none for a run that follows another (`run.follow`), which generates
    /// nothing (so it holds no copy of the model for it and loads no versions into one).
    pub fn generators_here(&self) -> usize {
        match self.run.follow {
            Some(_) => 0,
            None => self.cluster.local_generators(self.run.generators),
        }
    }

    /// The seed of the SFT phase and the initial model: `sft.seed`, or else `run.seed`.
    pub fn sft_seed(&self) -> u64 {
        self.sft.seed.unwrap_or(self.run.seed)
    }

    /// The part of the config the SFT phase (version 0) depends on, as TOML: everything except the
    /// self-play settings (the `[run]` section, the learner's sampling, learning rate and λ,
    /// `[metrics]`), with the SFT seed (`sft_seed`: `sft.seed`, else `run.seed`) in place of
    /// `sft.seed`. Two runs with the same signature train the same version 0, so one may start
    /// from the other's (`exspin run --sft-from`). Conservative: a field not listed here as
    /// self-play-only keeps the signatures apart.
    pub fn sft_signature(&self) -> String {
        let mut sig = self.clone();
        sig.run = RunConfig::default();
        sig.sft.seed = Some(self.sft_seed());
        sig.metrics = MetricsConfig::default();
        sig.cluster = ClusterConfig::default();
        let d = ModelConfig::default();
        sig.model.temperature = d.temperature;
        sig.model.top_p = d.top_p;
        sig.model.lr = d.lr;
        sig.model.warmup_steps = d.warmup_steps;
        sig.model.lambda = d.lambda;
        sig.model.gold_nll_weight = d.gold_nll_weight;
        sig.model.activation_checkpointing = d.activation_checkpointing;
        sig.model.shared_prompt_pairs = d.shared_prompt_pairs;
        toml::to_string(&sig).expect("a job config serializes")
    }

    pub fn load(path: &Path) -> anyhow::Result<(JobConfig, String)> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config {}", path.display()))?;
        let config: JobConfig = toml::from_str(&text)
            .with_context(|| format!("{}: not a valid job config", path.display()))?;
        config
            .validate()
            .with_context(|| format!("{}: invalid job config", path.display()))?;
        Ok((config, text))
    }

    /// Every problem no type rules out, at once, one per line, each saying what to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        self.run.problems(&mut errors);
        self.cluster.problems(self.run.generators, &mut errors);
        let m = &self.model;
        if let Err(e) = m.device.check_built("model.device") {
            errors.push(e.to_string());
        }
        if !m.is_fake() {
            let mut sizes = vec![
                ("model.max_new_tokens", m.max_new_tokens),
                ("model.chunk", m.chunk),
                ("model.schema_k1", m.schema_k1),
                ("model.schema_k2", m.schema_k2),
                ("sft.batch_size", self.sft.batch_size),
            ];
            if let ModelSource::Tiny(t) = &m.source {
                sizes.extend([
                    ("model.vocab_size", t.vocab_size),
                    ("model.hidden_size", t.hidden_size),
                    ("model.intermediate_size", t.intermediate_size),
                    ("model.layers", t.layers),
                    ("model.heads", t.heads),
                    ("model.kv_heads", t.kv_heads),
                ]);
                if t.heads > 0
                    && t.kv_heads > 0
                    && (!t.hidden_size.is_multiple_of(t.heads)
                        || !t.heads.is_multiple_of(t.kv_heads)
                        || !(t.hidden_size / t.heads).is_multiple_of(2))
                {
                    errors.push(format!(
                        "model.hidden_size ({}) must split into model.heads ({}) heads of even \
                         size, and model.heads into model.kv_heads ({}) groups",
                        t.hidden_size, t.heads, t.kv_heads
                    ));
                }
            }
            if let ModelSource::Random { vocab_size, .. } = &m.source {
                sizes.push(("model.vocab_size", *vocab_size));
            }
            for (name, v) in sizes {
                if v == 0 {
                    errors.push(format!("{name} must be at least 1"));
                }
            }
            if m.temperature < 0.0 || !(0.0 < m.top_p && m.top_p <= 1.0) {
                errors.push(
                    "model.temperature must be >= 0 (0 = greedy) and model.top_p in (0, 1]".into(),
                );
            }
            if m.lr <= 0.0 || self.sft.lr <= 0.0 || m.lambda <= 0.0 || m.max_grad_norm <= 0.0 {
                errors.push(
                    "model.lr, sft.lr, model.lambda and model.max_grad_norm must be positive"
                        .into(),
                );
            }
            if !(m.gold_nll_weight >= 0.0 && m.gold_nll_weight.is_finite()) {
                errors.push(format!(
                    "model.gold_nll_weight = {} must be a finite number >= 0 (0 = no gold NLL term)",
                    m.gold_nll_weight
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", errors.join("\n"))
        }
    }
}

/// `planned`'s rounds when `planned` (a job config's text) is `started` (the run's
/// `config.toml`) with only `run.rounds` raised: what an experiment may continue with `exspin
/// resume --rounds` (`state::extend`) instead of starting the run over. None otherwise.
pub fn rounds_raised_to(started: &str, planned: &str) -> Option<u64> {
    let a = toml::from_str::<JobConfig>(started).ok()?;
    let b = toml::from_str::<JobConfig>(planned).ok()?;
    if b.run.rounds <= a.run.rounds {
        return None;
    }
    let mut b_at_a = b.clone();
    b_at_a.run.rounds = a.run.rounds;
    (toml::to_string(&a).ok() == toml::to_string(&b_at_a).ok()).then_some(b.run.rounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_raised_rounds_counts_as_an_extension() {
        let mut c: JobConfig = toml::from_str("[data]\n[run]\n[model]\n").unwrap();
        let base = toml::to_string(&c).unwrap();
        c.run.rounds += 2;
        let more = toml::to_string(&c).unwrap();
        assert_eq!(rounds_raised_to(&base, &more), Some(c.run.rounds));
        assert_eq!(rounds_raised_to(&more, &base), None, "lowering is not");
        assert_eq!(rounds_raised_to(&base, &base), None, "the same is not");
        c.run.seed += 1;
        let other = toml::to_string(&c).unwrap();
        assert_eq!(
            rounds_raised_to(&base, &other),
            None,
            "another setting changed too"
        );
    }
}

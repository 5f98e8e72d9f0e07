//! The job config of `exspin run` (TOML). Unknown fields are refused so a typo is an error, and
//! [`JobConfig::validate`] says what to change in words a person can act on.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which pairs the replay buffer keeps (see `pairs.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Gold vs a wrong / failing generation; correct generations are dropped.
    Exspin,
    /// Gold vs every generation (the SPIN paper).
    Spin,
    /// A correct generation vs a wrong one where both exist, else gold vs wrong.
    Dpo,
    /// Gold only (one pair per prompt).
    Sft,
}

/// Round schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The paper's barrier: round t+1 starts only after θt+1 is published.
    Strict,
    /// The opponent may run ahead of the trainer by at most `staleness` versions: a sample
    /// generated with θt is trained while the trainer is at most at θ(t+staleness).
    Async,
    /// SPIN's scripts: generate every prompt of the round, then execute every generation, then
    /// train, with a barrier between the stages (no overlap; the baseline of `exspin bench
    /// pipeline`). The replay buffer then holds a whole round.
    Phased,
}

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
}

/// Where the runtime's metrics go besides `RUN_DIR/metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve the Prometheus text format on 127.0.0.1:PORT (GET any path) while the run lasts;
    /// 0 (the default) = off.
    pub prometheus_port: u16,
}

/// Where the examples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// "synthetic" (the embedded default, generated into the run folder) or "spider".
    pub source: String,
    /// With source = "spider": the Spider-layout folder.
    pub path: Option<PathBuf>,
    /// Synthetic generation (ignored for spider).
    pub synthetic_seed: u64,
    pub synthetic_train: usize,
    pub synthetic_dev: usize,
    /// Dev examples used for the per-round dev accuracy (first N).
    pub dev_limit: usize,
    /// Synthetic only: when > 0, the dev split is the last N train questions, held out (same
    /// databases, unseen questions) instead of the dev databases (unseen schemas, which a tiny
    /// model trained for minutes does not generalise to).
    pub synthetic_holdout: usize,
    /// Only the first N train examples (0 = all): a fixed slice, e.g. of Spider's 7,000.
    pub train_limit: usize,
    /// The dev examples are a fixed subset of `dev_limit` stratified by the official hardness
    /// level (as `exspin eval --stratified`) instead of the first `dev_limit`.
    pub dev_stratified: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: "synthetic".into(),
            path: None,
            synthetic_seed: 42,
            synthetic_train: 120,
            synthetic_dev: 40,
            dev_limit: 40,
            synthetic_holdout: 0,
            train_limit: 0,
            dev_stratified: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub mode: Mode,
    pub schedule: Schedule,
    /// Versions an async opponent may run ahead (only read with schedule = "async").
    #[serde(alias = "max_staleness")]
    pub staleness: u64,
    pub rounds: u64,
    /// Prompts (distinct examples) per round, drawn from a seeded permutation of the train split.
    pub prompts_per_round: usize,
    pub samples_per_prompt: usize,
    /// Prompts per `Generator::generate` call.
    pub generate_batch: usize,
    /// Opponent-generator actors sharing one version stream, each with its own `Generator` seam
    /// object (for a real model: its own copy of the weights) and its own credits.
    pub generators: usize,
    /// Pairs per `Trainer::train_step`.
    pub train_batch: usize,
    /// Most pairs the replay buffer holds (buffered + sent to the trainer, not yet trained).
    pub replay_capacity: usize,
    /// Most batches sent to the trainer and not yet trained.
    pub trainer_queue: usize,
    pub executor_workers: usize,
    pub executor_queue: usize,
    pub executor_timeout_ms: u64,
    /// Write a checkpoint every N train steps (0: only on SIGTERM/SIGINT).
    pub checkpoint_every: u64,
    /// Checkpoints kept (older ones are deleted).
    pub keep_checkpoints: usize,
    pub seed: u64,
    /// Injected panics, "actor:message_index" (actor: prompt_builder, opponent, executor,
    /// replay, trainer, evaluator). Each fires once; `EXSPIN_FAULT` adds more (comma-separated).
    /// With several generators, "opponent" counts the messages of all opponents together: the
    /// one handling that message panics.
    pub faults: Vec<String>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            mode: Mode::Exspin,
            schedule: Schedule::Strict,
            staleness: 1,
            rounds: 3,
            prompts_per_round: 32,
            samples_per_prompt: 2,
            generate_batch: 4,
            generators: 1,
            train_batch: 8,
            replay_capacity: 32,
            trainer_queue: 2,
            executor_workers: 2,
            executor_queue: 64,
            executor_timeout_ms: 2000,
            checkpoint_every: 4,
            keep_checkpoints: 3,
            seed: 7,
            faults: Vec::new(),
        }
    }
}

/// The model behind the seams: `fake` (the deterministic stand-in of `fakes.rs`), `tiny` (a small
/// Qwen2 built from scratch, with a BPE tokenizer trained on the run's data), `random` (a named
/// shape, e.g. `qwen2.5-coder-1.5b`, with random weights and such a BPE: for benchmarks) or
/// `pretrained` (`path` = a GGUF file or a Hugging Face folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub kind: String,
    /// Fake generator: probability of producing the gold query at version 0 ...
    pub fake_p0: f64,
    /// ... rising by this much per version (capped at 0.95).
    pub fake_p_step: f64,
    /// Fake trainer: milliseconds each train step sleeps (to make runs long enough to interrupt).
    pub fake_step_ms: u64,
    /// Fake generator: milliseconds each generate call sleeps per prompt of its batch (to stand
    /// in for generation time, e.g. in `exspin bench pipeline`).
    pub fake_generate_ms: u64,
    /// kind = "pretrained": a .gguf file or a Hugging Face folder.
    pub path: Option<PathBuf>,
    /// kind = "random": the decoder shape (as `exspin bench train --shape`: qwen2-tiny,
    /// llama-tiny, qwen2-30m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b). Its vocabulary is the
    /// shape's; the BPE (`vocab_size` tokens) uses only the first ids.
    pub shape: Option<String>,
    /// Where the real model runs: "cpu" (default), "cuda" or "cuda:N" (needs a binary built with
    /// `--features cuda`). Every seam (SFT, opponents, learner, dev evaluator) uses it.
    pub device: String,
    /// Weight dtype: "f32" (default) or "bf16" (CUDA only; log-probs and losses stay f32).
    pub dtype: String,
    /// Prompts: "integrated" (src/schema's filtered, annotated schema with matched values) or
    /// "plain" (the full schema as bare CREATE TABLE statements: the ablation).
    pub schema: String,
    /// Schema filter of the integrated prompt: tables kept, columns kept per table.
    pub schema_k1: usize,
    pub schema_k2: usize,
    /// Representative values (`-- e.g. ...`) in the integrated prompt's column comments; false
    /// keeps filtering, keys, comments and matched values in a much shorter prompt.
    pub schema_values: bool,
    /// kind = "tiny": BPE vocabulary and decoder shape.
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// Opponent sampling (dev evaluation is greedy).
    pub temperature: f64,
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// Self-play learner: AdamW peak learning rate, warmup steps, gradient clipping.
    pub lr: f64,
    pub warmup_steps: usize,
    pub max_grad_norm: f64,
    /// λ of the SPIN / ExSPIN loss (β of DPO).
    pub lambda: f64,
    /// Rows per forward pass when scoring log-probs and generating for dev (memory vs speed).
    pub chunk: usize,
    /// Self-play learner: keep only each layer's input from the forward pass and recompute the
    /// layer during the backward (one more forward of compute for a fraction of the activation
    /// memory: ~5.7 GB → ~0.5 GB for a pair of ~1k-token prompts on the 0.5B model).
    pub activation_checkpointing: bool,
    /// Train LoRA adapters instead of every weight (the published weights are merged).
    pub lora: Option<exspin::model::lora::LoraConfig>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: "fake".into(),
            fake_p0: 0.3,
            fake_p_step: 0.2,
            fake_step_ms: 0,
            fake_generate_ms: 0,
            path: None,
            shape: None,
            device: "cpu".into(),
            dtype: "f32".into(),
            schema: "integrated".into(),
            schema_k1: 4,
            schema_k2: 10,
            schema_values: true,
            vocab_size: 1024,
            hidden_size: 64,
            intermediate_size: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 64,
            lr: 1e-4,
            warmup_steps: 2,
            max_grad_norm: 1.0,
            lambda: 0.1,
            chunk: 16,
            activation_checkpointing: false,
            lora: None,
        }
    }
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
        }
    }
}

pub const ACTORS: [&str; 6] = [
    "prompt_builder",
    "opponent",
    "executor",
    "replay",
    "trainer",
    "evaluator",
];

impl JobConfig {
    /// The part of the config the SFT phase (version 0) depends on, as TOML: everything except the
    /// self-play settings (the `[run]` section but its seed, the learner's sampling, learning rate
    /// and λ, `[metrics]`). Two runs with the same signature train the same version 0, so one may
    /// start from the other's (`exspin run --sft-from`). Conservative: a field not listed here as
    /// self-play-only keeps the signatures apart.
    pub fn sft_signature(&self) -> String {
        let mut sig = self.clone();
        sig.run = RunConfig {
            seed: self.run.seed,
            ..RunConfig::default()
        };
        sig.metrics = MetricsConfig::default();
        let d = ModelConfig::default();
        sig.model.temperature = d.temperature;
        sig.model.top_p = d.top_p;
        sig.model.lr = d.lr;
        sig.model.warmup_steps = d.warmup_steps;
        sig.model.lambda = d.lambda;
        sig.model.activation_checkpointing = d.activation_checkpointing;
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

    /// Every problem at once, one per line, each saying what to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        let r = &self.run;
        match self.data.source.as_str() {
            "synthetic" => {
                if self.data.synthetic_train == 0 || self.data.synthetic_dev == 0 {
                    errors.push(
                        "data.synthetic_train and data.synthetic_dev must be at least 1".into(),
                    );
                }
                if self.data.synthetic_holdout >= self.data.synthetic_train {
                    errors.push(format!(
                        "data.synthetic_holdout ({}) must be below data.synthetic_train ({}): the \
                         held-out questions come out of the train split",
                        self.data.synthetic_holdout, self.data.synthetic_train
                    ));
                }
            }
            "spider" => {
                if self.data.path.is_none() {
                    errors.push("data.source = \"spider\" needs data.path (the folder with train_spider.json)".into());
                }
            }
            other => errors.push(format!(
                "data.source = \"{other}\" is unknown; use \"synthetic\" or \"spider\""
            )),
        }
        for (name, v) in [
            ("run.rounds", r.rounds as usize),
            ("run.prompts_per_round", r.prompts_per_round),
            ("run.samples_per_prompt", r.samples_per_prompt),
            ("run.generate_batch", r.generate_batch),
            ("run.train_batch", r.train_batch),
            ("run.trainer_queue", r.trainer_queue),
            ("run.executor_workers", r.executor_workers),
            ("run.executor_queue", r.executor_queue),
            ("run.keep_checkpoints", r.keep_checkpoints),
        ] {
            if v == 0 {
                errors.push(format!("{name} must be at least 1"));
            }
        }
        if r.generators == 0 {
            errors.push(
                "run.generators must be at least 1: it is the number of opponent-generator actors \
                 (1 = one opponent, the default)"
                    .into(),
            );
        }
        // Below this the buffer can hold a part batch and still have no room for a whole prompt:
        // no credit, no sample, no batch, a stall.
        let least = r.train_batch + r.samples_per_prompt.max(1) - 1;
        if r.replay_capacity < least {
            errors.push(format!(
                "run.replay_capacity ({}) must be at least run.train_batch + run.samples_per_prompt - 1 \
                 = {least}, or the pipeline can stall; raise it",
                r.replay_capacity
            ));
        }
        if r.schedule == Schedule::Async && r.staleness == 0 {
            errors.push(
                "run.schedule = \"async\" needs run.staleness >= 1 (with 0 it is \"strict\")"
                    .into(),
            );
        }
        if r.executor_timeout_ms == 0 {
            errors.push("run.executor_timeout_ms must be positive".into());
        }
        for f in &r.faults {
            if let Err(e) = crate::fault::parse_one(f) {
                errors.push(format!("run.faults: {e}"));
            }
        }
        let m = &self.model;
        match m.kind.as_str() {
            "fake" | "tiny" => {}
            "random" => match m.shape.as_deref() {
                None => errors.push(format!(
                    "model.kind = \"random\" needs model.shape, one of {}",
                    exspin::model::Config::SHAPES.join(", ")
                )),
                Some(shape) => match exspin::model::Config::named(shape) {
                    None => errors.push(format!(
                        "model.shape = \"{shape}\" is unknown; use one of {}",
                        exspin::model::Config::SHAPES.join(", ")
                    )),
                    Some(c) if m.vocab_size > c.vocab_size => errors.push(format!(
                        "model.vocab_size ({}) must not exceed the vocabulary of model.shape = \
                         \"{shape}\" ({}): the BPE's ids must be the model's",
                        m.vocab_size, c.vocab_size
                    )),
                    Some(_) => {}
                },
            },
            "pretrained" => {
                if m.path.is_none() {
                    errors.push(
                        "model.kind = \"pretrained\" needs model.path (a .gguf file or a Hugging \
                         Face folder)"
                            .into(),
                    );
                }
            }
            other => errors.push(format!(
                "model.kind = \"{other}\" is unknown; use \"fake\", \"tiny\", \"random\" or \
                 \"pretrained\""
            )),
        }
        if let Err(e) = crate::device::check_device(&m.device, "model.device") {
            errors.push(e.to_string());
        }
        match crate::device::parse_dtype_as(&m.dtype, "model.dtype") {
            Err(e) => errors.push(e.to_string()),
            Ok(candle_core::DType::BF16) if m.device == "cpu" => errors.push(
                "model.dtype = \"bf16\" needs model.device = \"cuda\" (candle's CPU bf16 kernels \
                 are slow); use model.dtype = \"f32\" on the CPU"
                    .into(),
            ),
            Ok(_) => {}
        }
        if !matches!(m.schema.as_str(), "integrated" | "plain") {
            errors.push(format!(
                "model.schema = \"{}\" is unknown; use \"integrated\" or \"plain\"",
                m.schema
            ));
        }
        if m.kind != "fake" {
            for (name, v) in [
                ("model.vocab_size", m.vocab_size),
                ("model.hidden_size", m.hidden_size),
                ("model.intermediate_size", m.intermediate_size),
                ("model.layers", m.layers),
                ("model.heads", m.heads),
                ("model.kv_heads", m.kv_heads),
                ("model.max_new_tokens", m.max_new_tokens),
                ("model.chunk", m.chunk),
                ("model.schema_k1", m.schema_k1),
                ("model.schema_k2", m.schema_k2),
                ("sft.batch_size", self.sft.batch_size),
            ] {
                if v == 0 {
                    errors.push(format!("{name} must be at least 1"));
                }
            }
            if m.heads > 0
                && m.kv_heads > 0
                && (!m.hidden_size.is_multiple_of(m.heads)
                    || !m.heads.is_multiple_of(m.kv_heads)
                    || !(m.hidden_size / m.heads).is_multiple_of(2))
            {
                errors.push(format!(
                    "model.hidden_size ({}) must split into model.heads ({}) heads of even size, and \
                     model.heads into model.kv_heads ({}) groups",
                    m.hidden_size, m.heads, m.kv_heads
                ));
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
        }
        if !(0.0..=1.0).contains(&self.model.fake_p0) || self.model.fake_p_step < 0.0 {
            errors
                .push("model.fake_p0 must be in [0, 1] and model.fake_p_step non-negative".into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", errors.join("\n"))
        }
    }
}

impl RunConfig {
    /// Pairs the replay buffer may hold: `replay_capacity`, raised to a whole round under the
    /// phased schedule (its barrier between execution and training holds a round's pairs).
    pub fn effective_capacity(&self) -> usize {
        match self.schedule {
            Schedule::Phased => self
                .replay_capacity
                .max(self.prompts_per_round * self.samples_per_prompt),
            _ => self.replay_capacity,
        }
    }

    /// The last round whose prompts may be issued while `trained` rounds are done: the round in
    /// progress, or up to `staleness` rounds ahead under the async schedule (capped at the end).
    pub fn released_through(&self, trained: u64) -> u64 {
        let ahead = match self.schedule {
            Schedule::Async => self.staleness,
            _ => 0,
        };
        (trained + ahead).min(self.rounds.saturating_sub(1))
    }
}

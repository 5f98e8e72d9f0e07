//! `[run]`: the self-play rounds, the pipeline's bounds, checkpoints and injected faults.

use serde::{Deserialize, Serialize};

use crate::config::FaultSpec;

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
    /// Continued SFT: the gold answer alone (no negative) for every generation the executor
    /// judged not correct, the same prompts and steps ExSPIN trains on: the control that tells
    /// what ExSPIN's negative adds. With `run.follow`, exactly the samples a finished run
    /// trained, without generating.
    Sft,
    /// GRPO with an execution reward (the baseline of FINER-SQL, SQL-R1, Arctic-Text2SQL-R1):
    /// every generation of a prompt is trained with its group-normalized reward as advantage
    /// and a clipped ratio against its generation-time log-prob (`exspin::train::grpo`); a
    /// prompt whose generations all earn the same reward gives nothing. The same prompts and
    /// samples per round as the other modes: the same generation budget.
    Grpo,
}

/// How rounds follow each other (`run.schedule`); not the learning-rate schedule
/// (`exspin::train`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoundSchedule {
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
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub mode: Mode,
    pub schedule: RoundSchedule,
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
    /// Pairs per `Learner::train_step`.
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
    /// Restarts one actor may take within `restart_window_s` seconds; one more ends the run: a
    /// checkpoint is written and the run exits non-zero, naming the actor and its last panic. A
    /// failure a restart does not cure (out of memory, a bad batch) then costs minutes of a shared
    /// node, not its whole allocation.
    pub max_restarts: u32,
    pub restart_window_s: u64,
    /// Injected panics, "stage:message_index" (stage: prompt_builder, opponent, executor,
    /// replay, trainer, evaluator), each firing once, or "stage:*", firing at every message of
    /// the stage; `EXSPIN_FAULT` adds more (comma-separated).
    /// With several generators, "opponent" counts the messages of all opponents together: the
    /// one handling that message panics.
    pub faults: Vec<FaultSpec>,
    /// ε of GRPO's clipped ratio (read only with mode = "grpo"). GRPO's KL to version 0 is not
    /// used by the runtime (β = 0, as in DAPO and Dr. GRPO).
    pub grpo_clip: f64,
    /// Continued SFT (mode = "sft") only: a finished run's folder, relative to this run's folder
    /// (or absolute). This run then trains the gold answer of exactly the samples that run
    /// trained (its `summary.json`), round by round, without generating or executing: the same
    /// prompts and the same number of steps, so the comparison differs only by the negative
    /// (`logic::follow`). Both runs need the same data, seed, prompts and samples per round. An
    /// experiment sets it from a method's `follow = "NAME"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<std::path::PathBuf>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            mode: Mode::Exspin,
            schedule: RoundSchedule::Strict,
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
            max_restarts: 5,
            restart_window_s: 600,
            faults: Vec::new(),
            grpo_clip: 0.2,
            follow: None,
        }
    }
}

impl RunConfig {
    /// Pairs the replay buffer may hold: `replay_capacity`, raised to a whole round under the
    /// phased schedule (its barrier between execution and training holds a round's pairs).
    pub fn effective_capacity(&self) -> usize {
        match self.schedule {
            RoundSchedule::Phased => self
                .replay_capacity
                .max(self.prompts_per_round * self.samples_per_prompt),
            _ => self.replay_capacity,
        }
    }

    /// The last round whose prompts may be issued while `trained` rounds are done: the round in
    /// progress, or up to `staleness` rounds ahead under the async schedule (capped at the end).
    pub fn released_through(&self, trained: u64) -> u64 {
        let ahead = match self.schedule {
            RoundSchedule::Async => self.staleness,
            _ => 0,
        };
        (trained + ahead).min(self.rounds.saturating_sub(1))
    }

    /// Problems no type can rule out, one per entry, each saying what to change.
    pub(super) fn problems(&self, errors: &mut Vec<String>) {
        let r = self;
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
        if r.mode == Mode::Grpo && r.samples_per_prompt < 2 {
            errors.push(format!(
                "run.mode = \"grpo\" normalizes rewards within a prompt's samples, and \
                 run.samples_per_prompt is {}: set it to 2 or more (GRPO papers use 8-16)",
                r.samples_per_prompt
            ));
        }
        if !(r.grpo_clip > 0.0 && r.grpo_clip < 1.0) {
            errors.push(format!(
                "run.grpo_clip ({}) must lie in (0, 1): the ratio is clipped to [1 - ε, 1 + ε]",
                r.grpo_clip
            ));
        }
        if r.follow.is_some() && r.mode != Mode::Sft {
            errors.push(format!(
                "run.follow is for continued SFT (run.mode = \"sft\"), and run.mode is \"{}\": \
                 remove run.follow (a self-play mode generates its own samples)",
                format!("{:?}", r.mode).to_lowercase()
            ));
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
        if r.schedule == RoundSchedule::Async && r.staleness == 0 {
            errors.push(
                "run.schedule = \"async\" needs run.staleness >= 1 (with 0 it is \"strict\")"
                    .into(),
            );
        }
        if r.executor_timeout_ms == 0 {
            errors.push("run.executor_timeout_ms must be positive".into());
        }
        if r.restart_window_s == 0 {
            errors.push(
                "run.restart_window_s must be positive (seconds in which run.max_restarts \
                 restarts of one actor are allowed)"
                    .into(),
            );
        }
    }
}

//! The seams between the runtime and the model: what the actors need from a generator, a learner
//! and a dev evaluator, as plain synchronous traits.
//!
//! Two implementations: the real model (`models/real`: the candle decoder, LoRA, losses and AdamW
//! of `src/model` and `src/train`) and the fakes (`models/fakes.rs`), which exercise the runtime
//! in seconds. The traits are synchronous on purpose: model code
//! is CPU/GPU-bound, so the actors call it inside `tokio::task::spawn_blocking` and the runtime
//! stays responsive. Each seam object lives behind a mutex owned by the supervisor, so an actor
//! that panics and restarts finds the model as it was (weights are never lost with a shell).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub type SeamResult<T> = anyhow::Result<T>;

/// One prompt to answer: an example of the current round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptItem {
    pub example_id: String,
    pub db_id: String,
    pub question: String,
    pub gold_sql: String,
    /// The text given to the model (a stand-in format until `src/schema` lands).
    pub prompt: String,
    pub round: u64,
}

impl PromptItem {
    /// The deterministic id of the `k`-th sample of this prompt.
    pub fn sample_id(&self, k: usize) -> String {
        format!("{}#r{}#s{k}", self.example_id, self.round)
    }
}

/// One generation of the opponent, with the reference log-probs computed at generation time (so
/// the trainer never holds a second model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub example_id: String,
    /// `{example_id}#r{round}#s{k}`.
    pub sample_id: String,
    pub round: u64,
    pub sql: String,
    /// Opponent version t that produced it.
    pub version: u64,
    /// The version whose log-probs `logp_gold` and `logp_gen` are: t for SPIN and ExSPIN (the
    /// opponent is the reference), 0 for DPO (the frozen SFT model).
    #[serde(default)]
    pub ref_version: u64,
    pub logp_gold: f32,
    pub logp_gen: f32,
    /// Tokens the generator produced for this sample (the real model: every generated token id,
    /// EOS included; the fake: whitespace-separated pieces of its SQL). 0 where not generated.
    #[serde(default)]
    pub tokens: u32,
}

/// The executor's judgement of a generation: the one judge's verdict.
pub use exspin::eval::Verdict;

/// A sample with its prompt and verdict: what the replay buffer turns into pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub prompt: PromptItem,
    pub sample: Sample,
    pub verdict: Verdict,
}

/// One training pair. `id` is the sample id it came from, so "trained exactly once" is checkable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub id: String,
    pub example_id: String,
    pub prompt: String,
    /// Preferred completion (gold SQL, or a correct generation in dpo mode).
    pub chosen: String,
    /// Dispreferred completion; `None` in sft mode.
    pub rejected: Option<String>,
    /// Opponent version that made the sample.
    pub version: u64,
    /// Reference log-probs of chosen and rejected, and the version they are of (the opponent's
    /// for SPIN / ExSPIN, 0 for DPO).
    pub ref_logp_chosen: f32,
    pub ref_logp_rejected: Option<f32>,
    #[serde(default)]
    pub ref_version: u64,
    /// GRPO: the group-normalized reward of `chosen` (a generation, whose generation-time
    /// log-prob is `ref_logp_chosen`); `None` in the pair modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advantage: Option<f32>,
}

/// A published set of weights: version t and where they are (None for in-memory fakes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsHandle {
    pub version: u64,
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub loss: f64,
    /// Mean (chosen − rejected) implicit reward.
    pub reward_margin: f64,
    /// Mean implicit reward λ·(log pθ − log p_ref) of the gold answers (pair modes; 0 otherwise):
    /// negative means the gold's likelihood is falling, the first sign of a collapsing round.
    #[serde(default)]
    pub chosen_reward: f64,
    /// Mean per-token NLL of the gold answers, when the loss has the gold NLL term
    /// (`model.gold_nll_weight`).
    #[serde(default)]
    pub gold_nll: Option<f64>,
    pub pairs: usize,
    /// Token positions of the step's forward pass (prompt + answer of every row: chosen, and
    /// rejected in the pair modes; the fake counts whitespace-separated pieces).
    pub tokens: u64,
}

/// The opponent: θt answering prompts.
pub trait Generator: Send {
    /// `n_samples` generations per prompt, prompt by prompt, sample ids from
    /// [`PromptItem::sample_id`], tagged with `version`.
    fn generate(
        &mut self,
        batch: &[PromptItem],
        n_samples: usize,
        version: u64,
    ) -> SeamResult<Vec<Sample>>;
    /// Switches to published weights.
    fn load_version(&mut self, weights: &WeightsHandle) -> SeamResult<()>;
}

/// The learner: θt+1.
pub trait Learner: Send {
    fn train_step(&mut self, pairs: &[Pair]) -> SeamResult<StepMetrics>;
    /// Publishes the current weights as the next version (t+1).
    fn publish(&mut self) -> SeamResult<WeightsHandle>;
    /// Writes everything needed to continue (weights, optimizer, step) into `dir` (exists, empty).
    fn save_state(&self, dir: &Path) -> SeamResult<()>;
    /// Restores what `save_state` wrote.
    fn restore_state(&mut self, dir: &Path) -> SeamResult<()>;
}

/// Dev execution accuracy of a published version, a fraction in [0, 1].
pub trait DevEvaluator: Send {
    fn evaluate(&mut self, weights: &WeightsHandle) -> SeamResult<f64>;
}

/// Stand-in prompt format until `src/schema` builds real prompts (schema, values, question).
pub fn stand_in_prompt(db_id: &str, question: &str) -> String {
    format!("-- database: {db_id}\n-- question: {question}\nSELECT")
}

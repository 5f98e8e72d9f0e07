//! `summary.json`: the run's outcome in one file, rewritten (atomically) at every round's end and
//! when the run finishes or stops.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{JobConfig, Mode, Schedule};
use crate::context::Ctx;
use crate::journal::{Journal, QueueMax};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mode: Mode,
    pub seed: u64,
    /// Rounds fully trained.
    pub rounds: u64,
    pub steps: u64,
    pub pairs_trained: usize,
    /// Every trained pair id (= sample id), in training order.
    pub samples_trained_ids: Vec<String>,
    /// Dev execution accuracy after each round, fractions in [0, 1].
    pub dev_ex_per_round: Vec<f64>,
    pub restarts: u64,
    pub restarts_by_actor: BTreeMap<String, u64>,
    pub finished: bool,
    pub mean_loss: Option<f64>,
    pub last_loss: Option<f64>,
    pub samples_generated: u64,
    pub samples_judged: u64,
    pub duplicates_dropped: u64,
    pub verdicts: BTreeMap<String, u64>,
    pub queue_max: QueueMax,
    pub queue_bounds: QueueMax,
    #[serde(default = "strict")]
    pub schedule: Schedule,
    /// Generations discarded by the mode (exspin: judged correct); filter rate = this / judged.
    #[serde(default)]
    pub samples_filtered: u64,
    /// Most versions a trained sample's generator lagged behind the trainer (≤ run.staleness).
    #[serde(default)]
    pub max_staleness: u64,
    #[serde(default)]
    pub stale_pairs: u64,
}

fn strict() -> Schedule {
    Schedule::Strict
}

pub fn bounds(config: &JobConfig) -> QueueMax {
    let r = &config.run;
    QueueMax {
        replay_pairs: r.effective_capacity(),
        opponent_prompts: r.effective_capacity() / r.samples_per_prompt,
        trainer_batches: r.trainer_queue,
    }
}

pub fn from_journal(j: &Journal, config: &JobConfig) -> Summary {
    Summary {
        mode: config.run.mode,
        seed: config.run.seed,
        rounds: j.round,
        steps: j.step,
        pairs_trained: j.trained_ids.len(),
        samples_trained_ids: j.trained_ids.clone(),
        dev_ex_per_round: j.dev_ex.values().copied().collect(),
        restarts: j.restarts_total(),
        restarts_by_actor: j.restarts.clone(),
        finished: j.finished,
        mean_loss: (j.step > 0).then(|| j.loss_sum / j.step as f64),
        last_loss: j.last_loss,
        samples_generated: j.samples_generated,
        samples_judged: j.samples_judged,
        duplicates_dropped: j.duplicates_dropped,
        verdicts: j.verdicts.clone(),
        queue_max: j.queue_max.clone(),
        queue_bounds: bounds(config),
        schedule: config.run.schedule,
        samples_filtered: j.samples_filtered,
        max_staleness: j.max_staleness,
        stale_pairs: j.stale_pairs,
    }
}

pub fn write(run_dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    let tmp = run_dir.join(".summary.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(summary)?)?;
    std::fs::rename(&tmp, run_dir.join("summary.json"))?;
    Ok(())
}

pub fn write_from(ctx: &Ctx) -> anyhow::Result<()> {
    let s = from_journal(&ctx.journal.lock(), &ctx.config);
    write(&ctx.run_dir, &s)
}

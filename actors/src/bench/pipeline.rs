//! `exspin bench pipeline`: the same job (config, seed, data) run streaming and phased, each in a
//! fresh temporary run folder, with wall time and the busy time of every stage.
//!
//! Busy time (`stats.rs`) is the time a stage spent working: building prompts, generating
//! (including loading a published version), executing and judging SQL, training (steps and
//! publishing), writing checkpoints, evaluating dev accuracy. Without overlap the wall time is
//! their sum plus overheads; a pipeline hides part of them behind each other.
//!
//! Share of SQL execution time hidden by overlap (per run):
//!
//! ```text
//! other   = busy(prompt_builder) + busy(opponent) + busy(trainer) + busy(checkpoint)
//!           + busy(evaluator)                 (replay does no timed work)
//! exposed = max(0, wall − other)          (wall time not explained by the other stages)
//! hidden  = clamp(1 − exposed / busy(executor), 0, 1)
//! ```
//!
//! It takes the other stages as the critical path, i.e. as if they ran one after another (as
//! generation and training do when they share one GPU). Everything else on the wall clock
//! (execution not overlapped, scheduling, messages) counts as exposed execution, so the figure is
//! a lower bound on what the pipeline hides, and a phased run scores ≈ 0 by construction. Where
//! generation and training overlap each other too (separate devices, or the fake model's sleeps),
//! `other` exceeds the critical path and the figure can overstate; compare the wall times then.
//!
//! A second, direct figure: `exec_overlapped_share` = the share of execution busy time during
//! which at least one other stage was busy as well (from the recorded busy intervals). It shows
//! that overlap happened, but not that it shortened the critical path.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::config::Stage;
use crate::config::{JobConfig, RoundSchedule};

#[derive(Debug, Clone, Serialize)]
pub struct BenchRun {
    pub schedule: RoundSchedule,
    /// From starting the actors to the last dev evaluation (data preparation excluded).
    pub wall_s: f64,
    pub busy_s: BTreeMap<String, f64>,
    /// busy(execute) / wall: how much of the run the executor was working.
    pub exec_share_of_wall: f64,
    pub exec_hidden_share: Option<f64>,
    /// Measured directly: share of execution busy time during which another stage was busy too
    /// (interval overlap; counts overlap with a stage that may itself not be on the critical path).
    pub exec_overlapped_share: Option<f64>,
    pub rounds: u64,
    pub steps: u64,
    pub pairs_trained: usize,
    pub samples_generated: u64,
    pub samples_judged: u64,
    pub pairs_per_s: f64,
    pub queries_per_s: f64,
    /// Tokens generated, and per second of generation (summed over the opponents).
    pub generated_tokens: u64,
    pub generated_tokens_per_s: Option<f64>,
    /// Token positions trained (chosen and rejected rows), and per second of train steps.
    pub trained_tokens: u64,
    pub trained_tokens_per_s: Option<f64>,
    pub dev_ex_per_round: Vec<f64>,
    pub max_staleness: u64,
    pub finished: bool,
    #[serde(skip)]
    pub trained_ids: Vec<String>,
}

/// The hidden share of the module doc, from busy seconds by stage name and the wall time.
pub fn exec_hidden_share(busy: &BTreeMap<String, f64>, wall_s: f64) -> Option<f64> {
    let exec = busy.get(Stage::Executor.name()).copied().unwrap_or(0.0);
    if exec <= 0.0 {
        return None;
    }
    let other: f64 = busy
        .iter()
        .filter(|(k, _)| k.as_str() != Stage::Executor.name())
        .map(|(_, v)| v)
        .sum();
    let exposed = (wall_s - other).max(0.0);
    Some((1.0 - exposed / exec).clamp(0.0, 1.0))
}

/// Runs `config` under `schedule` in a fresh temporary run folder, to the end.
pub fn run_one(config: &JobConfig, schedule: RoundSchedule) -> anyhow::Result<BenchRun> {
    let mut config = config.clone();
    config.run.schedule = schedule;
    config.run.faults.clear();
    config.metrics.prometheus_port = 0;
    config
        .validate()
        .with_context(|| format!("the config with run.schedule = {schedule:?}"))?;
    let tmp = tempfile::tempdir().context("creating a temporary run folder")?;
    let text = toml::to_string(&config)?;
    std::fs::write(tmp.path().join("config.toml"), &text)?;
    let ctx = crate::runtime::prepare(config, &text, tmp.path())?;
    ctx.stats.record_intervals();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = Instant::now();
    let end = rt.block_on(crate::runtime::drive(
        ctx.clone(),
        None,
        std::future::pending(),
    ))?;
    let wall = started.elapsed().as_secs_f64();
    rt.shutdown_timeout(Duration::from_secs(5));
    let busy = ctx.stats.busy_seconds();
    let exec = ctx.stats.busy(Stage::Executor).as_secs_f64();
    let overlapped = ctx.stats.overlapped(Stage::Executor).as_secs_f64();
    let s = end.summary;
    anyhow::ensure!(s.finished, "the {schedule:?} run did not finish: {s:?}");
    Ok(BenchRun {
        schedule,
        wall_s: wall,
        exec_share_of_wall: busy.get(Stage::Executor.name()).copied().unwrap_or(0.0) / wall,
        exec_hidden_share: exec_hidden_share(&busy, wall),
        exec_overlapped_share: (exec > 0.0).then(|| overlapped / exec),
        busy_s: busy,
        rounds: s.rounds,
        steps: s.steps,
        pairs_trained: s.pairs_trained,
        samples_generated: s.samples_generated,
        samples_judged: s.samples_judged,
        pairs_per_s: s.pairs_trained as f64 / wall,
        queries_per_s: s.samples_judged as f64 / wall,
        generated_tokens: s.generated_tokens,
        generated_tokens_per_s: s.generated_tokens_per_s,
        trained_tokens: s.trained_tokens,
        trained_tokens_per_s: s.trained_tokens_per_s,
        dev_ex_per_round: s.dev_ex_per_round,
        max_staleness: s.max_staleness,
        finished: s.finished,
        trained_ids: s.samples_trained_ids,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineBench {
    pub streaming: BenchRun,
    pub phased: BenchRun,
    /// streaming wall / phased wall (< 1: streaming is faster).
    pub wall_ratio_streaming_over_phased: f64,
    /// phased wall / streaming wall.
    pub speedup: f64,
    /// Both runs trained the same set of sample ids (expected for strict vs phased with a
    /// deterministic model; async trains samples of older versions, so its set may differ).
    pub same_pairs: bool,
    pub repeat: usize,
    pub hidden_share_formula: &'static str,
}

pub const FORMULA: &str = "hidden = clamp(1 - max(0, wall - (busy.prompt_builder + busy.opponent + busy.trainer + \
busy.checkpoint + busy.evaluator)) / busy.executor, 0, 1)";

/// Streaming (the config's schedule; strict when the config says phased) against phased,
/// alternating `repeat` times; each side keeps its fastest run.
pub fn bench(config: &JobConfig, repeat: usize) -> anyhow::Result<PipelineBench> {
    let streaming_schedule = match config.run.schedule {
        RoundSchedule::Phased => RoundSchedule::Strict,
        s => s,
    };
    let mut best: [Option<BenchRun>; 2] = [None, None];
    for i in 0..repeat.max(1) {
        for (k, schedule) in [streaming_schedule, RoundSchedule::Phased]
            .into_iter()
            .enumerate()
        {
            tracing::info!("bench pipeline: {schedule:?} run {}", i + 1);
            let r = run_one(config, schedule)?;
            if best[k].as_ref().is_none_or(|b| r.wall_s < b.wall_s) {
                best[k] = Some(r);
            }
        }
    }
    let [Some(streaming), Some(phased)] = best else {
        unreachable!("at least one run of each")
    };
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    Ok(PipelineBench {
        wall_ratio_streaming_over_phased: streaming.wall_s / phased.wall_s,
        speedup: phased.wall_s / streaming.wall_s,
        same_pairs: sorted(&streaming.trained_ids) == sorted(&phased.trained_ids),
        streaming,
        phased,
        repeat: repeat.max(1),
        hidden_share_formula: FORMULA,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_share_formula() {
        let busy = |g: f64, x: f64, t: f64| {
            BTreeMap::from([
                (Stage::Opponent.name().to_string(), g),
                (Stage::Executor.name().to_string(), x),
                (Stage::Trainer.name().to_string(), t),
            ])
        };
        // Fully serial: wall = sum → nothing hidden.
        assert_eq!(exec_hidden_share(&busy(1.0, 2.0, 1.0), 4.0), Some(0.0));
        // Execution entirely behind the others.
        assert_eq!(exec_hidden_share(&busy(1.0, 2.0, 1.0), 2.0), Some(1.0));
        // Half of it exposed.
        assert_eq!(exec_hidden_share(&busy(1.0, 2.0, 1.0), 3.0), Some(0.5));
        assert_eq!(exec_hidden_share(&busy(1.0, 0.0, 1.0), 3.0), None);
    }
}

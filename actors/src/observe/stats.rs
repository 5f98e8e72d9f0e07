//! Time each stage spends working ("busy time"), measured in the actors around the blocking work
//! they hand to the seams and the executor pool. `exspin bench pipeline` compares these with the
//! wall time to tell how much of one stage the pipeline hides behind the others; the Prometheus
//! endpoint exports them as `exspin_stage_busy_seconds{stage=...}`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::Stage;

/// What busy time is counted for: a stage's work, or the trainer writing a checkpoint between
/// steps (kept apart so `exspin bench pipeline` can show what checkpoints cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    Stage(Stage),
    Checkpoint,
}

impl Busy {
    pub const ALL: [Busy; 7] = [
        Busy::Stage(Stage::PromptBuilder),
        Busy::Stage(Stage::Opponent),
        Busy::Stage(Stage::Executor),
        Busy::Stage(Stage::Replay),
        Busy::Stage(Stage::Trainer),
        Busy::Stage(Stage::Evaluator),
        Busy::Checkpoint,
    ];

    /// The stage's name, or `checkpoint`.
    pub fn name(self) -> &'static str {
        match self {
            Busy::Stage(stage) => stage.name(),
            Busy::Checkpoint => "checkpoint",
        }
    }

    fn index(self) -> usize {
        match self {
            Busy::Stage(stage) => stage as usize,
            Busy::Checkpoint => Stage::ALL.len(),
        }
    }
}

impl From<Stage> for Busy {
    fn from(stage: Stage) -> Busy {
        Busy::Stage(stage)
    }
}

/// Busy nanoseconds per stage since the run (this process) started.
#[derive(Debug)]
pub struct StageStats {
    pub started: Instant,
    busy_ns: [AtomicU64; 7],
    /// When set (benchmarks only: it grows with the run), every busy interval is kept.
    recording: AtomicBool,
    intervals: Mutex<Vec<(Busy, Duration, Duration)>>,
}

impl Default for StageStats {
    fn default() -> Self {
        StageStats {
            started: Instant::now(),
            busy_ns: Default::default(),
            recording: AtomicBool::new(false),
            intervals: Mutex::new(Vec::new()),
        }
    }
}

impl StageStats {
    /// Keep every busy interval from now on (for [`StageStats::overlapped`]).
    pub fn record_intervals(&self) {
        self.recording.store(true, Ordering::Relaxed);
    }

    /// Of `stage`'s busy time, how much passed while at least one other stage was busy too
    /// (needs [`StageStats::record_intervals`] before the run).
    pub fn overlapped(&self, what: impl Into<Busy>) -> Duration {
        let stage = what.into();
        let all = self.intervals.lock();
        let mut others: Vec<(Duration, Duration)> = all
            .iter()
            .filter(|(s, _, _)| *s != stage)
            .map(|&(_, a, b)| (a, b))
            .collect();
        others.sort();
        let mut union: Vec<(Duration, Duration)> = Vec::new();
        for (a, b) in others {
            match union.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => union.push((a, b)),
            }
        }
        all.iter()
            .filter(|(s, _, _)| *s == stage)
            .map(|&(_, a, b)| {
                union
                    .iter()
                    .map(|&(c, d)| b.min(d).saturating_sub(a.max(c)))
                    .sum::<Duration>()
            })
            .sum()
    }

    /// Adds a busy interval of `d` that ended now.
    pub fn add(&self, what: impl Into<Busy>, d: Duration) {
        let stage = what.into();
        if self.recording.load(Ordering::Relaxed) {
            let end = self.started.elapsed();
            self.intervals
                .lock()
                .push((stage, end.saturating_sub(d), end));
        }
        self.add_busy(stage, d);
    }

    fn add_busy(&self, stage: Busy, d: Duration) {
        let total = self.busy_ns[stage.index()].fetch_add(d.as_nanos() as u64, Ordering::Relaxed)
            + d.as_nanos() as u64;
        metrics::gauge!("exspin_stage_busy_seconds", "stage" => stage.name())
            .set(total as f64 * 1e-9);
    }

    pub fn busy(&self, what: impl Into<Busy>) -> Duration {
        Duration::from_nanos(self.busy_ns[what.into().index()].load(Ordering::Relaxed))
    }

    /// Seconds per stage name.
    pub fn busy_seconds(&self) -> BTreeMap<String, f64> {
        Busy::ALL
            .iter()
            .map(|s| (s.name().to_string(), self.busy(*s).as_secs_f64()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_only_time_shared_with_other_stages() {
        let s = StageStats::default();
        let ms = Duration::from_millis;
        let mut iv = s.intervals.lock();
        iv.push((Stage::Executor.into(), ms(0), ms(10)));
        iv.push((Stage::Opponent.into(), ms(5), ms(8)));
        iv.push((Stage::Trainer.into(), ms(7), ms(12)));
        iv.push((Stage::Executor.into(), ms(20), ms(30)));
        iv.push((Stage::Executor.into(), ms(40), ms(50)));
        iv.push((Stage::Trainer.into(), ms(45), ms(60)));
        drop(iv);
        // [5, 10) of the first, none of the second, [45, 50) of the third.
        assert_eq!(s.overlapped(Stage::Executor), ms(10));
        assert_eq!(s.overlapped(Stage::Opponent), ms(3));
    }
}

//! Time each stage spends working ("busy time"), measured in the actors around the blocking work
//! they hand to the seams and the executor pool. `exspin bench pipeline` compares these with the
//! wall time to tell how much of one stage the pipeline hides behind the others; the Prometheus
//! endpoint exports them as `exspin_stage_busy_seconds{stage=...}`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Building the round's prompts (prompt builder).
    Prompt,
    /// `Generator::generate` and `load_version` (opponent).
    Generate,
    /// Running and comparing SQL (executor stage).
    Execute,
    /// `Trainer::train_step` and `publish` (trainer).
    Train,
    /// Writing checkpoints (trainer, between steps).
    Checkpoint,
    /// Dev execution accuracy of published versions (evaluator).
    Evaluate,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Prompt,
        Stage::Generate,
        Stage::Execute,
        Stage::Train,
        Stage::Checkpoint,
        Stage::Evaluate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Prompt => "prompt",
            Stage::Generate => "generate",
            Stage::Execute => "execute",
            Stage::Train => "train",
            Stage::Checkpoint => "checkpoint",
            Stage::Evaluate => "evaluate",
        }
    }
}

/// Busy nanoseconds per stage since the run (this process) started.
#[derive(Debug)]
pub struct StageStats {
    pub started: Instant,
    busy_ns: [AtomicU64; 6],
    /// When set (benchmarks only: it grows with the run), every busy interval is kept.
    recording: AtomicBool,
    intervals: Mutex<Vec<(Stage, Duration, Duration)>>,
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
    pub fn overlapped(&self, stage: Stage) -> Duration {
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
    pub fn add(&self, stage: Stage, d: Duration) {
        if self.recording.load(Ordering::Relaxed) {
            let end = self.started.elapsed();
            self.intervals
                .lock()
                .push((stage, end.saturating_sub(d), end));
        }
        self.add_busy(stage, d);
    }

    fn add_busy(&self, stage: Stage, d: Duration) {
        let total = self.busy_ns[stage as usize].fetch_add(d.as_nanos() as u64, Ordering::Relaxed)
            + d.as_nanos() as u64;
        metrics::gauge!("exspin_stage_busy_seconds", "stage" => stage.name())
            .set(total as f64 * 1e-9);
    }

    /// Runs `f`, adding its duration to `stage`.
    pub fn time<T>(&self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.add(stage, t.elapsed());
        out
    }

    pub fn busy(&self, stage: Stage) -> Duration {
        Duration::from_nanos(self.busy_ns[stage as usize].load(Ordering::Relaxed))
    }

    /// Seconds per stage name.
    pub fn busy_seconds(&self) -> BTreeMap<String, f64> {
        Stage::ALL
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
        iv.push((Stage::Execute, ms(0), ms(10)));
        iv.push((Stage::Generate, ms(5), ms(8)));
        iv.push((Stage::Train, ms(7), ms(12)));
        iv.push((Stage::Execute, ms(20), ms(30)));
        iv.push((Stage::Execute, ms(40), ms(50)));
        iv.push((Stage::Train, ms(45), ms(60)));
        drop(iv);
        // [5, 10) of the first, none of the second, [45, 50) of the third.
        assert_eq!(s.overlapped(Stage::Execute), ms(10));
        assert_eq!(s.overlapped(Stage::Generate), ms(3));
    }
}

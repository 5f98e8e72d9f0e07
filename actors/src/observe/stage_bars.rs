//! `exspin run` / `exspin resume`'s progress on stderr: one bar per stage of the pipeline that
//! counts work (prompt builder: prompts issued; opponents: samples generated; executor: samples
//! judged; trainer: pairs trained; evaluator: versions evaluated; the replay buffer has none) in an
//! `indicatif::MultiProgress`. When stderr is not a terminal (a job under nohup, Slurm or an
//! experiment, whose log is a file) the bars draw nothing and a plain line with every stage's
//! count goes to stderr instead, at most once a minute (`EXSPIN_PROGRESS_EVERY_S` changes the
//! interval), so a log shows a long round moving. Hidden always unless the command asks.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

use crate::config::JobConfig;
use crate::config::Stage;
use crate::state::journal::Journal;

/// The bars (all hidden no-ops when not shown).
#[derive(Debug)]
pub struct StageBars {
    // Kept so the bars stay drawn together.
    multi: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
    /// The fleet's line, added under the bars when a worker first takes work.
    fleet: std::sync::OnceLock<ProgressBar>,
    /// Plain lines instead of drawn bars (stderr is not a terminal): when the last went out.
    plain: Option<PlainLines>,
}

#[derive(Debug)]
struct PlainLines {
    every: Duration,
    started: Instant,
    last: Mutex<Instant>,
}

/// Seconds between plain progress lines unless `EXSPIN_PROGRESS_EVERY_S` says otherwise.
const PLAIN_EVERY_S: u64 = 60;

impl Default for StageBars {
    fn default() -> Self {
        StageBars::hidden()
    }
}

impl StageBars {
    pub fn hidden() -> StageBars {
        StageBars {
            multi: None,
            bars: Stage::ALL.map(|_| ProgressBar::hidden()).to_vec(),
            fleet: std::sync::OnceLock::new(),
            plain: None,
        }
    }

    /// Bars on stderr for a run of `config`, starting from what `journal` has done already
    /// (a resume). Totals are the run's: prompts and samples of every round, pairs at most one
    /// per sample (exspin, sft, dpo and grpo filter some, so they may end below), one
    /// dev evaluation per round.
    pub fn stderr(config: &JobConfig, journal: &Journal) -> StageBars {
        let plain = (!std::io::stderr().is_terminal()).then(|| {
            let every = std::env::var("EXSPIN_PROGRESS_EVERY_S")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(PLAIN_EVERY_S);
            let now = Instant::now();
            PlainLines {
                every: Duration::from_secs(every),
                started: now,
                last: Mutex::new(now),
            }
        });
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let r = &config.run;
        let prompts = r.rounds * r.prompts_per_round as u64;
        let samples = prompts * r.samples_per_prompt as u64;
        let pairs = samples;
        let style =
            ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})")
                .expect("valid template")
                .progress_chars("=> ");
        let bars = Stage::ALL
            .into_iter()
            .map(|stage| {
                let (what, len, pos) = match stage {
                    // Set by the prompt builder when it is handed the run's pending prompts.
                    Stage::PromptBuilder => ("prompts issued", prompts, 0),
                    Stage::Opponent => ("generated", samples, journal.samples_generated),
                    Stage::Executor => ("judged", samples, journal.samples_judged),
                    Stage::Trainer => ("pairs trained", pairs, journal.trained_count),
                    Stage::Evaluator => ("dev evaluated", r.rounds, journal.dev_ex.len() as u64),
                    // The replay buffer's work shows in the bars around it.
                    Stage::Replay => return ProgressBar::hidden(),
                };
                let b = multi.add(ProgressBar::new(len));
                b.set_style(style.clone());
                b.set_message(what);
                b.set_position(pos);
                b
            })
            .collect();
        StageBars {
            multi: Some(multi),
            bars,
            fleet: std::sync::OnceLock::new(),
            plain,
        }
    }

    pub fn inc(&self, stage: Stage, n: u64) {
        self.bars[stage as usize].inc(n);
        if let Some(plain) = &self.plain {
            let now = Instant::now();
            let mut last = plain.last.lock();
            if now.duration_since(*last) >= plain.every {
                *last = now;
                eprintln!("{}", self.plain_line(now.duration_since(plain.started)));
            }
        }
    }

    /// `progress (12m 5s): prompts issued 26/384, generated 52/768, …`.
    fn plain_line(&self, elapsed: Duration) -> String {
        let counts: Vec<String> = self
            .bars
            .iter()
            .filter(|b| !b.message().is_empty())
            .map(|b| {
                format!(
                    "{} {}/{}",
                    b.message(),
                    b.position(),
                    b.length().unwrap_or(0)
                )
            })
            .collect();
        let s = elapsed.as_secs();
        format!("progress ({}m {}s): {}", s / 60, s % 60, counts.join(", "))
    }

    /// Shows `line` (what the fleet's workers hold and have done) on the fleet's line, which
    /// appears under the bars the first time this is called.
    pub fn set_fleet(&self, line: String) {
        let Some(multi) = &self.multi else { return };
        let bar = self.fleet.get_or_init(|| {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{prefix:>14} {msg}").expect("valid template"),
            );
            b.set_prefix("fleet");
            b
        });
        bar.set_message(line);
    }

    /// Puts `stage`'s count at `pos`: what is done already when work is handed out again (a
    /// resume, a restarted actor), so the re-issued part is not counted twice.
    pub fn set_position(&self, stage: Stage, pos: u64) {
        self.bars[stage as usize].set_position(pos);
    }

    pub fn position(&self, stage: Stage) -> u64 {
        self.bars[stage as usize].position()
    }

    /// Leaves the bars as they are (drawn once more, not cleared).
    pub fn finish(&self) {
        for b in self.bars.iter().chain(self.fleet.get()) {
            b.abandon();
        }
    }
}

//! What every actor shares: the config, the journal, the seams, the executor pool and the current
//! address of each peer (updated by the supervisor on a restart, so senders always reach the live
//! incarnation).

use std::path::PathBuf;
use std::sync::Arc;

use exspin::data::Dataset;
use exspin::sql::executor::ExecutorPool;
use parking_lot::{Mutex, RwLock};
use ractor::ActorRef;

use crate::config::JobConfig;
use crate::protocol::seams::{DevEvaluator, Generator, Learner};
use crate::stages::fault::Faults;
use crate::stages::messages::*;
use crate::state::journal::{Journal, SharedJournal};

#[derive(Default)]
pub struct Peers {
    pub prompt_builder: Option<ActorRef<PromptBuilderMsg>>,
    /// One per opponent-generator actor (`run.generators`), by index.
    pub opponents: Vec<Option<ActorRef<OpponentMsg>>>,
    pub executor: Option<ActorRef<ExecutorMsg>>,
    pub replay: Option<ActorRef<ReplayMsg>>,
    pub trainer: Option<ActorRef<TrainerMsg>>,
    pub evaluator: Option<ActorRef<EvaluatorMsg>>,
    pub supervisor: Option<ActorRef<SupervisorMsg>>,
}

pub struct Ctx {
    pub config: JobConfig,
    pub journal: SharedJournal,
    /// `RUN/trained_ids.txt`: every trained id in order (appended under the journal's lock).
    pub ledger: Mutex<crate::state::ledger::Ledger>,
    pub peers: RwLock<Peers>,
    pub faults: Faults,
    /// One seam object per opponent that may generate in this process, by opponent index (the
    /// first `cluster.local_generators` of `run.generators`; the rest only use fleet workers).
    pub generators: Vec<Arc<Mutex<Box<dyn Generator>>>>,
    /// `run.follow`'s run: the opponents generate nothing and hand its judgements on instead.
    pub follow: Option<crate::logic::follow::Followed>,
    pub learner: Arc<Mutex<Box<dyn Learner>>>,
    pub evaluator: Arc<Mutex<Box<dyn DevEvaluator>>>,
    pub pool: Arc<ExecutorPool>,
    /// Prompt texts (src/schema for a real model), cached across rounds.
    pub prompter: Arc<crate::logic::prompts::Prompter>,
    pub train: Arc<Dataset>,
    /// Seeded permutation of the train examples; round r reads a window of it (the data cursor).
    pub order: Vec<usize>,
    pub run_dir: PathBuf,
    pub config_hash: String,
    pub data_hash: String,
    /// Busy time per stage (this process).
    pub stats: crate::observe::stats::StageStats,
    /// One progress bar per stage (hidden unless the command shows them: `exspin run`/`resume`).
    pub progress: crate::observe::stage_bars::StageBars,
    /// Where published version t is (the run's weights folder, or nothing for the fake model):
    /// what an opponent on a fleet worker loads.
    pub weights_of: Box<dyn Fn(u64) -> crate::protocol::seams::WeightsHandle + Send + Sync>,
    /// Why the supervisor gave up (an actor past its restart budget), for the run's error.
    pub gave_up: Mutex<Option<String>>,
    /// Since when this process has not yet added its time to the journal's `round_seconds`.
    pub round_clock: Mutex<std::time::Instant>,
    /// Set when a stop is asked for: the trainer trains nothing more, so the stop's checkpoint is
    /// the last step (a batch trained after it would only be trained again on resume).
    pub stop_requested: std::sync::atomic::AtomicBool,
}

impl Ctx {
    /// Adds the time since the last call to the round's wall seconds (`Journal::round_seconds`)
    /// and returns them: called on the journal at each checkpoint and round close (a restore
    /// restarts the clock, so a resumed process goes on from the checkpoint's count).
    pub fn count_round_time(&self, journal: &mut Journal) -> Option<f64> {
        let now = std::time::Instant::now();
        let since = std::mem::replace(&mut *self.round_clock.lock(), now);
        if let Some(s) = journal.round_seconds.as_mut() {
            *s += now.duration_since(since).as_secs_f64();
        }
        journal.round_seconds
    }

    /// Casts `msg()` to every live opponent (a down one loses it, as with `send!`).
    pub fn to_opponents(&self, msg: impl Fn() -> OpponentMsg) {
        let all: Vec<_> = self
            .peers
            .read()
            .opponents
            .iter()
            .flatten()
            .cloned()
            .collect();
        for p in all {
            if p.cast(msg()).is_err() {
                tracing::debug!("an opponent is down; message dropped (re-issued after restart)");
            }
        }
    }

    /// Casts to opponent `i`.
    pub fn to_opponent(&self, i: usize, msg: OpponentMsg) {
        let peer = self.peers.read().opponents.get(i).cloned().flatten();
        match peer {
            Some(p) if p.cast(msg).is_ok() => {}
            _ => tracing::debug!("opponent {i} is down; message dropped (re-issued after restart)"),
        }
    }
}

/// A cast to a peer. A peer that is down loses the message; that is fine because every piece of
/// work is re-issued by id after its restart.
macro_rules! send {
    ($ctx:expr, $peer:ident, $msg:expr) => {{
        let peer = $ctx.peers.read().$peer.clone();
        match peer {
            Some(p) => {
                if p.cast($msg).is_err() {
                    tracing::debug!(
                        "{} is down; message dropped (re-issued after restart)",
                        stringify!($peer)
                    );
                }
            }
            None => tracing::debug!("{} not started; message dropped", stringify!($peer)),
        }
    }};
}
pub(crate) use send;

/// Counts samples a worker generated or judged in the journal and shows the fleet's line under
/// the progress bars.
pub(crate) fn show_fleet(ctx: &Ctx, generated: u64, judged: u64) {
    let (generated, judged) = {
        let mut j = ctx.journal.lock();
        j.samples_generated_remote += generated;
        j.samples_judged_remote += judged;
        (j.samples_generated_remote, j.samples_judged_remote)
    };
    ctx.progress
        .set_fleet(crate::fleet::remote::status_line(generated, judged));
}

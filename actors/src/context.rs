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
use crate::fault::Faults;
use crate::journal::SharedJournal;
use crate::messages::*;
use crate::seams::{DevEvaluator, Generator, Trainer};

#[derive(Default)]
pub struct Peers {
    pub prompt_builder: Option<ActorRef<PromptBuilderMsg>>,
    pub opponent: Option<ActorRef<OpponentMsg>>,
    pub executor: Option<ActorRef<ExecutorMsg>>,
    pub replay: Option<ActorRef<ReplayMsg>>,
    pub trainer: Option<ActorRef<TrainerMsg>>,
    pub evaluator: Option<ActorRef<EvaluatorMsg>>,
    pub supervisor: Option<ActorRef<SupervisorMsg>>,
}

pub struct Ctx {
    pub config: JobConfig,
    pub journal: SharedJournal,
    pub peers: RwLock<Peers>,
    pub faults: Faults,
    pub generator: Arc<Mutex<Box<dyn Generator>>>,
    pub trainer: Arc<Mutex<Box<dyn Trainer>>>,
    pub evaluator: Arc<Mutex<Box<dyn DevEvaluator>>>,
    pub pool: Arc<ExecutorPool>,
    /// Prompt texts (src/schema for a real model), cached across rounds.
    pub prompter: Arc<crate::prompts::Prompter>,
    pub train: Arc<Dataset>,
    /// Seeded permutation of the train examples; round r reads a window of it (the data cursor).
    pub order: Vec<usize>,
    pub run_dir: PathBuf,
    pub config_hash: String,
    pub data_hash: String,
    /// Busy time per stage (this process).
    pub stats: crate::stats::StageStats,
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

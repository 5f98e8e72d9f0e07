//! The run's record: what has been trained, filtered, published and measured.
//!
//! It lives behind a mutex owned by the supervisor, outside every actor, so a restarted actor
//! rebuilds its state from it instead of losing it: it is the ledger that makes "exactly once" a
//! matter of ids rather than luck, and it is what a checkpoint writes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::seams::WeightsHandle;

pub type SharedJournal = Arc<Mutex<Journal>>;

/// Highest depth each bounded queue reached (asserted against its bound in tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueMax {
    /// Pairs held by the replay buffer (buffered + sent to the trainer, not yet trained).
    pub replay_pairs: usize,
    /// Prompts waiting in the opponent.
    pub opponent_prompts: usize,
    /// Batches sent to the trainer and not yet acknowledged.
    pub trainer_batches: usize,
}

impl QueueMax {
    pub fn merge(&mut self, other: &QueueMax) {
        self.replay_pairs = self.replay_pairs.max(other.replay_pairs);
        self.opponent_prompts = self.opponent_prompts.max(other.opponent_prompts);
        self.trainer_batches = self.trainer_batches.max(other.trainer_batches);
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Journal {
    /// The round in progress (== number of rounds fully trained).
    pub round: u64,
    /// The latest published weights (version 0: the initial model).
    pub weights: Option<WeightsHandle>,
    pub step: u64,
    /// Every pair id trained, in training order.
    pub trained_ids: Vec<String>,
    #[serde(skip)]
    trained_set: HashSet<String>,
    /// Sample ids of the current round that are finished: trained, or giving no pair.
    pub resolved_round: BTreeSet<String>,
    pub loss_sum: f64,
    pub margin_sum: f64,
    pub last_loss: Option<f64>,
    pub samples_generated: u64,
    pub samples_judged: u64,
    pub duplicates_dropped: u64,
    pub verdicts: BTreeMap<String, u64>,
    /// Dev execution accuracy per published version (version t+1 closes round t).
    pub dev_ex: BTreeMap<u64, f64>,
    pub restarts: BTreeMap<String, u64>,
    pub queue_max: QueueMax,
    pub finished: bool,
    /// Generations discarded by the mode (exspin: judged correct).
    #[serde(default)]
    pub samples_filtered: u64,
    /// Most versions a trained pair's generator lagged behind the trainer (0 under strict).
    #[serde(default)]
    pub max_staleness: u64,
    /// Pairs trained with a generator older than the trainer's version (async only).
    #[serde(default)]
    pub stale_pairs: u64,
}

impl Journal {
    pub fn version(&self) -> u64 {
        self.weights.as_ref().map_or(0, |w| w.version)
    }

    pub fn is_trained(&self, id: &str) -> bool {
        self.trained_set.contains(id)
    }

    pub fn record_trained(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            if self.trained_set.insert(id.clone()) {
                self.resolved_round.insert(id.clone());
                self.trained_ids.push(id);
            }
        }
    }

    /// Rebuilds the index after deserializing.
    pub fn reindex(&mut self) {
        self.trained_set = self.trained_ids.iter().cloned().collect();
    }

    pub fn restarts_total(&self) -> u64 {
        self.restarts.values().sum()
    }
}

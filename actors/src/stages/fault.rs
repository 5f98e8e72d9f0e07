//! Fault injection: panic a chosen stage at a chosen message, once per run, to show that the
//! supervisor's restarts lose and duplicate nothing; or at every message, to show that a failure
//! a restart does not cure ends the run within the restart budget.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{FaultAt, FaultSpec, Stage};

/// Faults not fired yet; shared by every incarnation of every actor, so a restarted actor does
/// not panic again at the same index.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<FaultState>>);

#[derive(Debug, Default)]
struct FaultState {
    pending: Vec<FaultSpec>,
    /// Messages each stage has handled, over all its incarnations.
    handled: HashMap<Stage, u64>,
}

impl Faults {
    /// From the config list plus `EXSPIN_FAULT` (comma-separated `stage:message_index` or
    /// `stage:*`).
    pub fn new(config: &[FaultSpec]) -> Result<Faults, String> {
        let mut pending = config.to_vec();
        let env = std::env::var("EXSPIN_FAULT").unwrap_or_default();
        for spec in env.split(',').filter(|s| !s.trim().is_empty()) {
            pending.push(
                spec.trim()
                    .parse()
                    .map_err(|e| format!("EXSPIN_FAULT: {e}"))?,
            );
        }
        Ok(Faults(Arc::new(Mutex::new(FaultState {
            pending,
            handled: HashMap::new(),
        }))))
    }

    /// Counts one message of `stage`; panics when this message (counted from 0 over all its
    /// incarnations) was chosen and has not fired yet.
    pub fn tick(&self, stage: Stage) {
        let (hit, index) = {
            let mut st = self.0.lock();
            let counter = st.handled.entry(stage).or_insert(0);
            let index = *counter;
            *counter += 1;
            let every = st
                .pending
                .iter()
                .any(|f| f.stage == stage && f.at == FaultAt::Every);
            let once = st
                .pending
                .iter()
                .position(|f| f.stage == stage && f.at == FaultAt::Message(index));
            (every || once.map(|p| st.pending.remove(p)).is_some(), index)
        };
        if hit {
            panic!("injected fault: {stage} at message {index}");
        }
    }
}

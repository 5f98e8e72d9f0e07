//! Fault injection: panic a chosen actor at a chosen message, once per run, to show that the
//! supervisor's restarts lose and duplicate nothing.

use std::sync::Arc;

use parking_lot::Mutex;

/// `(actor, message_index)` pairs not fired yet; shared by every incarnation of every actor, so a
/// restarted actor does not panic again at the same index.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<FaultState>>);

#[derive(Debug, Default)]
struct FaultState {
    pending: Vec<(String, u64)>,
    /// Messages each actor has handled, over all its incarnations.
    handled: std::collections::HashMap<String, u64>,
}

pub fn parse_one(spec: &str) -> Result<(String, u64), String> {
    let (actor, index) = spec
        .split_once(':')
        .ok_or_else(|| format!("\"{spec}\" is not actor:message_index"))?;
    if !crate::config::ACTORS.contains(&actor) {
        return Err(format!(
            "\"{actor}\" is not an actor; use one of {}",
            crate::config::ACTORS.join(", ")
        ));
    }
    let index = index
        .parse()
        .map_err(|_| format!("\"{index}\" in \"{spec}\" is not a message index"))?;
    Ok((actor.to_string(), index))
}

impl Faults {
    /// From the config list plus `EXSPIN_FAULT` (comma-separated).
    pub fn new(config: &[String]) -> Result<Faults, String> {
        let mut all = Vec::new();
        let env = std::env::var("EXSPIN_FAULT").unwrap_or_default();
        for spec in config
            .iter()
            .map(String::as_str)
            .chain(env.split(',').filter(|s| !s.trim().is_empty()))
        {
            all.push(parse_one(spec.trim())?);
        }
        Ok(Faults(Arc::new(Mutex::new(FaultState {
            pending: all,
            handled: Default::default(),
        }))))
    }

    /// Counts one message of `actor`; panics when this message (counted from 0 over all its
    /// incarnations) was chosen and has not fired yet.
    pub fn tick(&self, actor: &str) {
        let (hit, index) = {
            let mut st = self.0.lock();
            let counter = st.handled.entry(actor.to_string()).or_insert(0);
            let index = *counter;
            *counter += 1;
            let pos = st
                .pending
                .iter()
                .position(|(a, i)| a == actor && *i == index);
            (pos.map(|p| st.pending.remove(p)), index)
        };
        if hit.is_some() {
            panic!("injected fault: {actor} at message {index}");
        }
    }
}

//! The replay buffer's logic, without actors: dedup by sample id, pairs per mode, the bound, the
//! credits it grants upstream, and the batches it hands the trainer (kept until acknowledged so a
//! trainer restart re-issues them).
//!
//! Schedules: under `phased` no batch leaves before the whole round is judged (the barrier
//! between execution and training); under `async` samples of rounds ahead of the one in training
//! are held aside ("ahead", counted in `held`, so still within the credits) and enter the buffer
//! when their round starts. Ahead samples are not checkpointed: after a resume or a replay restart
//! they are generated again (same ids), which is why only the strict schedule promises the same
//! samples after a resume.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::config::{Mode, RoundSchedule};
use crate::logic::pairs::make_pairs;
use crate::protocol::seams::{Judged, Pair};

/// A batch for the trainer. `end` marks the last batch of `round`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: u64,
    pub round: u64,
    pub end: bool,
    pub pairs: Vec<Pair>,
}

#[derive(Debug, Clone, Copy)]
pub struct BufferLimits {
    pub mode: Mode,
    /// Most pairs held (buffered + un-acknowledged).
    pub capacity: usize,
    pub train_batch: usize,
    /// Most un-acknowledged batches.
    pub trainer_queue: usize,
    /// Samples a round yields: prompts × samples per prompt.
    pub samples_per_round: usize,
    pub samples_per_prompt: usize,
    pub schedule: RoundSchedule,
}

/// What a checkpoint keeps of the buffer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BufferSnapshot {
    pub round: u64,
    /// Un-acknowledged batches' pairs then buffered pairs, in order.
    pub pairs: Vec<Pair>,
    pub accounted: Vec<String>,
}

#[derive(Debug)]
pub struct ReplayBuffer {
    limits: BufferLimits,
    round: u64,
    /// Sample ids of this round seen: resolved (trained or filtered) or held here.
    accounted: HashSet<String>,
    buffer: VecDeque<Pair>,
    unacked: VecDeque<Batch>,
    next_batch: u64,
    end_sent: bool,
    /// Credits granted upstream whose samples have not arrived yet.
    outstanding: usize,
    /// Async: judged samples of later rounds, in arrival order, and their ids.
    ahead: Vec<Judged>,
    ahead_ids: HashSet<String>,
}

/// What one delivery did.
#[derive(Debug, Default)]
pub struct Received {
    pub filtered: Vec<String>,
    pub duplicates: usize,
    /// Pairs added to the buffer.
    pub pairs: usize,
}

impl ReplayBuffer {
    /// A buffer for `round` that already knows `resolved` (trained or filtered) sample ids.
    pub fn new(
        limits: BufferLimits,
        round: u64,
        resolved: impl IntoIterator<Item = String>,
    ) -> Self {
        ReplayBuffer {
            limits,
            round,
            accounted: resolved.into_iter().collect(),
            buffer: VecDeque::new(),
            unacked: VecDeque::new(),
            next_batch: 0,
            end_sent: false,
            outstanding: 0,
            ahead: Vec::new(),
            ahead_ids: HashSet::new(),
        }
    }

    pub fn restore(limits: BufferLimits, snap: BufferSnapshot) -> Self {
        let mut b = ReplayBuffer::new(limits, snap.round, snap.accounted);
        b.buffer = snap.pairs.into();
        b
    }

    /// Un-acknowledged batches are flattened back into the buffer: every batch but a round's last
    /// is full, so re-batching gives the same boundaries (same training order after a resume).
    pub fn snapshot(&self) -> BufferSnapshot {
        let mut accounted: Vec<String> = self.accounted.iter().cloned().collect();
        accounted.sort();
        BufferSnapshot {
            round: self.round,
            pairs: self
                .unacked
                .iter()
                .flat_map(|b| b.pairs.iter().cloned())
                .chain(self.buffer.iter().cloned())
                .collect(),
            accounted,
        }
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    pub fn held(&self) -> usize {
        self.buffer.len()
            + self.unacked.iter().map(|b| b.pairs.len()).sum::<usize>()
            + self.ahead.len()
    }

    pub fn unacked_batches(&self) -> usize {
        self.unacked.len()
    }

    pub fn accounted(&self) -> &HashSet<String> {
        &self.accounted
    }

    pub fn round_complete(&self) -> bool {
        self.accounted.len() >= self.limits.samples_per_round
    }

    /// Takes judged samples; drops any sample already seen (a re-issue) or of another round.
    pub fn receive(&mut self, judged: Vec<Judged>) -> Received {
        self.outstanding = self.outstanding.saturating_sub(judged.len());
        self.accept(judged)
    }

    fn accept(&mut self, judged: Vec<Judged>) -> Received {
        let mut out = Received::default();
        let mut fresh = Vec::with_capacity(judged.len());
        for j in judged {
            let ahead = self.limits.schedule == RoundSchedule::Async && j.sample.round > self.round;
            if ahead {
                if self.ahead_ids.insert(j.sample.sample_id.clone()) {
                    self.ahead.push(j);
                } else {
                    out.duplicates += 1;
                }
            } else if j.sample.round == self.round && !self.accounted.contains(&j.sample.sample_id)
            {
                fresh.push(j);
            } else {
                out.duplicates += 1;
            }
        }
        self.accounted
            .extend(fresh.iter().map(|j| j.sample.sample_id.clone()));
        let (pairs, filtered) = make_pairs(self.limits.mode, &fresh);
        out.pairs = pairs.len();
        self.buffer.extend(pairs);
        out.filtered = filtered;
        out
    }

    /// Batches to send now: full ones while the trainer has room, and the round's last one.
    pub fn take_batches(&mut self) -> Vec<Batch> {
        let mut out = Vec::new();
        if self.limits.schedule == RoundSchedule::Phased && !self.round_complete() {
            return out;
        }
        while self.unacked.len() < self.limits.trainer_queue {
            let full = self.buffer.len() >= self.limits.train_batch;
            let last = self.round_complete()
                && !self.end_sent
                && self.buffer.len() <= self.limits.train_batch;
            if !full && !last {
                break;
            }
            let n = self.limits.train_batch.min(self.buffer.len());
            let batch = Batch {
                id: self.next_batch,
                round: self.round,
                end: last,
                pairs: self.buffer.drain(..n).collect(),
            };
            self.next_batch += 1;
            self.end_sent |= last;
            self.unacked.push_back(batch.clone());
            out.push(batch);
        }
        out
    }

    pub fn ack(&mut self, batch_id: u64) {
        self.unacked.retain(|b| b.id != batch_id);
    }

    /// Credits (in samples, whole prompts only) that keep held + outstanding within capacity.
    pub fn grant(&mut self) -> usize {
        let used = self.held() + self.outstanding;
        let free = self.limits.capacity.saturating_sub(used);
        let n = free / self.limits.samples_per_prompt * self.limits.samples_per_prompt;
        self.outstanding += n;
        n
    }

    /// After a restart elsewhere: credits in flight are void (the opponent forgot them), and
    /// every un-acknowledged batch is to be sent again.
    /// Samples held aside for later rounds are dropped too (they are issued again): otherwise they
    /// could fill the capacity while the round in training still needs credits for re-issued
    /// prompts.
    pub fn resync(&mut self) -> Vec<Batch> {
        self.outstanding = 0;
        self.ahead.clear();
        self.ahead_ids.clear();
        self.unacked.iter().cloned().collect()
    }

    /// Moves to `round`; samples of it held aside (async) enter the buffer now.
    pub fn start_round(&mut self, round: u64) -> Received {
        debug_assert!(
            self.buffer.is_empty(),
            "a round starts with an empty buffer"
        );
        self.round = round;
        self.accounted.clear();
        self.end_sent = false;
        let (now, later): (Vec<Judged>, Vec<Judged>) = std::mem::take(&mut self.ahead)
            .into_iter()
            .partition(|j| j.sample.round <= round);
        for j in &now {
            self.ahead_ids.remove(&j.sample.sample_id);
        }
        self.ahead = later;
        self.accept(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::seams::{PromptItem, Sample, Verdict};

    fn judged(ex: &str, k: usize) -> Judged {
        let prompt = PromptItem {
            example_id: ex.into(),
            db_id: "db".into(),
            question: "q".into(),
            gold_sql: "G".into(),
            prompt: "p".into(),
            round: 0,
        };
        Judged {
            sample: Sample {
                example_id: ex.into(),
                sample_id: prompt.sample_id(k),
                round: 0,
                sql: "x".into(),
                version: 0,
                ref_version: 0,
                logp_gold: -1.0,
                logp_gen: -2.0,
                tokens: 1,
            },
            prompt,
            verdict: Verdict::WrongResult,
        }
    }

    #[test]
    fn dedups_bounds_batches_and_ends_the_round() {
        let limits = BufferLimits {
            mode: Mode::Spin,
            capacity: 4,
            train_batch: 3,
            trainer_queue: 1,
            samples_per_round: 6,
            samples_per_prompt: 2,
            schedule: RoundSchedule::Strict,
        };
        let mut b = ReplayBuffer::new(limits, 0, Vec::new());
        assert_eq!(b.grant(), 4);
        assert_eq!(b.grant(), 0, "nothing more until samples arrive");
        b.receive(vec![judged("a", 0), judged("a", 1)]);
        let r = b.receive(vec![judged("a", 1), judged("b", 0), judged("b", 1)]);
        assert_eq!(r.duplicates, 1);
        let batches = b.take_batches();
        assert_eq!(batches.len(), 1);
        assert_eq!(b.take_batches().len(), 0, "trainer queue is full");
        assert_eq!(b.held(), 4);
        assert_eq!(b.grant(), 0);
        b.ack(batches[0].id);
        assert_eq!(b.grant(), 2);
        b.receive(vec![judged("c", 0), judged("c", 1)]);
        assert!(b.round_complete());
        let rest = b.take_batches();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].pairs.len(), 3);
        assert!(rest[0].end, "the round's last batch is marked");
        b.ack(rest[0].id);
        assert!(b.take_batches().is_empty(), "the end is sent once");
        let snap = b.snapshot();
        assert!(snap.pairs.is_empty() && snap.accounted.len() == 6);
    }
}

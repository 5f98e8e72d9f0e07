//! Every actor's messages, in one place: the protocol at a glance.
//!
//! Data flows by `cast` (fire and forget); nothing relies on a cast arriving, because each stage's
//! work is known by id and re-issued after a restart (see `supervisor.rs`). `call` (with a reply
//! port) is used only for short queries whose answer the caller waits for.
//!
//! ```text
//! replay --Grant--> opponent[i] --Want--> prompt_builder --Prompts--> opponent[i] --Judge--> executor
//! executor --Judged--> replay --Batch--> trainer --Ack--> replay
//! trainer --RoundTrained--> supervisor --Evaluate--> evaluator --Evaluated--> supervisor
//! ```

use std::collections::HashSet;

use ractor::{ActorRef, RpcReplyPort};

use crate::logic::buffer::{Batch, BufferSnapshot};
use crate::protocol::seams::{Judged, PromptItem, Sample, WeightsHandle};
use crate::state::journal::Journal;

pub enum PromptBuilderMsg {
    /// Opponent `from` has credits for `n` more prompts; they go to that address (several
    /// opponents may ask, each against its own credits).
    Want {
        from: ActorRef<OpponentMsg>,
        n: usize,
    },
    /// A new round: all its prompts, in plan order (outstanding wants stay valid).
    StartRound(u64),
    /// After a restart: issue every prompt of `round` whose samples are not all in `accounted`,
    /// and forget outstanding wants (the replay buffer voided those credits).
    Reissue {
        round: u64,
        accounted: HashSet<String>,
    },
}

pub enum OpponentMsg {
    /// Credits, in samples, granted by the replay buffer.
    Grant(usize),
    Prompts(Vec<PromptItem>),
    /// Switch to published weights (between rounds).
    Load(WeightsHandle),
    /// A restart happened: forget credits and queued prompts (they are re-issued).
    Resync,
}

pub enum ExecutorMsg {
    /// Judge generations against their prompts' gold results.
    Judge(Vec<(PromptItem, Sample)>),
}

pub enum ReplayMsg {
    Judged(Vec<Judged>),
    /// The trainer has trained (or skipped as already trained) batch `id`.
    Ack(u64),
    StartRound(u64),
    /// A restart happened: void outstanding credits, stop granting until `Grant`, send every
    /// un-acknowledged batch again, and answer the sample ids accounted for in this round.
    Resync(RpcReplyPort<(u64, HashSet<String>)>),
    /// Resume granting credits upstream.
    Grant,
    /// A consistent cut: the buffer and the journal, taken in one handler.
    Snapshot(RpcReplyPort<(BufferSnapshot, Journal)>),
}

pub enum TrainerMsg {
    Batch(Batch),
    /// Write a checkpoint now (SIGTERM); answers its folder.
    Checkpoint(RpcReplyPort<Result<std::path::PathBuf, String>>),
}

pub enum EvaluatorMsg {
    Evaluate(WeightsHandle),
}

pub enum SupervisorMsg {
    /// The trainer published `weights` at the end of `round`.
    RoundTrained {
        round: u64,
        weights: WeightsHandle,
    },
    Evaluated {
        version: u64,
    },
    /// Checkpoint and stop (SIGTERM / SIGINT).
    Terminate(RpcReplyPort<Result<std::path::PathBuf, String>>),
}

// With ractor's `cluster` feature (the rollout fleet, `crate::fleet`) a message type says whether
// it may cross nodes. These stay local: they carry actor refs, reply ports and journals. What
// crosses nodes is `crate::fleet::wire`.
impl ractor::Message for PromptBuilderMsg {}
impl ractor::Message for OpponentMsg {}
impl ractor::Message for ExecutorMsg {}
impl ractor::Message for ReplayMsg {}
impl ractor::Message for TrainerMsg {}
impl ractor::Message for EvaluatorMsg {}
impl ractor::Message for SupervisorMsg {}

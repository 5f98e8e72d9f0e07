//! exspin-actors: the streaming self-play runtime (ractor actors on tokio) behind `exspin run`,
//! as a library.
//!
//! ```text
//! dataset cursor → prompt_builder → opponent → executor → replay → trainer
//!                                      ↑                             │
//!                                      └─── weights θt+1 (versioned) ┴── evaluator
//! ```
//!
//! The public API is small: [`config`] (the typed job config), [`runtime`] (a [`runtime::Run`]:
//! new or resumed, driven to the end or a signal), [`state`] (what a run folder holds: summary,
//! checkpoints, the trained-id ledger), [`sft`] (`exspin sft`'s job), [`bench`] (the pipeline
//! benchmark) and [`experiment`] (the paper's comparisons). The `exspin` command is a binary of
//! this crate whose modules (`src/cli/`) use only this API.
//!
//! Inside, folders show the roles: `stages/` (the six stage actors, thin shells, and the
//! supervisor), `logic/` (their decisions, tested without actors), `protocol/` (the seams to the
//! model), `models/` (the real model and the fakes behind the seams), `observe/`
//! (busy time, Prometheus, progress bars). Bounds are ours (ractor mailboxes are unbounded): the
//! replay buffer grants credits upstream, the opponent asks for prompts only against credits,
//! the trainer takes at most `trainer_queue` batches, the executor pool has a fixed queue.

pub mod bench;
pub mod config;
pub mod experiment;
pub mod fleet;
pub mod hosts;
pub mod runtime;
pub mod sft;
pub mod state;

mod logic;
mod models;
mod observe;
mod protocol;
mod stages;

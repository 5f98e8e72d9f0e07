//! exspin-actors: the streaming self-play runtime (ractor actors on tokio) behind `exspin run`.
//!
//! ```text
//! dataset cursor → prompt_builder → opponent → executor_stage → replay → trainer
//!                                      ↑                                   │
//!                                      └──── weights θt+1 (versioned) ─────┘── evaluator
//! ```
//! Each actor is a thin shell: the logic is in plain modules tested without actors (`buffer`,
//! `pairs`, `plan`, `checkpoint`), the model behind the traits of `seams` (fakes in `fakes` until
//! the real model lands). Bounds are ours (ractor mailboxes are unbounded): the replay buffer grants
//! credits upstream, the opponent asks for prompts only against credits, the trainer takes at most
//! `trainer_queue` batches, the executor pool has a fixed queue.

pub mod buffer;
pub mod checkpoint;
pub mod config;
pub mod context;
pub mod device;
pub mod evaluator;
pub mod executor_stage;
pub mod experiment;
pub mod fakes;
pub mod fault;
pub mod journal;
pub mod ledger;
pub mod messages;
pub mod opponent;
pub mod pairs;
pub mod pipeline_bench;
pub mod plan;
pub mod prompt_builder;
pub mod prompts;
pub mod real;
pub mod replay;
pub mod runtime;
pub mod seams;
pub mod stage;
pub mod stage_bars;
pub mod stats;
pub mod summary;
pub mod supervisor;
pub mod telemetry;
pub mod trainer;

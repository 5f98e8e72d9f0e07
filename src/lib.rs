//! exspin: explicit-feedback self-play fine-tuning for text-to-SQL — the domain library.
//!
//! This crate knows nothing of actors or async runtimes. Every piece the streaming runtime
//! (`exspin-actors`) drives is here as a plain library call and is tested on its own:
//!
//! * [`data`] — the `Example` type and loaders for Spider, BIRD, our JSONL format and the
//!   embedded synthetic default.
//! * [`sql`] — the sandboxed SQLite executor, result comparison with the official Spider / BIRD
//!   semantics, the official hardness levels and the paper's six query types.
//! * [`eval`] — execution accuracy of a predictions file and its breakdowns.
//! * [`model`] — Qwen2 / Llama decoders on candle (trainable), loading (Hugging Face folder, GGUF),
//!   generation, log-probs, LoRA, chat templates, checkpoints.
//! * [`fsutil`] — atomic writes of files and folders (temporary name, fsync, rename).
//! * [`prompt`] — the one prompt renderer (schema prompt by mode, chat template, answer cue).
//! * [`train`] — SFT / SPIN / ExSPIN / DPO / hinge losses, AdamW, schedules, the trainer.

pub mod data;
pub mod eval;
pub mod fsutil;
pub mod model;
pub mod prompt;
pub mod schema;
pub mod sql;
pub mod train;

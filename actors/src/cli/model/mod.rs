//! The model's commands: `exspin ask`, `exspin generate`, `exspin sft`, and `exspin model ...`
//! (random checkpoints of named shapes, logits for the parity script).

pub mod ask;
pub mod generate;
pub mod repair;
pub mod sft;
pub mod tools;

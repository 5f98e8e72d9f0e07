//! Fused log-prob and log-ratio ops for candle.
//!
//! A policy-gradient or preference loss needs log p(target) per token, not the [tokens × vocab]
//! log-softmax: with Qwen's 151,936-token vocabulary that tensor is 600 KB per token in f32, and
//! `log_softmax → gather` (with its backward) materializes several of them. The ops here stream
//! each row once, keep two numbers per row (max and log-sum-exp), and write the gradient
//! `g · (onehot − softmax)` in one pass from those numbers.
//!
//! - [`token_logprobs`]: logits [N, V] → [N], autograd-aware (custom op with `bwd`).
//! - [`linear_token_logprobs`]: hidden [N, H] and output weight [V, H] → [N] without ever holding
//!   [N, V] logits: row chunks forward, (row × vocab) tiles backward.
//! - [`attention`]: softmax(q·kᵀ·s + mask)·v with grouped kv heads as one node (CPU f32), its
//!   backward recomputing the probabilities.
//! - [`rms_norm`], [`rope`], [`swiglu`], [`split_heads`]/[`merge_heads`]: the decoder's element-wise blocks as single nodes (CPU
//!   f32), so candle's backward does not visit (and zero-fill a gradient for) each of their parts.
//! - [`head_logprobs`]: the LM head and the token log-prob as one node (CPU f32): the forward's
//!   logits are reused in place by the backward instead of becoming a graph node.
//! - [`dense`]: `x · Wᵀ` as one node whose backward skips unneeded gradients and writes the
//!   weight gradient in the weight's layout (the training step's GEMMs go through it).
//! - [`sequence_logprobs`], [`linear_sequence_logprobs`], [`sequence_log_ratios`]: masked
//!   per-sequence sums over a [B, T] layout, the shape a trainer's loss consumes.
//!
//! Rows to skip are marked by target [`IGNORE`] or a zero in the optional mask: they are not read,
//! give log-prob 0 and get zero gradient. The CPU path (rayon, vectorized `exp`) is always built; the
//! CUDA path (NVRTC-compiled kernels, one block per row) is behind feature `cuda`.

pub mod alloc;
mod attention;
pub mod bench;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod dense;
mod devmem;
mod fastmath;
mod head_layout;
mod host;
mod lm_head_logprobs;
mod lm_head_logprobs_chunked;
pub mod reference;
mod rms_norm;
pub mod roofline;
mod rope;
mod sequence;
mod swiglu;
#[cfg(test)]
mod testutil;
mod token;

pub use attention::attention;
pub use dense::dense;
pub use head_layout::{merge_heads, split_heads};
pub use lm_head_logprobs::head_logprobs;
pub use lm_head_logprobs_chunked::{DEFAULT_CHUNK_ROWS, linear_token_logprobs};
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use sequence::{linear_sequence_logprobs, sequence_log_ratios, sequence_logprobs};
pub use swiglu::swiglu;
pub use token::token_logprobs;

/// Target value that marks a row to skip (same effect as a 0 in the mask).
pub const IGNORE: u32 = u32::MAX;

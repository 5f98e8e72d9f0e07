//! The model layer: decoder-only transformers written on candle with differentiable ops, so that
//! one code path serves generation, log-probs and training.
//!
//! * [`config`] — the decoder's hyper-parameters (`Config`, `Architecture`, the named shapes).
//! * [`decoder`] — the Qwen2 / Llama decoder (`Model`, a caller-owned [`KvCache`]).
//! * [`lora_adapter`] — one LoRA adapter as a linear layer holds it (knows nothing of the decoder).
//! * [`lora`] — attaching LoRA adapters to a model, PEFT's files and names.
//! * [`load`] — a Hugging Face folder or a GGUF file into trainable f32 weights.
//! * [`tokenizer`] — the tokenizer from GGUF metadata; training a small BPE for tiny models.
//! * [`chat`] — ChatML for instruct models, plain prompts for base models.
//! * [`generate`] — batched generation with a KV cache; [`generate::extract_sql`].
//! * [`continuous`] — continuous batching: finished rows' slots go to the next prompt at once.
//! * [`prefix_cache`] — KV caches of recent token prefixes (a database's schema), bounded in bytes.
//! * [`logprob`] — summed log p(response | prompt) of a padded batch.
//! * [`shared_prompt`] — training log-probs with a prompt run once for its gold and negatives.
//! * [`rollout`] — a rollout's reference log-probs from decoding and one prefill per prompt.
//! * [`checkpoint`] — a Hugging Face folder out (atomic), PEFT adapters, optimizer state.
//! * [`denormals`] — subnormal floats flushed to zero on the threads that compute.

pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod continuous;
pub mod decoder;
pub mod denormals;
pub mod generate;
mod layered;
pub mod load;
pub mod logprob;
pub mod lora;
pub mod lora_adapter;
pub mod prefix_cache;
pub mod recompute;
pub mod rollout;
pub mod shared_prompt;
pub mod tokenizer;

use std::path::PathBuf;

pub use config::{Architecture, Config};
pub use decoder::{KvCache, Model};

/// Errors of the model layer. Each names the file at fault and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "{path}: unknown architecture {found:?}; supported are Qwen2ForCausalLM (model_type qwen2) and \
LlamaForCausalLM (model_type llama). Use one of those models or add the architecture in src/model/config.rs"
    )]
    UnknownArchitecture { path: PathBuf, found: String },
    #[error(
        "{path}: missing tensor {name:?} (the weights do not match the config; \
check that config.json belongs to these safetensors, or re-export the model)"
    )]
    MissingTensor { path: PathBuf, name: String },
    #[error(
        "{path}: tensor {name:?} has shape {found:?} but the config implies {expected:?}; \
check that config.json belongs to these weights"
    )]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Candle {
        context: String,
        #[source]
        source: candle_core::Error,
    },
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}

//! A batch that runs through the decoder layer by layer, in one or more parts: a padded batch of
//! pairs is one part; prompts and the responses that attend to them are two
//! ([`super::shared_prompt`]). One forward ([`forward_logprobs`]) and one checkpointed backward
//! ([`super::recompute`]) serve every kind of batch.

use candle_core::Tensor;

use super::Result;
use super::decoder::Model;
use super::logprob::ResponseLogprobs;

pub(crate) trait LayeredBatch {
    /// The parts' token embeddings.
    fn embed(&self, model: &Model) -> Result<Vec<Tensor>>;
    /// Decoder layer `li` on the parts' inputs `xs`; returns the parts' outputs.
    fn layer(&self, model: &Model, li: usize, xs: &[Tensor]) -> Result<Vec<Tensor>>;
    /// The response log-probs from the parts' last-layer outputs (before the final norm).
    fn logprobs(&self, model: &Model, top: &[Tensor]) -> Result<ResponseLogprobs>;
}

/// The batch's response log-probs, differentiable (one forward pass of `model`).
pub(crate) fn forward_logprobs(
    model: &Model,
    batch: &impl LayeredBatch,
) -> Result<ResponseLogprobs> {
    model.begin_pass();
    let mut xs = batch.embed(model)?;
    for li in 0..model.num_layers() {
        xs = batch.layer(model, li, &xs)?;
    }
    batch.logprobs(model, &xs)
}

//! Activation checkpointing: the gradients of a loss over response log-probs with only each
//! layer's input kept from the forward pass, and each layer's activations recomputed during the
//! backward, one layer at a time.
//!
//! A plain candle backward keeps every intermediate tensor of the forward alive until it ends.
//! For the 0.5B Qwen2 and one pair of ~1.1k-token Spider prompts that is ~5.7 GB in f32 (about
//! 27k floats per token and layer); here it is the layer inputs (~190 MB) plus one layer's
//! activations, for one extra forward pass of compute. The trainer turns it on with
//! `model.activation_checkpointing`.
//!
//! How, on candle's API alone: a forward without a graph (a detached view) keeps the input x_i of
//! each layer; the head and the loss run with a graph from x_L (a fresh Var), whose backward
//! gives g_L = ∂loss/∂x_L. Then, from the last layer down, layer i reruns on x_i (a fresh Var)
//! with a graph, and the backward of the surrogate Σ layer_i(x_i) ⊙ g_{i+1} yields both the
//! parameter gradients of layer i and g_i. LoRA dropout masks are keyed by the forward-pass
//! counter, which both passes share, so the recomputation drops the same units.
//!
//! Any [`LayeredBatch`] goes through the same code: a batch of prompts and their responses
//! ([`super::shared_prompt`]) has two parts per layer, and the surrogate sums over both.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::Result;
use super::decoder::{Model, PassContext};
use super::layered::LayeredBatch;
use super::logprob::{PaddedPairs, Pair, ResponseLogprobs};

/// Runs `loss_of` (the loss a caller builds from the batch's response log-probs, with whatever it
/// reports) on the response log-probs of `pairs` (as [`super::logprob::response_logprobs`]) and
/// returns its report with the gradients of its loss for `params` (the Vars that train), computed
/// with activations recomputed per layer.
pub fn backward_checkpointed<T>(
    model: &Model,
    pairs: &[Pair],
    pad: u32,
    params: &[Var],
    loss_of: impl FnOnce(&ResponseLogprobs) -> Result<(Tensor, T)>,
) -> Result<(T, GradStore)> {
    let pairs = PaddedPairs::new(pairs, pad, model.device())?;
    let (ctx, _) = model.pass_context(&pairs.mask, &[])?;
    checkpointed(model, &FlatBatch { pairs, ctx }, params, loss_of)
}

/// A padded batch of pairs as one part.
struct FlatBatch {
    pairs: PaddedPairs,
    ctx: PassContext,
}

impl LayeredBatch for FlatBatch {
    fn embed(&self, model: &Model) -> Result<Vec<Tensor>> {
        Ok(vec![model.embed_tokens(&self.pairs.ids)?])
    }
    fn layer(&self, model: &Model, li: usize, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(vec![model.layer_forward(li, &xs[0], &self.ctx, None)?])
    }
    fn logprobs(&self, model: &Model, top: &[Tensor]) -> Result<ResponseLogprobs> {
        self.pairs.logprobs(model, &model.final_norm(&top[0])?)
    }
}

/// The checkpointed backward of any layered batch (the module docs say how).
pub(crate) fn checkpointed<T>(
    model: &Model,
    batch: &impl LayeredBatch,
    params: &[Var],
    loss_of: impl FnOnce(&ResponseLogprobs) -> Result<(Tensor, T)>,
) -> Result<(T, GradStore)> {
    model.begin_pass();
    // The forward without a graph; the view shares the pass counter, so dropout is the same.
    let view = model.detached();
    let mut inputs = Vec::with_capacity(model.num_layers());
    let mut xs = batch.embed(&view)?;
    for li in 0..model.num_layers() {
        let next = batch.layer(&view, li, &xs)?;
        inputs.push(xs);
        xs = next;
    }
    trace_memory("forward without a graph done");
    let tops = vars(xs)?;
    let lp = batch.logprobs(model, &tensors(&tops))?;
    let (loss, report) = loss_of(&lp)?;
    let mut head = loss.backward()?;
    drop((loss, lp));
    let mut upstream = take_grads(&mut head, &tops)?;
    let mut grads = only_params(head, params);
    trace_memory("head backward done");
    for li in (0..model.num_layers()).rev() {
        let ins = vars(inputs.pop().expect("one input per layer"))?;
        let outs = batch.layer(model, li, &tensors(&ins))?;
        let mut layer = surrogate(&outs, &upstream)?.backward()?;
        upstream = take_grads(&mut layer, &ins)?;
        grads.extend(only_params(layer, params))?;
        trace_memory("layer recomputed");
    }
    // The embedding, when it trains (full fine-tuning): Σ embed(ids) ⊙ g_0.
    let embedded = batch.embed(model)?;
    if embedded.iter().any(Tensor::track_op) {
        let embedding = surrogate(&embedded, &upstream)?.backward()?;
        grads.extend(only_params(embedding, params))?;
    }
    Ok((report, grads))
}

/// Σ_k Σ outs_k ⊙ g_k: its gradients are the vector-Jacobian products with the upstream `g`.
fn surrogate(outs: &[Tensor], upstream: &[Tensor]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (o, g) in outs.iter().zip(upstream) {
        let s = (o * g)?.sum_all()?;
        total = Some(match total {
            Some(t) => (t + s)?,
            None => s,
        });
    }
    Ok(total.expect("a batch has at least one part"))
}

fn vars(xs: Vec<Tensor>) -> Result<Vec<Var>> {
    Ok(xs
        .into_iter()
        .map(|x| Var::from_tensor(&x))
        .collect::<candle_core::Result<_>>()?)
}

fn tensors(vars: &[Var]) -> Vec<Tensor> {
    vars.iter().map(|v| v.as_tensor().clone()).collect()
}

fn trace_memory(at: &str) {
    tracing::trace!(
        live_mb = exspin_kernels::alloc::current_bytes() / (1 << 20),
        "activation checkpointing: {at}"
    );
}

/// The entries of `params` alone. candle's backward also stores a gradient for every constant
/// operand of a binary op (a dropout mask, the surrogate's g), and such a gradient still carries
/// its graph (`grad · x` with x an activation), which keeps the whole forward of the layer alive:
/// ~0.35 GB a layer for the 0.5B model on a pair of ~0.8k-token rows.
fn only_params(mut store: GradStore, params: &[Var]) -> GradStore {
    let mut out = GradStore::default();
    for p in params {
        if let Some(g) = store.remove(p.as_tensor()) {
            out.insert(p.as_tensor(), g.detach());
        }
    }
    out
}

/// The gradients of a layer's inputs, taken out of the store (they are not parameters).
fn take_grads(grads: &mut GradStore, inputs: &[Var]) -> Result<Vec<Tensor>> {
    inputs
        .iter()
        .map(|input| match grads.remove(input.as_tensor()) {
            Some(g) => Ok(g.detach()),
            // The loss does not depend on this input (cannot happen for a decoder): zero.
            None => Ok(input.as_tensor().zeros_like()?),
        })
        .collect()
}

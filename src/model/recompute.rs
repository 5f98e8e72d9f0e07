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

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::Result;
use super::decoder::Model;
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
    let batch = PaddedPairs::new(pairs, pad, model.device())?;
    let (ctx, _) = model.pass_context(&batch.mask, &[])?;
    model.begin_pass();
    // The forward without a graph; the view shares the pass counter, so dropout is the same.
    let view = model.detached();
    let mut inputs = Vec::with_capacity(model.num_layers());
    let mut x = view.embed_tokens(&batch.ids)?;
    for li in 0..model.num_layers() {
        let next = view.layer_forward(li, &x, &ctx, None)?;
        inputs.push(x);
        x = next;
    }
    trace_memory("forward without a graph done");
    let top = Var::from_tensor(&x)?;
    drop(x);
    let hidden = model.final_norm(top.as_tensor())?;
    let lp = batch.logprobs(model, &hidden)?;
    let (loss, report) = loss_of(&lp)?;
    let mut head = loss.backward()?;
    drop((loss, lp, hidden));
    let mut upstream = take_grad(&mut head, &top)?;
    let mut grads = only_params(head, params);
    trace_memory("head backward done");
    for li in (0..model.num_layers()).rev() {
        let input = Var::from_tensor(&inputs.pop().expect("one input per layer"))?;
        let out = model.layer_forward(li, input.as_tensor(), &ctx, None)?;
        let mut layer = (out * &upstream)?.sum_all()?.backward()?;
        upstream = take_grad(&mut layer, &input)?;
        grads.extend(only_params(layer, params))?;
        trace_memory("layer recomputed");
    }
    // The embedding, when it trains (full fine-tuning): Σ embed(ids) ⊙ g_0.
    let embedded = model.embed_tokens(&batch.ids)?;
    if embedded.track_op() {
        let embedding = (embedded * &upstream)?.sum_all()?.backward()?;
        grads.extend(only_params(embedding, params))?;
    }
    Ok((report, grads))
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

/// The gradient of a layer's input, taken out of the store (it is not a parameter).
fn take_grad(grads: &mut GradStore, input: &Var) -> Result<Tensor> {
    match grads.remove(input.as_tensor()) {
        Some(g) => Ok(g.detach()),
        // The loss does not depend on this input (cannot happen for a decoder): zero.
        None => Ok(input.as_tensor().zeros_like()?),
    }
}

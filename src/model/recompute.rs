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

/// The loss a caller builds from the batch's response log-probs, with whatever it reports.
pub type LossOf<'a, T> = dyn FnOnce(&ResponseLogprobs) -> Result<(Tensor, T)> + 'a;

/// Runs `loss_of` on the response log-probs of `pairs` (as
/// [`super::logprob::response_logprobs`]) and returns its report with the gradients of its loss
/// for every trainable Var of `model`, computed with activations recomputed per layer.
pub fn backward_checkpointed<T>(
    model: &Model,
    pairs: &[Pair],
    pad: u32,
    loss_of: Box<LossOf<'_, T>>,
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
    let top = Var::from_tensor(&x)?;
    drop(x);
    let hidden = model.final_norm(top.as_tensor())?;
    let lp = batch.logprobs(model, &hidden)?;
    let (loss, report) = loss_of(&lp)?;
    let mut grads = loss.backward()?;
    drop((loss, lp, hidden));
    let mut upstream = take_grad(&mut grads, &top)?;
    for li in (0..model.num_layers()).rev() {
        let input = Var::from_tensor(&inputs.pop().expect("one input per layer"))?;
        let out = model.layer_forward(li, input.as_tensor(), &ctx, None)?;
        let mut layer = (out * &upstream)?.sum_all()?.backward()?;
        upstream = take_grad(&mut layer, &input)?;
        grads.extend(layer)?;
    }
    // The embedding, when it trains (full fine-tuning): Σ embed(ids) ⊙ g_0.
    let embedded = model.embed_tokens(&batch.ids)?;
    if embedded.track_op() {
        grads.extend((embedded * &upstream)?.sum_all()?.backward()?)?;
    }
    Ok((report, grads))
}

/// The gradient of a layer's input, taken out of the store (it is not a parameter).
fn take_grad(grads: &mut GradStore, input: &Var) -> Result<Tensor> {
    match grads.remove(input.as_tensor()) {
        Some(g) => Ok(g.detach()),
        // The loss does not depend on this input (cannot happen for a decoder): zero.
        None => Ok(input.as_tensor().zeros_like()?),
    }
}

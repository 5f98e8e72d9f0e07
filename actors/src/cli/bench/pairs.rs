//! `exspin bench pairs`: pair training (the gradient of the ExSPIN loss) the old way and the new
//! way on the same pairs, weights and threads, in one process:
//!
//! * baseline (`PairLayout::PerPair`): a row per answer, so each pair's ~1k-token prompt runs for
//!   its gold and again for its negative, forward and backward;
//! * new (`PairLayout::SharedPrompt`, the learner's default): each prompt runs once for its gold
//!   and all its negatives.
//!
//! A step is one prompt's K pairs (gold against K negatives). The negatives are other questions'
//! gold SQL of the same database (answers of realistic length; what they say does not change
//! the cost). The two layouts alternate step by step, so machine noise hits both alike, and each
//! step's gradients are compared: `max_grad_diff` (relative to the largest gradient entry) shows
//! that the speed is not bought with different arithmetic.
//!
//! `--compare denormals` runs the learner's layout both times instead: the baseline with IEEE
//! subnormals on rayon's threads (the default of a process), the new one with them flushed to zero
//! (what `exspin` does, `exspin::model::denormals`).

use std::time::Instant;

use anyhow::Context;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use exspin::model::load;
use exspin::model::lora::{self, LoraConfig};
use exspin::train::loss::{self, PairLogprobs};
use exspin::train::pair_grads::{PairLayout, pair_gradients};
use exspin::train::params_of;
use exspin::train::prompt_groups::PairTokens;
use serde_json::json;

use super::{BenchPrompts, bench_prompts};
use crate::cli::args::{DatasetArgs, PromptModeArgs, SchemaArgs};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin bench pairs --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
--spider data/spider --schema integrated --prompts 4 --negatives 2 --threads 2 --json"
)]
pub struct BenchPairsArgs {
    /// A Hugging Face folder or a .gguf file.
    #[arg(long, value_name = "PATH")]
    pub model: std::path::PathBuf,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub mode: PromptModeArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// Prompts (the first N evaluable questions); one training step each.
    #[arg(long, default_value_t = 4)]
    pub prompts: usize,
    /// Negatives per prompt (pairs per step).
    #[arg(long, default_value_t = 2)]
    pub negatives: usize,
    /// Train every weight instead of LoRA adapters (rank 8 on q/k/v/o, as
    /// configs/spider-qwen-0.5b-cpu.toml).
    #[arg(long)]
    pub full: bool,
    /// Keep every activation instead of recomputing each layer in the backward (the Spider
    /// config checkpoints).
    #[arg(long)]
    pub no_checkpointing: bool,
    /// What the baseline differs in: `layout` (a prompt per answer, against the prompt run once)
    /// or `denormals` (the prompt run once both times, subnormal floats kept against flushed).
    #[arg(long, value_enum, default_value_t = Compare::Layout)]
    pub compare: Compare,
    #[command(flatten)]
    pub compute: crate::cli::args::compute::ComputeArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    Layout,
    Denormals,
}

/// How one side of the comparison trains a step.
#[derive(Clone, Copy)]
struct Side {
    layout: PairLayout,
    flush_denormals: bool,
}

pub fn run(args: BenchPairsArgs) -> anyhow::Result<()> {
    let (device, dtype, threads) = args.compute.open()?;
    let mut lm = load::load_as(&args.model, dtype, &device)
        .with_context(|| format!("loading the model {}", args.model.display()))?;
    let BenchPrompts {
        examples,
        prompts,
        golds,
    } = bench_prompts(&lm, &args.dataset, &args.mode, &args.schema, args.prompts)?;
    anyhow::ensure!(
        prompts.len() >= 2,
        "--prompts must be at least 2: a prompt's negatives are other questions' gold SQL"
    );
    let k = args.negatives.max(1);
    let params: Vec<Var> = if args.full {
        params_of(&lm.varmap).into_iter().map(|(_, v)| v).collect()
    } else {
        let adapters = VarMap::new();
        let cfg = LoraConfig {
            rank: 8,
            alpha: 16.0,
            // Dropout masks depend on the tensor shapes, which differ between the layouts.
            dropout: 0.0,
            target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
        };
        lora::attach(&mut lm.model, &cfg, &adapters)?;
        // B starts at zero, which leaves A without a gradient: give it a trained-looking value.
        for (name, v) in params_of(&adapters) {
            if name.contains("lora_B") {
                v.set(&Tensor::randn(0f32, 0.02, v.dims(), &device)?)?;
            }
        }
        lm.model.set_training(true);
        params_of(&adapters).into_iter().map(|(_, v)| v).collect()
    };
    // Per prompt: its gold against K other golds, those of its database first.
    let steps: Vec<Vec<PairTokens>> = (0..prompts.len())
        .map(|i| {
            let db = &examples[i].db_id;
            let mut others: Vec<usize> = (0..prompts.len())
                .filter(|&j| j != i && examples[j].db_id == *db)
                .chain((0..prompts.len()).filter(|&j| j != i && examples[j].db_id != *db))
                .collect();
            others = others.into_iter().cycle().take(k).collect();
            others
                .into_iter()
                .map(|j| PairTokens {
                    prompt: prompts[i].clone(),
                    chosen: golds[i].clone(),
                    rejected: golds[j].clone(),
                })
                .collect()
        })
        .collect();
    let pad = lm.special.pad;
    let (baseline, new) = match args.compare {
        Compare::Layout => (
            Side {
                layout: PairLayout::PerPair,
                flush_denormals: true,
            },
            Side {
                layout: PairLayout::SharedPrompt,
                flush_denormals: true,
            },
        ),
        Compare::Denormals => (
            Side {
                layout: PairLayout::SharedPrompt,
                flush_denormals: false,
            },
            Side {
                layout: PairLayout::SharedPrompt,
                flush_denormals: true,
            },
        ),
    };
    let step = |pairs: &[PairTokens], side: Side| -> anyhow::Result<(f64, f32, GradStore)> {
        exspin::model::denormals::set_flush_everywhere(side.flush_denormals);
        let ref_chosen = vec![0f32; pairs.len()];
        let ref_rejected = vec![0f32; pairs.len()];
        let t0 = Instant::now();
        let (out, grads) = pair_gradients(
            &lm.model,
            pad,
            pairs,
            side.layout,
            !args.no_checkpointing,
            &params,
            1.0,
            |pc, pr| {
                loss::spin_loss(
                    0.1,
                    PairLogprobs {
                        policy_chosen: pc,
                        policy_rejected: pr,
                        ref_chosen: &ref_chosen,
                        ref_rejected: &ref_rejected,
                    },
                )
            },
        )?;
        device.synchronize()?;
        Ok((t0.elapsed().as_secs_f64(), out.metrics.loss, grads))
    };
    let (mut base_s, mut new_s) = (0.0, 0.0);
    let (mut max_diff, mut max_grad, mut max_loss_diff) = (0f32, 0f32, 0f32);
    for (i, pairs) in steps.iter().enumerate() {
        // Which layout runs first alternates, so that neither always finds warm caches.
        let ((s0, l0, g0), (s1, l1, g1)) = if i % 2 == 0 {
            let base = step(pairs, baseline)?;
            (base, step(pairs, new)?)
        } else {
            let new = step(pairs, new)?;
            (step(pairs, baseline)?, new)
        };
        base_s += s0;
        new_s += s1;
        max_loss_diff = max_loss_diff.max((l0 - l1).abs());
        for p in &params {
            let (Some(a), Some(b)) = (g0.get(p.as_tensor()), g1.get(p.as_tensor())) else {
                anyhow::bail!("a trained weight has a gradient in one layout only");
            };
            max_grad = max_grad.max(a.abs()?.max_all()?.to_scalar::<f32>()?);
            max_diff = max_diff.max((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?);
        }
    }
    exspin::model::denormals::set_flush_everywhere(true);
    let n_pairs = (steps.len() * k) as f64;
    let report = json!({
        "model": args.model.display().to_string(),
        "schema": args.mode.mode.name(),
        "threads": threads,
        "device": format!("{device:?}"),
        "trained": if args.full { "full" } else { "lora" },
        "activation_checkpointing": !args.no_checkpointing,
        "compare": match args.compare { Compare::Layout => "layout", Compare::Denormals => "denormals" },
        "prompts": steps.len(),
        "negatives_per_prompt": k,
        "prompt_tokens_mean": prompts.iter().map(Vec::len).sum::<usize>() as f64 / prompts.len() as f64,
        "answer_tokens_mean": golds.iter().map(Vec::len).sum::<usize>() as f64 / golds.len() as f64,
        "baseline": { "seconds": base_s, "pairs_per_s": n_pairs / base_s },
        "new": { "seconds": new_s, "pairs_per_s": n_pairs / new_s },
        "speedup": base_s / new_s,
        "max_grad_diff": max_diff,
        "max_grad": max_grad,
        "max_loss_diff": max_loss_diff,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

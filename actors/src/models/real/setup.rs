//! Building the real seams: the initial model (a tiny Qwen2 from scratch with a BPE trained on the
//! run's train prompts and queries, or a pretrained GGUF / Hugging Face model), the SFT phase that
//! turns it into version 0, then the opponent, the learner and the dev evaluator over version 0.
//!
//! The SFT phase is checkpointed by its result: `RUN/weights/v0` is written atomically at its end,
//! and a run (or resume) that finds it skips the phase. An interrupted SFT starts again.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use exspin::data::{Dataset, Example};
use exspin::model::chat::ChatTemplate;
use exspin::model::load::{self, SpecialTokens};
use exspin::model::logprob::Pair as TokenPair;
use exspin::model::{Config, lora, tokenizer};
use exspin::sql::executor::{ExecutorConfig, ExecutorPool};
use exspin::train::sft::{self as sft_loop, SftOutcome, SftSettings, SftStep};
use exspin::train::{Decay, LrSchedule, Optimizer, OptimizerConfig, params_of};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::evaluator::RealEvaluator;
use super::learner::RealLearner;
use super::{Lm, weights_dir};
use crate::config::{JobConfig, ModelSource, TinyModel};
use crate::logic::prompts::Prompter;
use crate::models::compute::Compute;
use crate::protocol::seams::{DevEvaluator, Generator, Learner, PromptItem};

/// One generator per opponent that may generate in this process (`cluster.local_generators` of
/// `run.generators`), the learner, the dev evaluator.
pub type Seams = (
    Vec<Box<dyn Generator>>,
    Box<dyn Learner>,
    Box<dyn DevEvaluator>,
);

/// What the SFT phase did (`RUN/sft.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SftReport {
    pub steps: usize,
    pub seconds: f64,
    pub first_loss: Option<f32>,
    /// Mean loss of the last 10 steps.
    pub last_loss: Option<f32>,
    pub dev_ex_before: f64,
    pub dev_ex_after: f64,
    pub dev_questions: usize,
    /// With `sft.validation` > 0: its questions, every score (steps done; validation EX and the
    /// gold answers' mean token log-prob, which breaks ties), the
    /// steps of the best (version 0's weights) and whether patience ended SFT early.
    #[serde(default)]
    pub validation_questions: usize,
    #[serde(default)]
    pub validation: Vec<sft_loop::Scored>,
    #[serde(default)]
    pub best_step: Option<usize>,
    #[serde(default)]
    pub early_stopped: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ModelMeta {
    pub(crate) chat: ChatTemplate,
}

/// What [`build`] ended with: the seams, or the SFT phase stopped by a signal (its checkpoint
/// written; `exspin resume` goes on from it).
pub enum Built {
    Seams(Seams),
    SftStopped { step: usize, steps: usize },
}

/// The SFT phase's checkpoint while it is interrupted (removed once version 0 is written).
pub fn sft_checkpoint_dir(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join("sft-checkpoint")
}

/// Builds the seams of a real model, running the SFT phase first when version 0 is not there yet
/// (from its checkpoint, when an earlier SFT was interrupted). `stop` is asked between SFT steps.
pub fn build(
    config: &JobConfig,
    run_dir: &Path,
    train: &Dataset,
    validation: &Dataset,
    dev: &Dataset,
    prompter: &Prompter,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<Built> {
    let m = &config.model;
    let compute = Compute::from_config(m.device, m.dtype, config.sft_seed())?;
    // Every prompt now: one that cannot be built is reported before any training.
    let train_items: Vec<(&Example, String)> = train
        .evaluable_examples()
        .map(|(_, e)| Ok((e, prompter.prompt(e)?)))
        .collect::<anyhow::Result<_>>()?;
    let mut evaluator = evaluator_for(config, run_dir, dev, prompter, &compute)?;
    // The SFT phase's early stopping scores the validation split held out of train.
    let mut validator = if validation.is_empty() {
        None
    } else {
        Some(evaluator_for(
            config, run_dir, validation, prompter, &compute,
        )?)
    };
    let v0 = weights_dir(run_dir, 0);
    let meta_path = run_dir.join("weights").join("model.json");
    let chat = if v0.join("config.json").is_file() && meta_path.is_file() {
        let meta: ModelMeta = serde_json::from_slice(&std::fs::read(&meta_path)?)
            .with_context(|| format!("{} is corrupt", meta_path.display()))?;
        meta.chat
    } else {
        let mut lm = initial_model(config, &train_items, &compute)?;
        evaluator.chat = lm.chat.clone();
        if let Some(v) = validator.as_mut() {
            v.chat = lm.chat.clone();
        }
        std::fs::create_dir_all(run_dir.join("weights"))?;
        std::fs::write(
            &meta_path,
            serde_json::to_vec(&ModelMeta {
                chat: lm.chat.clone(),
            })?,
        )?;
        let report = match sft(
            config,
            run_dir,
            &mut lm,
            &train_items,
            &evaluator,
            validator.as_ref(),
            stop,
        )? {
            Ok(report) => report,
            Err((step, steps)) => return Ok(Built::SftStopped { step, steps }),
        };
        std::fs::write(
            run_dir.join("sft.json"),
            serde_json::to_string_pretty(&report)? + "\n",
        )?;
        lm.save(&v0)?;
        let ckpt = sft_checkpoint_dir(run_dir);
        if ckpt.exists() {
            std::fs::remove_dir_all(&ckpt)
                .with_context(|| format!("removing {}", ckpt.display()))?;
        }
        lm.chat
    };
    evaluator.chat = chat.clone();

    // One generator per opponent that may generate here (`cluster.local_generators`; the others
    // only hand batches to fleet workers; none when the run follows another), each with its own
    // copy of version 0 (later versions each loads from the published folder).
    let make_generator = || crate::models::opponent::opponent_for(config, run_dir, Some(&compute));
    let generators = (0..config.generators_here())
        .map(|_| make_generator())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut lm = Lm::load(&v0, &chat, &compute)?;
    let adapters = match &m.lora {
        Some(l) => {
            let vm = VarMap::new();
            lora::attach(&mut lm.model, l, &vm)?;
            lm.model.set_training(true);
            Some(vm)
        }
        None => None,
    };
    let params = params_of(adapters.as_ref().unwrap_or(&lm.varmap));
    let opt = Optimizer::new(
        params,
        OptimizerConfig {
            optim: Default::default(),
            schedule: LrSchedule {
                peak_lr: m.lr,
                warmup_steps: m.warmup_steps,
                total_steps: 1,
                decay: Decay::Constant,
                min_lr_ratio: 1.0,
            },
            grad_accum: 1,
            max_grad_norm: Some(m.max_grad_norm),
        },
    )?;
    let learner = RealLearner {
        lm,
        adapters,
        opt,
        mode: config.run.mode,
        lambda: m.lambda,
        gold_nll_weight: m.gold_nll_weight,
        grpo: exspin::train::grpo::GrpoSettings {
            clip: config.run.grpo_clip,
            kl_beta: 0.0,
        },
        run_dir: run_dir.to_path_buf(),
        version: 0,
        activation_checkpointing: m.activation_checkpointing,
        shared_prompt_pairs: m.shared_prompt_pairs,
        lora: m.lora.clone(),
    };
    Ok(Built::Seams((
        generators,
        Box::new(learner),
        Box::new(evaluator),
    )))
}

/// The model SFT starts from: tiny or random (built here, BPE trained on `items`), or the
/// pretrained `model.path`. `exspin sft` starts from it too.
pub fn initial_model(
    config: &JobConfig,
    items: &[(&Example, String)],
    compute: &Compute,
) -> anyhow::Result<Lm> {
    match &config.model.source {
        ModelSource::Pretrained { path } => {
            anyhow::ensure!(
                path.exists(),
                "model.path {} does not exist: give a GGUF file or a Hugging Face folder \
                 (config.json, *.safetensors, tokenizer.json); the default model installs \
                 with ../shared/models/fetch-qwen2.5-coder-0.5b.sh DIR",
                path.display()
            );
            let loaded = load::load_as(path, compute.dtype, &compute.device)
                .with_context(|| format!("loading model.path {}", path.display()))?;
            Ok(Lm {
                model: loaded.model,
                varmap: loaded.varmap,
                tokenizer: loaded.tokenizer,
                special: loaded.special,
                chat: loaded.chat,
            })
        }
        ModelSource::Tiny(shape) => tiny(config, shape, items, compute),
        ModelSource::Random { shape, vocab_size } => random(shape, *vocab_size, items, compute),
        ModelSource::Fake(_) => anyhow::bail!("the fake model has no weights to train"),
    }
}

/// A BPE of `vocab_size` tokens trained on the train prompts and queries (the dev split is not
/// read, so dev names may split into more pieces, as with a real model), and its special tokens.
fn train_tokenizer(
    items: &[(&Example, String)],
    vocab_size: usize,
) -> anyhow::Result<(tokenizers::Tokenizer, SpecialTokens)> {
    let corpus: Vec<String> = items
        .iter()
        .map(|(e, p)| exspin::prompt::render(&ChatTemplate::Plain, p) + &e.gold_sql)
        .collect();
    let tok = tokenizer::train_bpe(corpus.iter(), vocab_size)?;
    let eot = tok
        .token_to_id(ChatTemplate::Plain.end_of_turn())
        .context("the trained tokenizer lacks <|endoftext|>")?;
    let special = SpecialTokens {
        eos: vec![eot],
        pad: eot,
        bos: None,
    };
    Ok((tok, special))
}

/// `model.kind = "random"`: the named decoder shape with random weights (made on the device,
/// seeded there on CUDA; candle's CPU initialiser is not seedable), e.g. a 1.5B-shaped model for
/// `exspin bench pipeline` on a GPU; the BPE's ids are the first of the shape's vocabulary.
fn random(
    shape: &str,
    vocab_size: usize,
    items: &[(&Example, String)],
    compute: &Compute,
) -> anyhow::Result<Lm> {
    let (tok, special) = train_tokenizer(items, vocab_size)?;
    let mut cfg = Config::named(shape).expect("the config checked the shape");
    cfg.eos_token_id = Some(special.pad);
    cfg.bos_token_id = None;
    let (model, varmap) = load::random_as(&cfg, compute.dtype, &compute.device)
        .with_context(|| format!("random weights of the shape {shape}"))?;
    Ok(Lm {
        model,
        varmap,
        tokenizer: tok,
        special,
        chat: ChatTemplate::Plain,
    })
}

/// `model.kind = "tiny"`: a tiny Qwen2 of the configured shape with seeded random weights and a
/// BPE trained on the run's train data.
fn tiny(
    config: &JobConfig,
    m: &TinyModel,
    items: &[(&Example, String)],
    compute: &Compute,
) -> anyhow::Result<Lm> {
    let (tok, special) = train_tokenizer(items, m.vocab_size)?;
    let eot = special.pad;
    let mut cfg = Config::tiny(tok.get_vocab_size(true));
    cfg.hidden_size = m.hidden_size;
    cfg.intermediate_size = m.intermediate_size;
    cfg.num_hidden_layers = m.layers;
    cfg.num_attention_heads = m.heads;
    cfg.num_key_value_heads = m.kv_heads;
    cfg.max_position_embeddings = 4096;
    cfg.eos_token_id = Some(eot);
    // Seeded weights (candle's own initialisers draw from an unseeded generator): normal(0, 0.02)
    // matrices, unit norms, zero biases, as `Model::new` would make them.
    let mut rng = ChaCha8Rng::seed_from_u64(config.sft_seed() ^ 0x7469_6e79);
    let mut tensors = HashMap::new();
    for (name, shape) in cfg.expected_tensors() {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n)
                .map(|_| 0.02 * rng.sample::<f32, _>(StandardNormal))
                .collect()
        };
        tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    let (model, varmap) = load::from_tensors_as(
        &cfg,
        &tensors,
        Path::new("<tiny>"),
        compute.dtype,
        &compute.device,
    )?;
    Ok(Lm {
        model,
        varmap,
        tokenizer: tok,
        special,
        chat: ChatTemplate::Plain,
    })
}

/// The dev accuracy of the initial model, kept while SFT is interrupted (`RUN/sft_initial.json`).
#[derive(Debug, Serialize, Deserialize)]
struct SftInitial {
    dev_ex_before: f64,
}

/// A greedy EX evaluator of `data`'s evaluable examples (the dev split, or SFT's validation).
fn evaluator_for(
    config: &JobConfig,
    run_dir: &Path,
    data: &Dataset,
    prompter: &Prompter,
    compute: &Compute,
) -> anyhow::Result<RealEvaluator> {
    let items: Vec<PromptItem> = data
        .evaluable_examples()
        .map(|(_, e)| {
            Ok(PromptItem {
                example_id: e.id.clone(),
                db_id: e.db_id.clone(),
                question: e.question.clone(),
                gold_sql: e.gold_sql.clone(),
                prompt: prompter.prompt(e)?,
                round: 0,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(RealEvaluator {
        run_dir: run_dir.to_path_buf(),
        chat: ChatTemplate::Plain,
        dev: items,
        database_root: data.database_root.clone(),
        judge: exspin::eval::Judge::for_dataset(data.kind, exspin::eval::EvalOptions::default()),
        judge_scope: data.source.display().to_string(),
        pool: ExecutorPool::new(ExecutorConfig {
            timeout: Duration::from_millis(config.run.executor_timeout_ms),
            workers: 1,
            ..Default::default()
        }),
        max_new_tokens: config.model.max_new_tokens,
        chunk: config.model.chunk,
        compute: compute.clone(),
    })
}

/// The SFT phase: NLL of the gold query, with dev EX measured before and after. Stopped by
/// `stop`, it writes its checkpoint and returns the step it stopped at, of how many.
fn sft(
    config: &JobConfig,
    run_dir: &Path,
    lm: &mut Lm,
    items: &[(&Example, String)],
    evaluator: &RealEvaluator,
    validator: Option<&RealEvaluator>,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<Result<SftReport, (usize, usize)>> {
    let started = Instant::now();
    let checkpoint = sft_checkpoint_dir(run_dir);
    let initial_file = run_dir.join("sft_initial.json");
    let resuming = exspin::train::sft::is_checkpoint(&checkpoint) && initial_file.is_file();
    let (before, initial) = if resuming {
        let initial: SftInitial = serde_json::from_slice(&std::fs::read(&initial_file)?)
            .with_context(|| format!("{} is corrupt", initial_file.display()))?;
        eprintln!("resuming SFT from {}", checkpoint.display());
        (initial.dev_ex_before, None)
    } else {
        let result = evaluator.ex_of(lm)?;
        evaluator.write_predictions("initial", &result)?;
        eprintln!(
            "dev execution accuracy before SFT: {:.1}% ({} questions, {:.1} s)",
            100.0 * result.ex,
            evaluator.dev.len(),
            started.elapsed().as_secs_f64()
        );
        exspin::fsutil::write_atomically(
            &initial_file,
            &serde_json::to_vec(&SftInitial {
                dev_ex_before: result.ex,
            })?,
        )
        .with_context(|| format!("writing {}", initial_file.display()))?;
        (result.ex, Some(result))
    };
    let pairs = sft_pairs(lm, items)?;
    let interrupt = sft_loop::Interrupt {
        stop,
        checkpoint: &checkpoint,
    };
    let outcome = train_sft(config, lm, &pairs, Some(&interrupt), validator)?;
    let steps = outcome.steps;
    if let Some(step) = outcome.stopped_at {
        let total = sft_settings(config).total_steps(pairs.len());
        return Ok(Err((step, total)));
    }
    // Without SFT steps version 0 is the initial model: its dev accuracy is already known (a
    // pretrained model's dev pass is the expensive part of a CPU run).
    let result = match initial {
        Some(result) if steps == 0 => result,
        _ => evaluator.ex_of(lm)?,
    };
    evaluator.write_predictions("v0", &result)?;
    let after = result.ex;
    eprintln!(
        "dev execution accuracy after SFT ({steps} steps): {:.1}% ({:.1} s in all)",
        100.0 * after,
        started.elapsed().as_secs_f64()
    );
    Ok(Ok(SftReport {
        steps,
        seconds: started.elapsed().as_secs_f64(),
        first_loss: outcome.first_loss,
        last_loss: outcome.last_loss,
        dev_ex_before: before,
        dev_ex_after: after,
        dev_questions: evaluator.dev.len(),
        validation_questions: validator.map_or(0, |v| v.dev.len()),
        validation: outcome.validations.clone(),
        best_step: outcome.best_step,
        early_stopped: outcome.early_stopped,
    }))
}

/// The SFT pairs: each train prompt (rendered for `lm`'s template) and its gold answer.
pub fn sft_pairs(lm: &Lm, items: &[(&Example, String)]) -> anyhow::Result<Vec<TokenPair>> {
    items
        .iter()
        .map(|(e, p)| {
            Ok(TokenPair {
                prompt: lm.prompt_ids(p)?,
                response: lm.answer_ids(&e.gold_sql)?,
            })
        })
        .collect()
}

/// The `[sft]` section (with `model.max_grad_norm` and the SFT seed: `sft.seed`, else
/// `run.seed`) as the SFT loop's settings.
pub fn sft_settings(config: &JobConfig) -> SftSettings {
    let s = &config.sft;
    SftSettings {
        steps: s.steps,
        epochs: s.epochs,
        batch_size: s.batch_size,
        peak_lr: s.lr,
        warmup_steps: s.warmup_steps,
        max_grad_norm: config.model.max_grad_norm,
        seed: config.sft_seed(),
    }
}

/// The one SFT loop (`exspin::train::sft`) on `lm` with the job's settings, logging every
/// `sft.log_every` steps and the last: what the run's SFT phase and `exspin sft` both call.
pub fn train_sft(
    config: &JobConfig,
    lm: &mut Lm,
    pairs: &[TokenPair],
    interrupt: Option<&sft_loop::Interrupt<'_>>,
    validator: Option<&RealEvaluator>,
) -> anyhow::Result<SftOutcome> {
    let log_every = config.sft.log_every;
    let t0 = Instant::now();
    let mut log = |st: &SftStep| {
        if log_every > 0 && st.step.is_multiple_of(log_every) || st.step == st.steps {
            eprintln!(
                "sft step {}/{} loss {:.4} lr {:.2e} ({:.1} s)",
                st.step,
                st.steps,
                st.loss,
                st.lr,
                t0.elapsed().as_secs_f64()
            );
        }
    };
    let (tokenizer, special, chat) = (&lm.tokenizer, &lm.special, &lm.chat);
    // The validation questions with their gold answers, for the tie-breaking gold loss.
    let gold_rows: Vec<TokenPair> = match validator {
        Some(v) => v
            .dev
            .iter()
            .map(|p| {
                Ok(TokenPair {
                    prompt: exspin::prompt::prompt_ids(tokenizer, chat, &p.prompt)?,
                    response: exspin::prompt::answer_ids(tokenizer, chat, &p.gold_sql)?,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        None => Vec::new(),
    };
    let chunk = config.model.chunk.max(1);
    let invalid = |e: String| exspin::model::ModelError::Invalid {
        path: "SFT validation".into(),
        message: e,
    };
    // Validation EX, ties broken by the gold answers' mean token log-prob.
    let mut score = |model: &exspin::model::Model| -> exspin::model::Result<sft_loop::Score> {
        let Some(v) = validator else {
            return Ok(sft_loop::Score(0.0, 0.0));
        };
        let t = Instant::now();
        let ex = v
            .ex_with(model, tokenizer, special, chat)
            .map_err(|e| invalid(format!("{e:#}")))?
            .ex;
        let frozen = model.detached();
        let (mut sum, mut tokens) = (0.0f64, 0usize);
        for part in gold_rows.chunks(chunk) {
            let lp = exspin::model::logprob::response_logprobs(&frozen, part, special.pad)?;
            sum += lp.sum.sum_all()?.to_scalar::<f32>()? as f64;
            tokens += lp.n_tokens.iter().sum::<usize>();
        }
        let mean_logprob = sum / tokens.max(1) as f64;
        eprintln!(
            "sft validation EX {:.1}%, gold log-prob per token {mean_logprob:.4} ({} questions, \
             {:.1} s)",
            100.0 * ex,
            v.dev.len(),
            t.elapsed().as_secs_f64()
        );
        Ok(sft_loop::Score(ex, mean_logprob))
    };
    let mut validation = validator.map(|_| sft_loop::Validation {
        every: config.sft.validate_every,
        patience: config.sft.patience,
        score: &mut score,
    });
    Ok(sft_loop::sft(
        &mut lm.model,
        &lm.varmap,
        lm.special.pad,
        config.model.lora.as_ref(),
        pairs,
        &sft_settings(config),
        &mut log,
        interrupt,
        validation.as_mut(),
    )?)
}

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
use exspin::model::generate::GenerateConfig;
use exspin::model::load::{self, SpecialTokens};
use exspin::model::logprob::{Pair as TokenPair, response_logprobs};
use exspin::model::{Config, lora, tokenizer};
use exspin::sql::executor::{ExecutorConfig, ExecutorPool};
use exspin::train::{Decay, LrSchedule, Trainer as Optimizer, TrainerConfig, loss, params_of};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::evaluator::RealEvaluator;
use super::generator::RealGenerator;
use super::learner::RealLearner;
use super::{Lm, weights_dir};
use crate::config::{JobConfig, ModelSource, TinyModel};
use crate::device::Compute;
use crate::prompts::Prompter;
use crate::seams::{DevEvaluator, Generator, Learner, PromptItem};

/// One generator per opponent (`run.generators`), the learner, the dev evaluator.
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
}

#[derive(Debug, Serialize, Deserialize)]
struct ModelMeta {
    chat: ChatTemplate,
}

/// Builds the seams of a real model, running the SFT phase first when version 0 is not there yet.
pub fn build(
    config: &JobConfig,
    run_dir: &Path,
    train: &Dataset,
    dev: &Dataset,
    prompter: &Prompter,
) -> anyhow::Result<Seams> {
    let m = &config.model;
    let compute = Compute::from_config(m.device, m.dtype, config.run.seed)?;
    // Every prompt now: one that cannot be built is reported before any training.
    let train_items: Vec<(&Example, String)> = train
        .evaluable_examples()
        .map(|(_, e)| Ok((e, prompter.prompt(e)?)))
        .collect::<anyhow::Result<_>>()?;
    let dev_items: Vec<PromptItem> = dev
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
    let mut evaluator = RealEvaluator {
        run_dir: run_dir.to_path_buf(),
        chat: ChatTemplate::Plain,
        dev: dev_items,
        database_root: dev.database_root.clone(),
        judge: exspin::eval::Judge::for_dataset(dev.kind, exspin::eval::EvalOptions::default()),
        judge_scope: dev.source.display().to_string(),
        pool: ExecutorPool::new(ExecutorConfig {
            timeout: Duration::from_millis(config.run.executor_timeout_ms),
            workers: 1,
            ..Default::default()
        }),
        max_new_tokens: m.max_new_tokens,
        chunk: m.chunk,
        compute: compute.clone(),
    };
    let v0 = weights_dir(run_dir, 0);
    let meta_path = run_dir.join("weights").join("model.json");
    let chat = if v0.join("config.json").is_file() && meta_path.is_file() {
        let meta: ModelMeta = serde_json::from_slice(&std::fs::read(&meta_path)?)
            .with_context(|| format!("{} is corrupt", meta_path.display()))?;
        meta.chat
    } else {
        let mut lm = match &m.source {
            ModelSource::Pretrained { path } => {
                let path = path.clone();
                anyhow::ensure!(
                    path.exists(),
                    "model.path {} does not exist: give a GGUF file or a Hugging Face folder \
                     (config.json, *.safetensors, tokenizer.json); the default model installs \
                     with ../shared/models/fetch-qwen2.5-coder-0.5b.sh DIR",
                    path.display()
                );
                let loaded = load::load_as(&path, compute.dtype, &compute.device)
                    .with_context(|| format!("loading model.path {}", path.display()))?;
                Lm {
                    model: loaded.model,
                    varmap: loaded.varmap,
                    tokenizer: loaded.tokenizer,
                    special: loaded.special,
                    chat: loaded.chat,
                }
            }
            ModelSource::Tiny(shape) => tiny(config, shape, &train_items, &compute)?,
            ModelSource::Random { shape, vocab_size } => {
                random(shape, *vocab_size, &train_items, &compute)?
            }
            ModelSource::Fake(_) => unreachable!("the fake model has no real seams"),
        };
        evaluator.chat = lm.chat.clone();
        std::fs::create_dir_all(run_dir.join("weights"))?;
        std::fs::write(
            &meta_path,
            serde_json::to_vec(&ModelMeta {
                chat: lm.chat.clone(),
            })?,
        )?;
        let report = sft(config, &mut lm, &train_items, &evaluator)?;
        std::fs::write(
            run_dir.join("sft.json"),
            serde_json::to_string_pretty(&report)? + "\n",
        )?;
        lm.save(&v0)?;
        lm.chat
    };
    evaluator.chat = chat.clone();

    // One generator per opponent, each with its own copy of version 0 (later versions each
    // loads from the published folder).
    let make_generator = || -> anyhow::Result<Box<dyn Generator>> {
        Ok(Box::new(RealGenerator {
            lm: Lm::load(&v0, &chat, &compute)?,
            run_dir: run_dir.to_path_buf(),
            chat: chat.clone(),
            sampling: GenerateConfig {
                max_new_tokens: m.max_new_tokens,
                temperature: m.temperature,
                top_p: m.top_p,
                ..GenerateConfig::default()
            },
            seed: config.run.seed,
            chunk: m.chunk,
            version: 0,
            compute: compute.clone(),
        }))
    };
    let generators = (0..config.run.generators)
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
        TrainerConfig {
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
    let trainer = RealLearner {
        lm,
        adapters,
        opt,
        mode: config.run.mode,
        lambda: m.lambda,
        run_dir: run_dir.to_path_buf(),
        version: 0,
        activation_checkpointing: m.activation_checkpointing,
    };
    Ok((generators, Box::new(trainer), Box::new(evaluator)))
}

/// A BPE of `vocab_size` tokens trained on the train prompts and queries (the dev split is not
/// read, so dev names may split into more pieces, as with a real model), and its special tokens.
fn train_tokenizer(
    items: &[(&Example, String)],
    vocab_size: usize,
) -> anyhow::Result<(tokenizers::Tokenizer, SpecialTokens)> {
    let corpus: Vec<String> = items
        .iter()
        .map(|(e, p)| format!("{p}\n-- SQL:\n{}", e.gold_sql))
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
    let mut rng = ChaCha8Rng::seed_from_u64(config.run.seed ^ 0x7469_6e79);
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

/// The SFT phase: NLL of the gold query, with dev EX measured before and after.
fn sft(
    config: &JobConfig,
    lm: &mut Lm,
    items: &[(&Example, String)],
    evaluator: &RealEvaluator,
) -> anyhow::Result<SftReport> {
    let s = &config.sft;
    let started = Instant::now();
    let result = evaluator.ex_of(lm)?;
    evaluator.write_predictions("initial", &result)?;
    let before = result.ex;
    eprintln!(
        "dev execution accuracy before SFT: {:.1}% ({} questions, {:.1} s)",
        100.0 * before,
        evaluator.dev.len(),
        started.elapsed().as_secs_f64()
    );
    let pairs: Vec<TokenPair> = items
        .iter()
        .map(|(e, p)| {
            Ok(TokenPair {
                prompt: lm.prompt_ids(p)?,
                response: lm.answer_ids(&e.gold_sql)?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let batch = s.batch_size.max(1);
    let per_epoch = pairs.len().div_ceil(batch);
    let steps = if s.epochs > 0 {
        s.epochs * per_epoch
    } else {
        s.steps
    };
    let mut first_loss = None;
    let mut recent: Vec<f32> = Vec::new();
    if steps > 0 && !pairs.is_empty() {
        let adapters = VarMap::new();
        let params = match &config.model.lora {
            Some(l) => {
                lora::attach(&mut lm.model, l, &adapters)?;
                lm.model.set_training(true);
                params_of(&adapters)
            }
            None => params_of(&lm.varmap),
        };
        let mut opt = Optimizer::new(
            params,
            TrainerConfig {
                optim: Default::default(),
                schedule: LrSchedule {
                    peak_lr: s.lr,
                    warmup_steps: s.warmup_steps,
                    total_steps: steps,
                    decay: Decay::Cosine,
                    min_lr_ratio: 0.1,
                },
                grad_accum: 1,
                max_grad_norm: Some(config.model.max_grad_norm),
            },
        )?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.run.seed ^ 0x5f7);
        let mut order: Vec<usize> = Vec::new();
        let t0 = Instant::now();
        for step in 0..steps {
            if order.len() < batch {
                let mut epoch: Vec<usize> = (0..pairs.len()).collect();
                epoch.shuffle(&mut rng);
                order.extend(epoch);
            }
            let idx: Vec<usize> = order.drain(..batch.min(order.len())).collect();
            let rows: Vec<TokenPair> = idx.iter().map(|&i| pairs[i].clone()).collect();
            let lp = response_logprobs(&lm.model, &rows, lm.special.pad)?;
            let out = loss::sft_loss(&lp)?;
            let st = opt.backward(&out.loss)?;
            let l = out.metrics.loss;
            first_loss.get_or_insert(l);
            recent.push(l);
            if recent.len() > 10 {
                recent.remove(0);
            }
            if s.log_every > 0 && (step + 1) % s.log_every == 0 || step + 1 == steps {
                eprintln!(
                    "sft step {}/{steps} loss {l:.4} lr {:.2e} ({:.1} s)",
                    step + 1,
                    st.map(|x| x.lr).unwrap_or(0.0),
                    t0.elapsed().as_secs_f64()
                );
            }
        }
        lm.model.set_training(false);
    }
    // Without SFT steps version 0 is the initial model: its dev accuracy is already known (a
    // pretrained model's dev pass is the expensive part of a CPU run).
    let result = if steps > 0 && !pairs.is_empty() {
        evaluator.ex_of(lm)?
    } else {
        result
    };
    evaluator.write_predictions("v0", &result)?;
    let after = result.ex;
    eprintln!(
        "dev execution accuracy after SFT ({steps} steps): {:.1}% ({:.1} s in all)",
        100.0 * after,
        started.elapsed().as_secs_f64()
    );
    Ok(SftReport {
        steps,
        seconds: started.elapsed().as_secs_f64(),
        first_loss,
        last_loss: (!recent.is_empty()).then(|| recent.iter().sum::<f32>() / recent.len() as f32),
        dev_ex_before: before,
        dev_ex_after: after,
        dev_questions: evaluator.dev.len(),
    })
}

//! `[model]`: which model plays, where it runs, its prompts, sampling and learner settings. The
//! TOML stays flat (`kind = "random"`, `shape = ...`); past parsing the model is a
//! [`ModelSource`] holding only the fields its kind reads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::device::{DeviceSpec, WeightDType};

/// Which model plays.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// The deterministic stand-in of `models/fakes.rs` (learns nothing; exercises the runtime).
    Fake(FakeModel),
    /// A small Qwen2 built from scratch, with a BPE tokenizer trained on the run's data.
    Tiny(TinyModel),
    /// A named decoder shape (as `exspin bench train --shape`) with random weights and such a
    /// BPE of `vocab_size` tokens (its ids the first of the shape's vocabulary): for benchmarks.
    Random { shape: String, vocab_size: usize },
    /// A GGUF file or a Hugging Face folder.
    Pretrained { path: PathBuf },
}

/// The fake model's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeModel {
    /// Probability of producing the gold query at version 0 ...
    pub p0: f64,
    /// ... rising by this much per version (capped at 0.95).
    pub p_step: f64,
    /// Milliseconds each train step sleeps (to make runs long enough to interrupt).
    pub step_ms: u64,
    /// Milliseconds each generate call sleeps per prompt of its batch (to stand in for generation
    /// time, e.g. in `exspin bench pipeline`).
    pub generate_ms: u64,
    /// Milliseconds each dev evaluation sleeps (a real model's dev pass takes minutes, so tests
    /// can see what a run does while one is under way).
    pub evaluate_ms: u64,
}

/// The tiny model's BPE vocabulary and decoder shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyModel {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
}

/// How the run's prompts show the schema: one type with `exspin generate --schema`.
pub use exspin::prompt::SchemaMode;

/// Which model `model.kind` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    #[default]
    Fake,
    Tiny,
    Random,
    Pretrained,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ModelToml", into = "ModelToml")]
pub struct ModelConfig {
    pub source: ModelSource,
    /// Where the real model runs; every seam (SFT, opponents, learner, dev evaluator) uses it.
    pub device: DeviceSpec,
    /// Weight dtype (bf16 only on CUDA; log-probs and losses stay f32).
    pub dtype: WeightDType,
    pub schema: SchemaMode,
    /// Schema filter of the integrated prompt: tables kept, columns kept per table.
    pub schema_k1: usize,
    pub schema_k2: usize,
    /// Representative values (`-- e.g. ...`) in the integrated prompt's column comments; false
    /// keeps filtering, keys, comments and matched values in a much shorter prompt.
    pub schema_values: bool,
    /// Example rows per kept table after its `CREATE TABLE` (integrated and rows prompts; 0
    /// for none; the rows prompt shows 3 when this is 0).
    pub schema_rows: usize,
    /// Opponent sampling (dev evaluation is greedy).
    pub temperature: f64,
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// Self-play learner: AdamW peak learning rate, warmup steps, gradient clipping.
    pub lr: f64,
    pub warmup_steps: usize,
    pub max_grad_norm: f64,
    /// λ of the SPIN / ExSPIN loss (β of DPO).
    pub lambda: f64,
    /// Weight of a negative log-likelihood term on the gold answer (per gold token) added to the
    /// pair losses (SPIN, ExSPIN, DPO): the pair loss alone can push the gold's likelihood down
    /// with the negative's and collapse a real model within a round (BENCHMARKS.md); the NLL
    /// term holds it up, as in iterative RPO (Pang et al., 2024). 0, the default, is the paper's
    /// loss.
    pub gold_nll_weight: f64,
    /// Rows per forward pass when scoring log-probs and generating for dev (memory vs speed).
    pub chunk: usize,
    /// Self-play learner: keep only each layer's input from the forward pass and recompute the
    /// layer during the backward (one more forward of compute for a fraction of the activation
    /// memory: ~5.7 GB → ~0.5 GB for a pair of ~1k-token prompts on the 0.5B model).
    pub activation_checkpointing: bool,
    /// Self-play learner: run each prompt once for its gold answer and all its negatives, in the
    /// forward and the backward (`exspin::model::shared_prompt`), instead of once per answer.
    /// The same loss and gradients; off only to measure the difference (`exspin bench pairs`).
    pub shared_prompt_pairs: bool,
    /// Train LoRA adapters instead of every weight (the published weights are merged).
    pub lora: Option<exspin::model::lora::LoraConfig>,
}

impl ModelConfig {
    pub fn kind(&self) -> ModelKind {
        match self.source {
            ModelSource::Fake(_) => ModelKind::Fake,
            ModelSource::Tiny(_) => ModelKind::Tiny,
            ModelSource::Random { .. } => ModelKind::Random,
            ModelSource::Pretrained { .. } => ModelKind::Pretrained,
        }
    }

    pub fn is_fake(&self) -> bool {
        matches!(self.source, ModelSource::Fake(_))
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelToml::default()
            .try_into()
            .expect("the default model config is valid")
    }
}

/// `[model]` as written. Fields that one kind reads are options, so setting one for another kind
/// is an error instead of being silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ModelToml {
    kind: ModelKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    fake_p0: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fake_p_step: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fake_step_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fake_generate_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fake_evaluate_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shape: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vocab_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hidden_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    intermediate_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kv_heads: Option<usize>,
    device: DeviceSpec,
    dtype: WeightDType,
    schema: SchemaMode,
    schema_k1: usize,
    schema_k2: usize,
    schema_values: bool,
    schema_rows: usize,
    temperature: f64,
    top_p: f64,
    max_new_tokens: usize,
    lr: f64,
    warmup_steps: usize,
    max_grad_norm: f64,
    lambda: f64,
    // Left out of the written config at 0, so configs of runs started before it existed read back
    // unchanged (`exspin experiment` refuses a run whose config changed).
    #[serde(skip_serializing_if = "is_zero")]
    gold_nll_weight: f64,
    chunk: usize,
    activation_checkpointing: bool,
    shared_prompt_pairs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    lora: Option<exspin::model::lora::LoraConfig>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Default for ModelToml {
    fn default() -> Self {
        ModelToml {
            kind: ModelKind::Fake,
            fake_p0: None,
            fake_p_step: None,
            fake_step_ms: None,
            fake_generate_ms: None,
            fake_evaluate_ms: None,
            path: None,
            shape: None,
            vocab_size: None,
            hidden_size: None,
            intermediate_size: None,
            layers: None,
            heads: None,
            kv_heads: None,
            device: DeviceSpec::Cpu,
            dtype: WeightDType::F32,
            schema: SchemaMode::Integrated,
            schema_k1: 4,
            schema_k2: 10,
            schema_values: true,
            schema_rows: 0,
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 64,
            lr: 1e-4,
            warmup_steps: 2,
            max_grad_norm: 1.0,
            lambda: 0.1,
            gold_nll_weight: 0.0,
            chunk: 16,
            activation_checkpointing: false,
            shared_prompt_pairs: true,
            lora: None,
        }
    }
}

impl ModelKind {
    /// The name `model.kind` spells it with.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Fake => "fake",
            ModelKind::Tiny => "tiny",
            ModelKind::Random => "random",
            ModelKind::Pretrained => "pretrained",
        }
    }
}

impl TryFrom<ModelToml> for ModelConfig {
    type Error = String;
    fn try_from(t: ModelToml) -> Result<Self, String> {
        // Which kinds read each kind-specific key.
        let owners: [(&str, bool, &[ModelKind]); 14] = [
            ("fake_p0", t.fake_p0.is_some(), &[ModelKind::Fake]),
            ("fake_p_step", t.fake_p_step.is_some(), &[ModelKind::Fake]),
            ("fake_step_ms", t.fake_step_ms.is_some(), &[ModelKind::Fake]),
            (
                "fake_generate_ms",
                t.fake_generate_ms.is_some(),
                &[ModelKind::Fake],
            ),
            (
                "fake_evaluate_ms",
                t.fake_evaluate_ms.is_some(),
                &[ModelKind::Fake],
            ),
            ("path", t.path.is_some(), &[ModelKind::Pretrained]),
            ("shape", t.shape.is_some(), &[ModelKind::Random]),
            (
                "vocab_size",
                t.vocab_size.is_some(),
                &[ModelKind::Tiny, ModelKind::Random],
            ),
            ("hidden_size", t.hidden_size.is_some(), &[ModelKind::Tiny]),
            (
                "intermediate_size",
                t.intermediate_size.is_some(),
                &[ModelKind::Tiny],
            ),
            ("layers", t.layers.is_some(), &[ModelKind::Tiny]),
            ("heads", t.heads.is_some(), &[ModelKind::Tiny]),
            ("kv_heads", t.kv_heads.is_some(), &[ModelKind::Tiny]),
            (
                "lora",
                t.lora.is_some(),
                &[ModelKind::Tiny, ModelKind::Random, ModelKind::Pretrained],
            ),
        ];
        for (key, set, kinds) in owners {
            if set && !kinds.contains(&t.kind) {
                let allowed: Vec<String> =
                    kinds.iter().map(|k| format!("\"{}\"", k.name())).collect();
                return Err(format!(
                    "model.{key} is not read with model.kind = \"{}\" (only with {}); remove it",
                    t.kind.name(),
                    allowed.join(" or ")
                ));
            }
        }
        let vocab_size = t.vocab_size.unwrap_or(1024);
        let source = match t.kind {
            ModelKind::Fake => {
                let fake = FakeModel {
                    p0: t.fake_p0.unwrap_or(0.3),
                    p_step: t.fake_p_step.unwrap_or(0.2),
                    step_ms: t.fake_step_ms.unwrap_or(0),
                    generate_ms: t.fake_generate_ms.unwrap_or(0),
                    evaluate_ms: t.fake_evaluate_ms.unwrap_or(0),
                };
                if !(0.0..=1.0).contains(&fake.p0) || fake.p_step < 0.0 {
                    return Err(
                        "model.fake_p0 must be in [0, 1] and model.fake_p_step non-negative".into(),
                    );
                }
                ModelSource::Fake(fake)
            }
            ModelKind::Tiny => ModelSource::Tiny(TinyModel {
                vocab_size,
                hidden_size: t.hidden_size.unwrap_or(64),
                intermediate_size: t.intermediate_size.unwrap_or(128),
                layers: t.layers.unwrap_or(2),
                heads: t.heads.unwrap_or(4),
                kv_heads: t.kv_heads.unwrap_or(2),
            }),
            ModelKind::Random => {
                let shapes = exspin::model::Config::SHAPES.join(", ");
                let shape = t.shape.ok_or_else(|| {
                    format!("model.kind = \"random\" needs model.shape, one of {shapes}")
                })?;
                let Some(named) = exspin::model::Config::named(&shape) else {
                    return Err(format!(
                        "model.shape = \"{shape}\" is unknown; use one of {shapes}"
                    ));
                };
                if vocab_size > named.vocab_size {
                    return Err(format!(
                        "model.vocab_size ({vocab_size}) must not exceed the vocabulary of \
                         model.shape = \"{shape}\" ({}): the BPE's ids must be the model's",
                        named.vocab_size
                    ));
                }
                ModelSource::Random { shape, vocab_size }
            }
            ModelKind::Pretrained => ModelSource::Pretrained {
                path: t.path.ok_or(
                    "model.kind = \"pretrained\" needs model.path (a .gguf file or a Hugging Face \
                     folder)",
                )?,
            },
        };
        if t.dtype == WeightDType::Bf16 && t.device == DeviceSpec::Cpu {
            return Err(
                "model.dtype = \"bf16\" needs model.device = \"cuda\" (candle's CPU bf16 kernels \
                 are slow); use model.dtype = \"f32\" on the CPU"
                    .into(),
            );
        }
        Ok(ModelConfig {
            source,
            device: t.device,
            dtype: t.dtype,
            schema: t.schema,
            schema_k1: t.schema_k1,
            schema_k2: t.schema_k2,
            schema_values: t.schema_values,
            schema_rows: t.schema_rows,
            temperature: t.temperature,
            top_p: t.top_p,
            max_new_tokens: t.max_new_tokens,
            lr: t.lr,
            warmup_steps: t.warmup_steps,
            max_grad_norm: t.max_grad_norm,
            lambda: t.lambda,
            gold_nll_weight: t.gold_nll_weight,
            chunk: t.chunk,
            activation_checkpointing: t.activation_checkpointing,
            shared_prompt_pairs: t.shared_prompt_pairs,
            lora: t.lora,
        })
    }
}

impl From<ModelConfig> for ModelToml {
    fn from(c: ModelConfig) -> ModelToml {
        let mut t = ModelToml {
            kind: c.kind(),
            device: c.device,
            dtype: c.dtype,
            schema: c.schema,
            schema_k1: c.schema_k1,
            schema_k2: c.schema_k2,
            schema_values: c.schema_values,
            schema_rows: c.schema_rows,
            temperature: c.temperature,
            top_p: c.top_p,
            max_new_tokens: c.max_new_tokens,
            lr: c.lr,
            warmup_steps: c.warmup_steps,
            max_grad_norm: c.max_grad_norm,
            lambda: c.lambda,
            gold_nll_weight: c.gold_nll_weight,
            chunk: c.chunk,
            activation_checkpointing: c.activation_checkpointing,
            shared_prompt_pairs: c.shared_prompt_pairs,
            lora: c.lora,
            ..ModelToml::default()
        };
        match c.source {
            ModelSource::Fake(f) => {
                t.fake_p0 = Some(f.p0);
                t.fake_p_step = Some(f.p_step);
                t.fake_step_ms = Some(f.step_ms);
                t.fake_generate_ms = Some(f.generate_ms);
                // Written only when set, so older runs' configs read back (and hash) unchanged.
                t.fake_evaluate_ms = (f.evaluate_ms > 0).then_some(f.evaluate_ms);
            }
            ModelSource::Tiny(m) => {
                t.vocab_size = Some(m.vocab_size);
                t.hidden_size = Some(m.hidden_size);
                t.intermediate_size = Some(m.intermediate_size);
                t.layers = Some(m.layers);
                t.heads = Some(m.heads);
                t.kv_heads = Some(m.kv_heads);
            }
            ModelSource::Random { shape, vocab_size } => {
                t.shape = Some(shape);
                t.vocab_size = Some(vocab_size);
            }
            ModelSource::Pretrained { path } => t.path = Some(path),
        }
        t
    }
}

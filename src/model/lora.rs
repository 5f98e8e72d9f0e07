//! LoRA adapters (`y = x Wᵀ + b + scale · dropout(x) Aᵀ Bᵀ`, scale = alpha / rank) on the decoder's
//! linear layers. `candle-lora` is pinned to an old candle, so the adapter is written here. The
//! adapters live in their own VarMap (the optimizer sees only them) and carry PEFT's names
//! (`base_model.model.<module>.lora_A.weight`), so an adapter saved here loads in PEFT unchanged.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::decoder::Model;
use super::{ModelError, Result};

/// The adapter's hyper-parameters (PEFT's `r`, `lora_alpha`, `lora_dropout`, `target_modules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    #[serde(default)]
    pub dropout: f32,
    /// Short module names (`q_proj`, `v_proj`, `gate_proj`, …); a module is adapted when its name
    /// ends with one of them.
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// PEFT's `adapter_config.json`.
    pub fn to_peft_json(&self, base_model: &str) -> serde_json::Value {
        serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.target_modules,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
            "use_rslora": false,
            "use_dora": false,
        })
    }

    /// Read PEFT's `adapter_config.json`.
    pub fn from_peft_json(json: &str, path: &Path) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| ModelError::invalid(path, format!("not valid JSON: {e}")))?;
        if v["peft_type"].as_str() != Some("LORA") {
            return Err(ModelError::invalid(path, "peft_type is not LORA"));
        }
        let rank = v["r"]
            .as_u64()
            .ok_or_else(|| ModelError::invalid(path, "missing r"))? as usize;
        let targets = v["target_modules"]
            .as_array()
            .ok_or_else(|| ModelError::invalid(path, "target_modules must be a list"))?
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
        Ok(LoraConfig {
            rank,
            alpha: v["lora_alpha"].as_f64().unwrap_or(rank as f64),
            dropout: v["lora_dropout"].as_f64().unwrap_or(0.0) as f32,
            target_modules: targets,
        })
    }

    fn targets(&self, module: &str) -> bool {
        let short = module.rsplit('.').next().unwrap_or(module);
        self.target_modules
            .iter()
            .any(|t| t == short || t == module)
    }
}

/// PEFT's name for an adapter matrix of `module` (`which` is `lora_A` or `lora_B`).
pub fn peft_name(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.{which}.weight")
}

/// One adapter: `a` (rank, in), `b` (out, rank).
#[derive(Debug, Clone)]
pub struct Lora {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
    pub dropout: f32,
    pub training: bool,
    /// This adapter's place in the model (its dropout stream), and the model's forward-pass
    /// counter: the dropout mask is a function of the two, so a pass recomputed for activation
    /// checkpointing drops exactly the units the first pass dropped (`src/model/recompute.rs`).
    pub site: u64,
    pub pass: Arc<AtomicU64>,
}

impl Lora {
    /// The adapter's contribution for a 2-D input (rows, in).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = if self.training && self.dropout > 0.0 {
            let key = self.pass.load(Ordering::Relaxed);
            (x * dropout_mask(x, self.dropout, key, self.site)?)?
        } else {
            x.clone()
        };
        exspin_kernels::dense(&exspin_kernels::dense(&x, &self.a)?, &self.b)? * self.scale
    }

    /// `scale · B·A`, the update merging adds to the base weight.
    pub fn delta_weight(&self) -> candle_core::Result<Tensor> {
        self.b.matmul(&self.a)? * self.scale
    }
}

/// Inverted dropout's mask for `x` (0 or 1/(1-p) per element) as a pure function of (pass, site,
/// element): counter-based hashing instead of a stateful generator, so the same pass can be
/// replayed.
fn dropout_mask(x: &Tensor, p: f32, pass: u64, site: u64) -> candle_core::Result<Tensor> {
    let n = x.elem_count();
    let key = mix(pass ^ mix(site.wrapping_add(0x5851_F42D_4C95_7F2D)));
    let keep = 1.0 / (1.0 - p);
    // A 24-bit uniform per element, compared with p.
    let threshold = (p as f64 * (1u64 << 24) as f64) as u64;
    let mask: Vec<f32> = (0..n as u64)
        .map(|i| {
            if (mix(key.wrapping_add(i)) >> 40) < threshold {
                0.0
            } else {
                keep
            }
        })
        .collect();
    Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())
}

/// splitmix64's finaliser: a well-mixed 64-bit hash of a counter.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Attach adapters to every targeted linear layer and freeze the base. Adapter weights come from
/// `varmap` when it holds them (a loaded adapter) and are created otherwise (A uniform in
/// ±1/√in as PEFT's Kaiming init, B zero so the model starts unchanged). Returns the number of
/// adapted modules; fails when no module matches, since training would then do nothing.
pub fn attach(model: &mut Model, cfg: &LoraConfig, varmap: &VarMap) -> Result<usize> {
    if cfg.rank == 0 {
        return Err(ModelError::invalid("lora", "rank must be at least 1"));
    }
    let device = model.device().clone();
    model.freeze_base();
    let vb = VarBuilder::from_varmap(varmap, DType::F32, &device);
    let pass = model.forward_passes();
    let mut n = 0;
    for (site, lin) in model.linears_mut().into_iter().enumerate() {
        if !cfg.targets(&lin.name) {
            continue;
        }
        let (out, inp) = (lin.out_features(), lin.in_features());
        let bound = 1.0 / (inp as f64).sqrt();
        let a = vb.get_with_hints(
            (cfg.rank, inp),
            &peft_name(&lin.name, "lora_A"),
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        let b = vb.get_with_hints(
            (out, cfg.rank),
            &peft_name(&lin.name, "lora_B"),
            Init::Const(0.0),
        )?;
        lin.lora = Some(Lora {
            a,
            b,
            scale: cfg.scale(),
            dropout: cfg.dropout,
            training: false,
            site: site as u64,
            pass: pass.clone(),
        });
        n += 1;
    }
    if n == 0 {
        return Err(ModelError::invalid(
            "lora",
            format!(
                "target_modules {:?} match no linear layer (use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)",
                cfg.target_modules
            ),
        ));
    }
    Ok(n)
}

/// The adapter tensors in PEFT names, as `adapter_model.safetensors` holds them.
pub fn adapter_tensors(model: &mut Model) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for lin in model.linears_mut() {
        if let Some(l) = &lin.lora {
            out.push((peft_name(&lin.name, "lora_A"), l.a.clone()));
            out.push((peft_name(&lin.name, "lora_B"), l.b.clone()));
        }
    }
    out
}

/// Load a PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`) onto `model`;
/// the adapter becomes trainable Vars in `varmap`.
pub fn load_adapter(dir: &Path, model: &mut Model, varmap: &VarMap) -> Result<LoraConfig> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
    let cfg = LoraConfig::from_peft_json(&text, &cfg_path)?;
    let w_path = dir.join("adapter_model.safetensors");
    let tensors = candle_core::safetensors::load(&w_path, model.device()).map_err(|e| {
        ModelError::Candle {
            context: w_path.display().to_string(),
            source: e,
        }
    })?;
    {
        let mut data = varmap.data().lock().expect("varmap lock");
        for (name, t) in tensors {
            data.insert(
                name,
                candle_core::Var::from_tensor(&t.to_dtype(DType::F32)?)?,
            );
        }
    }
    let before = varmap.all_vars().len();
    attach(model, &cfg, varmap)?;
    if varmap.all_vars().len() != before {
        return Err(ModelError::MissingTensor {
            path: w_path,
            name: "an adapter matrix for one of target_modules".into(),
        });
    }
    Ok(cfg)
}

//! LoRA adapters on the decoder's linear layers: the hyper-parameters ([`LoraConfig`]), attaching
//! adapters to a [`Model`], and PEFT's files. The adapter itself ([`Lora`], its forward and dropout)
//! is in `lora_adapter.rs`, which the decoder's linear layer holds without knowing this file. The
//! adapters live in their own VarMap (the optimizer sees only them) and carry PEFT's names
//! (`base_model.model.<module>.lora_A.weight`), so an adapter saved here loads in PEFT unchanged.

use std::path::Path;

use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::decoder::Model;
use super::lora_adapter::Lora;
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

//! The decoder's hyper-parameters ([`Config`], [`Architecture`]): reading and writing a Hugging
//! Face `config.json`, the tensor shapes a config implies, and the named benchmark shapes
//! ([`Config::named`]).

use serde::{Deserialize, Serialize};

use super::{ModelError, Result};

/// Which Hugging Face architecture the weights follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// `Qwen2ForCausalLM`: q/k/v projections carry a bias, o_proj does not.
    Qwen2,
    /// `LlamaForCausalLM`: no biases unless `attention_bias` is set.
    Llama,
}

impl Architecture {
    /// From `config.json`'s `architectures[0]` or `model_type`, or GGUF's `general.architecture`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Qwen2ForCausalLM" | "qwen2" => Some(Self::Qwen2),
            "LlamaForCausalLM" | "llama" => Some(Self::Llama),
            _ => None,
        }
    }
    pub fn hf_class(self) -> &'static str {
        match self {
            Self::Qwen2 => "Qwen2ForCausalLM",
            Self::Llama => "LlamaForCausalLM",
        }
    }
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama => "llama",
        }
    }
}

/// The decoder's hyper-parameters: the fields of a Hugging Face Qwen2 / Llama `config.json` that
/// change the computation (see [`Config::to_hf_json`] for the file written back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v (Qwen2 always; Llama when `attention_bias`).
    pub attention_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
}

impl Config {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// A tiny Qwen2-shaped config for tests and the demo.
    pub fn tiny(vocab_size: usize) -> Self {
        Config {
            architecture: Architecture::Qwen2,
            vocab_size,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 512,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: true,
            attention_bias: true,
            bos_token_id: None,
            eos_token_id: None,
        }
    }

    /// Names accepted by [`Config::named`] (benchmarks, `exspin model random`).
    pub const SHAPES: &'static [&'static str] = &[
        "qwen2-tiny",
        "llama-tiny",
        "qwen2-30m",
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-1.5b",
    ];

    /// A named shape (random weights for benchmarks and parity checks):
    /// `qwen2-tiny` / `llama-tiny` (~50k parameters, for parity tests), `qwen2-30m` (~31M: hidden
    /// 512, 8 layers, 8 heads, 2 kv heads, MLP 1408, vocabulary 16384, tied), and the real
    /// configurations of Qwen2.5-Coder-0.5B and -1.5B (vocabulary 151936, tied embeddings).
    pub fn named(name: &str) -> Option<Self> {
        let qwen = |vocab, hidden, inter, layers, heads, kv, theta: f64| Config {
            architecture: Architecture::Qwen2,
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            max_position_embeddings: 32768,
            rope_theta: theta,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: true,
            attention_bias: true,
            bos_token_id: None,
            eos_token_id: None,
        };
        Some(match name {
            "qwen2-tiny" => qwen(256, 64, 128, 2, 4, 2, 10_000.0),
            "llama-tiny" => Config {
                architecture: Architecture::Llama,
                tie_word_embeddings: false,
                attention_bias: false,
                rms_norm_eps: 1e-5,
                ..qwen(256, 64, 128, 2, 4, 2, 10_000.0)
            },
            "qwen2-30m" => qwen(16384, 512, 1408, 8, 8, 2, 10_000.0),
            "qwen2.5-coder-0.5b" => Config {
                bos_token_id: Some(151643),
                eos_token_id: Some(151645),
                ..qwen(151_936, 896, 4864, 24, 14, 2, 1_000_000.0)
            },
            "qwen2.5-coder-1.5b" => Config {
                bos_token_id: Some(151643),
                eos_token_id: Some(151645),
                ..qwen(151_936, 1536, 8960, 28, 12, 2, 1_000_000.0)
            },
            _ => return None,
        })
    }

    /// Parameters a model of this config holds (tied embeddings counted once).
    pub fn num_params(&self) -> usize {
        self.expected_tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// Parse a Hugging Face `config.json` (Qwen2 or Llama). `path` only names the file in errors.
    pub fn from_hf_json(json: &str, path: &std::path::Path) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| ModelError::invalid(path, format!("not valid JSON: {e}")))?;
        let name = v["architectures"][0]
            .as_str()
            .or_else(|| v["model_type"].as_str())
            .unwrap_or("<none>")
            .to_string();
        let architecture =
            Architecture::from_name(&name).ok_or_else(|| ModelError::UnknownArchitecture {
                path: path.to_path_buf(),
                found: name.clone(),
            })?;
        let req = |key: &str| -> Result<usize> {
            v[key].as_u64().map(|x| x as usize).ok_or_else(|| {
                ModelError::invalid(
                    path,
                    format!("config field {key:?} is missing or not an integer"),
                )
            })
        };
        if let Some(act) = v["hidden_act"].as_str()
            && act != "silu"
        {
            return Err(ModelError::invalid(
                path,
                format!("hidden_act {act:?} is not supported (only silu)"),
            ));
        }
        // transformers ≥ 5 writes `rope_parameters` ({"rope_theta", "rope_type"}) instead of
        // `rope_theta` + `rope_scaling`.
        for key in ["rope_scaling", "rope_parameters"] {
            let rs = &v[key];
            if !rs.is_null() && rs["rope_type"].as_str().or(rs["type"].as_str()) != Some("default")
            {
                return Err(ModelError::invalid(
                    path,
                    format!("{key} {rs} is not supported; remove it or use a model without it"),
                ));
            }
        }
        let heads = req("num_attention_heads")?;
        let hidden = req("hidden_size")?;
        if let Some(hd) = v["head_dim"].as_u64()
            && hd as usize != hidden / heads
        {
            return Err(ModelError::invalid(
                path,
                format!("head_dim {hd} != hidden_size / num_attention_heads is not supported"),
            ));
        }
        let first_id = |x: &serde_json::Value| -> Option<u32> {
            x.as_u64()
                .or_else(|| {
                    x.as_array()
                        .and_then(|a| a.first())
                        .and_then(|y| y.as_u64())
                })
                .map(|n| n as u32)
        };
        Ok(Config {
            architecture,
            vocab_size: req("vocab_size")?,
            hidden_size: hidden,
            intermediate_size: req("intermediate_size")?,
            num_hidden_layers: req("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: v["num_key_value_heads"]
                .as_u64()
                .map(|x| x as usize)
                .unwrap_or(heads),
            max_position_embeddings: v["max_position_embeddings"].as_u64().unwrap_or(32768)
                as usize,
            rope_theta: v["rope_theta"]
                .as_f64()
                .or_else(|| v["rope_parameters"]["rope_theta"].as_f64())
                .unwrap_or(10_000.0),
            rms_norm_eps: v["rms_norm_eps"].as_f64().unwrap_or(1e-6),
            tie_word_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
            attention_bias: match architecture {
                Architecture::Qwen2 => true,
                Architecture::Llama => v["attention_bias"].as_bool().unwrap_or(false),
            },
            bos_token_id: first_id(&v["bos_token_id"]),
            eos_token_id: first_id(&v["eos_token_id"]),
        })
    }

    /// The `config.json` that `transformers` reads back unchanged.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "architectures": [self.architecture.hf_class()],
            "model_type": self.architecture.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "max_position_embeddings": self.max_position_embeddings,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "rope_scaling": null,
            "use_cache": true,
            "torch_dtype": "float32",
        });
        match self.architecture {
            Architecture::Qwen2 => {
                v["use_sliding_window"] = false.into();
                v["sliding_window"] = self.max_position_embeddings.into();
                v["max_window_layers"] = self.num_hidden_layers.into();
            }
            Architecture::Llama => {
                v["attention_bias"] = self.attention_bias.into();
                v["mlp_bias"] = false.into();
                v["pretraining_tp"] = 1.into();
            }
        }
        if let Some(id) = self.bos_token_id {
            v["bos_token_id"] = id.into();
        }
        if let Some(id) = self.eos_token_id {
            v["eos_token_id"] = id.into();
        }
        v
    }

    /// Every tensor the model reads, with its shape, in Hugging Face names. Loading checks a file
    /// against this list first so that a missing tensor or a wrong shape is reported by name
    /// (a VarMap would silently create random weights for a missing name).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let h = self.hidden_size;
        let hd = self.head_dim();
        let q = self.num_attention_heads * hd;
        let kv = self.num_key_value_heads * hd;
        let i = self.intermediate_size;
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            vec![self.vocab_size, h],
        )];
        for l in 0..self.num_hidden_layers {
            let p = format!("model.layers.{l}");
            out.push((format!("{p}.self_attn.q_proj.weight"), vec![q, h]));
            out.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, h]));
            out.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, h]));
            if self.attention_bias {
                out.push((format!("{p}.self_attn.q_proj.bias"), vec![q]));
                out.push((format!("{p}.self_attn.k_proj.bias"), vec![kv]));
                out.push((format!("{p}.self_attn.v_proj.bias"), vec![kv]));
            }
            out.push((format!("{p}.self_attn.o_proj.weight"), vec![h, q]));
            out.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
            out.push((format!("{p}.mlp.up_proj.weight"), vec![i, h]));
            out.push((format!("{p}.mlp.down_proj.weight"), vec![h, i]));
            out.push((format!("{p}.input_layernorm.weight"), vec![h]));
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
        }
        out.push(("model.norm.weight".to_string(), vec![h]));
        if !self.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![self.vocab_size, h]));
        }
        out
    }
}

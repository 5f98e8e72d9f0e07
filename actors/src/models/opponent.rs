//! One opponent's seam object from a job config: what the runtime builds for each of its
//! `run.generators` and what a fleet worker builds for a head's job (`crate::fleet`). One place,
//! so a remote opponent samples exactly as a local one.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use exspin::model::generate::GenerateConfig;

use super::compute::Compute;
use super::fakes::FakeGenerator;
use super::real::generator::RealGenerator;
use super::real::{Lm, weights_dir};
use crate::config::{JobConfig, Mode, ModelSource};
use crate::protocol::seams::Generator;

/// An opponent at version 0 of `config`'s model: the fake, or the real model from
/// `run_dir/weights/v0` (written by the run's set-up) in the chat template the run recorded, on
/// `compute` (None: opened from the config, as a worker does).
pub fn opponent_for(
    config: &JobConfig,
    run_dir: &Path,
    compute: Option<&Compute>,
) -> anyhow::Result<Box<dyn Generator>> {
    let m = &config.model;
    match &m.source {
        ModelSource::Fake(f) => Ok(Box::new(FakeGenerator {
            seed: config.run.seed,
            p0: f.p0,
            p_step: f.p_step,
            version: 0,
            delay_per_prompt: Duration::from_millis(f.generate_ms),
            frozen_reference: config.run.mode == Mode::Dpo,
        })),
        _ => {
            let compute = match compute {
                Some(c) => c.clone(),
                None => Compute::from_config(m.device, m.dtype, config.run.seed)?,
            };
            let v0 = weights_dir(run_dir, 0);
            let meta = run_dir.join("weights").join("model.json");
            let chat = serde_json::from_slice::<super::real::setup::ModelMeta>(
                &std::fs::read(&meta).with_context(|| {
                    format!("reading {} (is this the run's folder?)", meta.display())
                })?,
            )
            .with_context(|| format!("{} is corrupt", meta.display()))?
            .chat;
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
                // DPO's reference stays version 0 while the opponent moves on.
                reference: match config.run.mode {
                    Mode::Dpo => Some(Lm::load(&v0, &chat, &compute)?),
                    _ => None,
                },
                score: config.run.mode != Mode::Sft,
                prefixes: exspin::model::prefix_cache::PrefixCache::new(
                    super::real::generator::PREFIX_CACHE_BYTES,
                ),
                compute,
            }))
        }
    }
}

//! Starting a run from another run's version 0 (`exspin run --sft-from DIR`): the SFT phase is
//! the bulk of a small run's time, and every method of an experiment that shares the data, model
//! and SFT settings would train the same version 0. Copying it is refused unless the two configs
//! agree on everything the SFT phase reads (`JobConfig::sft_signature`).

use std::path::Path;

use anyhow::Context;
use exspin::model::ModelError;

use super::weights_dir;
use crate::config::JobConfig;

/// What a run folder's SFT phase leaves, relative to the folder: version 0, the model's chat
/// metadata, the phase's report, its dev predictions and per-example verdicts.
const FILES: &[&str] = &[
    "weights/model.json",
    "sft.json",
    "dev_predictions/initial.sql",
    "dev_predictions/v0.sql",
    "dev/round-0.jsonl",
];

/// Copies `from`'s version 0 into `run_dir` (a fresh run folder holding its `config.toml`).
pub fn copy_version0(config: &JobConfig, from: &Path, run_dir: &Path) -> anyhow::Result<()> {
    let their_config = from.join("config.toml");
    let (theirs, _) = JobConfig::load(&their_config).with_context(|| {
        format!(
            "--sft-from {}: not a run folder (its config.toml does not load)",
            from.display()
        )
    })?;
    anyhow::ensure!(
        theirs.sft_signature() == config.sft_signature(),
        "--sft-from {}: that run's SFT phase used other settings (its [data], [model] or [sft] \
         section, or the SFT seed (sft.seed, else run.seed), differ from this config's), so its version 0 is not the one this \
         run would train; drop --sft-from to train it",
        from.display()
    );
    let v0 = weights_dir(from, 0);
    anyhow::ensure!(
        v0.join("config.json").is_file() && from.join("sft.json").is_file(),
        "--sft-from {}: it has no finished SFT phase yet ({} and sft.json are missing); run it first",
        from.display(),
        v0.display()
    );
    // Version 0 goes in last and atomically (its folder is what marks the phase as done), so a
    // crash leaves either no version 0 (the run then trains it) or a whole one.
    for f in FILES {
        let src = from.join(f);
        if src.is_file() {
            let dst = run_dir.join(f);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    exspin::model::checkpoint::write_atomically(&weights_dir(run_dir, 0), |tmp| {
        for entry in std::fs::read_dir(&v0).map_err(io(&v0))? {
            let path = entry.map_err(io(&v0))?.path();
            let dst = tmp.join(path.file_name().expect("a directory entry has a name"));
            std::fs::copy(&path, &dst).map_err(io(&path))?;
        }
        Ok(())
    })
    .with_context(|| format!("copying {}", v0.display()))?;
    Ok(())
}

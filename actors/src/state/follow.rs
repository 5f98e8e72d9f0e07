//! Reading the run a continued-SFT run follows (`run.follow`): its trained sample ids, from its
//! `summary.json`, once it has finished.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::logic::follow::Followed;
use crate::state::summary::Summary;

/// Where `follow` points from `run_dir` (relative paths are relative to the run's folder).
pub fn resolve(run_dir: &Path, follow: &Path) -> PathBuf {
    if follow.is_absolute() {
        follow.to_path_buf()
    } else {
        run_dir.join(follow)
    }
}

/// The trained ids of the finished run at `follow` (resolved against `run_dir`).
pub fn read(run_dir: &Path, follow: &Path) -> anyhow::Result<Followed> {
    let dir = resolve(run_dir, follow);
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "run.follow = {:?}: reading {} (run.follow names a finished run's folder, relative \
             to this run's folder {}; run that one first)",
            follow.display(),
            path.display(),
            run_dir.display()
        )
    })?;
    let summary: Summary = serde_json::from_str(&text)
        .with_context(|| format!("run.follow: {} is not a run summary", path.display()))?;
    anyhow::ensure!(
        summary.finished,
        "run.follow: the run in {} has not finished (its summary.json says so); finish it first \
         (`exspin resume {}`), then start this one",
        dir.display(),
        dir.display()
    );
    Ok(Followed::new(summary.samples_trained_ids))
}

//! Checkpoints: one consistent cut of the run, written to a temporary folder and renamed into
//! place (a crash mid-write leaves no half checkpoint under a real name); the last K are kept.
//!
//! ```text
//! RUN/checkpoints/step-00000012/checkpoint.json   journal, replay buffer, hashes, seed
//! RUN/checkpoints/step-00000012/...               whatever the trainer seam saves (weights, optimizer)
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::logic::buffer::BufferSnapshot;
use crate::protocol::seams::Learner;
use crate::state::journal::Journal;

/// The checkpoint format this build writes and reads. Its history, for the message a resume of
/// an older run folder gives:
/// * 1 (until 2026-11-26): the journal held every trained id;
/// * 2: the journal counts trained ids (`trained_count`); the ids are in `RUN/trained_ids.txt`.
pub const FORMAT: u32 = 2;

/// The exspin version that writes checkpoints (recorded in each, for the message above).
pub const WRITTEN_BY: &str = env!("CARGO_PKG_VERSION");

/// What a checkpoint says of itself before the rest of it is read.
#[derive(Debug, Deserialize)]
struct FormatOnly {
    format: u32,
    #[serde(default)]
    written_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: u32,
    /// The exspin version that wrote it (absent before format 2's last builds).
    #[serde(default)]
    pub written_by: Option<String>,
    pub step: u64,
    pub round: u64,
    pub seed: u64,
    pub config_hash: String,
    pub data_hash: String,
    pub buffer: BufferSnapshot,
    pub journal: Journal,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "checkpoint {} is corrupt ({message}); delete that folder to resume from an older checkpoint",
        path.display()
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "checkpoint {} was written in checkpoint format {found}{} and this exspin ({WRITTEN_BY}) \
         reads format {FORMAT}; it is not damaged. Finish that run with the exspin that wrote it, \
         or start it again with this one: `exspin run RUN/config.toml --run-dir NEW_DIR` (the run \
         folder keeps its config and published weights; `--sft-from RUN` reuses its version 0 \
         where the SFT settings match)",
        path.display(),
        written_by.as_deref().map(|v| format!(" by exspin {v}")).unwrap_or_default()
    )]
    OtherFormat {
        path: PathBuf,
        found: u32,
        written_by: Option<String>,
    },
    #[error("no checkpoint in {}: nothing to resume (start again with `exspin run`)", .0.display())]
    None(PathBuf),
    #[error("the learner could not save its state in {}: {message}", path.display())]
    Learner { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The hash of a run's config text that each checkpoint carries: a resume refuses a checkpoint
/// made under another config (or one the run had before its rounds were raised, `extend`).
pub fn config_hash(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

pub fn folder(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// Writes a checkpoint and prunes to the last `keep`. Returns its folder.
pub fn write(
    run_dir: &Path,
    meta: &CheckpointMeta,
    learner: &dyn Learner,
    keep: usize,
) -> Result<PathBuf, CheckpointError> {
    let root = folder(run_dir);
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let dest = root.join(format!("step-{:08}", meta.step));
    let staged = exspin::fsutil::Staged::dir(&dest).map_err(io(&dest))?;
    let tmp = staged.path();
    learner
        .save_state(tmp)
        .map_err(|e| CheckpointError::Learner {
            path: tmp.to_path_buf(),
            message: format!("{e:#}"),
        })?;
    let file = tmp.join("checkpoint.json");
    let bytes = serde_json::to_vec(meta).expect("checkpoint serializes");
    std::fs::write(&file, bytes).map_err(io(&file))?;
    staged.commit().map_err(io(&dest))?;
    for old in list(run_dir)?.iter().rev().skip(keep) {
        std::fs::remove_dir_all(old).map_err(io(old))?;
    }
    Ok(dest)
}

/// Complete checkpoints, oldest first.
pub fn list(run_dir: &Path) -> Result<Vec<PathBuf>, CheckpointError> {
    let root = folder(run_dir);
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(io(&root))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
        })
        .collect();
    all.sort();
    Ok(all)
}

/// Reads the newest checkpoint. A corrupt one is an error that names it, never skipped silently.
pub fn read_latest(run_dir: &Path) -> Result<(PathBuf, CheckpointMeta), CheckpointError> {
    let dir = list(run_dir)?
        .pop()
        .ok_or_else(|| CheckpointError::None(folder(run_dir)))?;
    let meta = read(&dir)?;
    Ok((dir, meta))
}

pub fn read(dir: &Path) -> Result<CheckpointMeta, CheckpointError> {
    let file = dir.join("checkpoint.json");
    let corrupt = |message: String| CheckpointError::Corrupt {
        path: dir.to_path_buf(),
        message,
    };
    let bytes =
        std::fs::read(&file).map_err(|e| corrupt(format!("cannot read checkpoint.json: {e}")))?;
    // The format first: a checkpoint of another format is not expected to parse as this one.
    let head: FormatOnly = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(format!("checkpoint.json does not parse: {e}")))?;
    if head.format != FORMAT {
        return Err(CheckpointError::OtherFormat {
            path: dir.to_path_buf(),
            found: head.format,
            written_by: head.written_by,
        });
    }
    let meta: CheckpointMeta = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(format!("checkpoint.json does not parse: {e}")))?;
    if meta.journal.step != meta.step {
        return Err(corrupt("its step and its journal disagree".into()));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::fakes::{FakeLearner, FakeLearnerState};

    fn meta(step: u64) -> CheckpointMeta {
        let mut journal = Journal::default();
        journal.step = step;
        journal.record_trained([format!("e#r0#s{step}")]);
        CheckpointMeta {
            format: FORMAT,
            written_by: Some(WRITTEN_BY.into()),
            step,
            round: 0,
            seed: 1,
            config_hash: "c".into(),
            data_hash: "d".into(),
            buffer: BufferSnapshot::default(),
            journal,
        }
    }

    #[test]
    fn keeps_the_last_k_renames_into_place_and_reads_back() {
        let run = tempfile::tempdir().unwrap();
        let learner = FakeLearner {
            state: FakeLearnerState::default(),
            step_delay: std::time::Duration::ZERO,
        };
        for step in 1..=5 {
            write(run.path(), &meta(step), &learner, 2).unwrap();
        }
        let names: Vec<String> = list(run.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["step-00000004", "step-00000005"]);
        let leftovers = std::fs::read_dir(folder(run.path())).unwrap().count();
        assert_eq!(leftovers, 2, "no temporary folder is left behind");
        let (dir, back) = read_latest(run.path()).unwrap();
        assert!(dir.join("fake_trainer.json").is_file());
        assert_eq!(back.step, 5);
        assert!(
            back.journal.is_trained("e#r0#s5"),
            "the recent ids come back"
        );

        std::fs::write(dir.join("checkpoint.json"), b"{").unwrap();
        let err = read_latest(run.path()).unwrap_err().to_string();
        assert!(
            err.contains("corrupt") && err.contains("step-00000005"),
            "{err}"
        );
    }

    /// A run folder of an older format is named as such, with what to do; not "corrupt".
    #[test]
    fn an_older_format_says_which_and_what_to_do() {
        let run = tempfile::tempdir().unwrap();
        let dir = folder(run.path()).join("step-00000003");
        std::fs::create_dir_all(&dir).unwrap();
        // What a format-1 checkpoint looked like: the trained ids in the journal.
        std::fs::write(
            dir.join("checkpoint.json"),
            br#"{"format":1,"step":3,"round":0,"seed":1,"config_hash":"c","data_hash":"d",
                "journal":{"trained_ids":["a#r0#s0"]}}"#,
        )
        .unwrap();
        let err = read_latest(run.path()).unwrap_err().to_string();
        assert!(!err.contains("corrupt"), "{err}");
        assert!(
            err.contains("format 1") && err.contains(&format!("reads format {FORMAT}")),
            "{err}"
        );
        assert!(
            err.contains("exspin run") && err.contains("--sft-from"),
            "{err}"
        );
    }
}

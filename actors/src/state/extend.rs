//! More rounds for a run: `exspin resume RUN --rounds N` raises `run.rounds` in the run's
//! `config.toml` and the run goes on from its newest checkpoint (a finished run's is written when
//! it finishes: the start of the round after its last).
//!
//! Checkpoints carry the hash of the config text they were made with, and a resume refuses any
//! other (two runs must not mix). Raising the rounds changes that text on purpose, so the hash of
//! every text the run had before goes into `config-lineage.json`, which a resume accepts as its
//! own; nothing else writes it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::JobConfig;
use crate::state::checkpoint::config_hash;

const LINEAGE: &str = "config-lineage.json";

/// The run's earlier config texts, by hash, and the rounds each asked for.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Lineage {
    earlier: Vec<Earlier>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Earlier {
    config_sha256: String,
    rounds: u64,
}

/// What [`extend_rounds`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// `run.rounds` was already the number asked for.
    Unchanged,
    Raised {
        from: u64,
        to: u64,
    },
}

/// Raises the run's `run.rounds` to `rounds`: the old config's hash joins the lineage first, then
/// `config.toml` is replaced, then `summary.json` says the run is not finished (so an experiment
/// does not skip it). Each write is atomic and a crash between them leaves a run that resumes
/// under either config. Lowering is refused (the published versions would outnumber the rounds).
pub fn extend_rounds(run_dir: &Path, rounds: u64) -> anyhow::Result<Extension> {
    let config_path = run_dir.join("config.toml");
    let (config, text) = JobConfig::load(&config_path)
        .with_context(|| format!("{} is not a run folder", run_dir.display()))?;
    let from = config.run.rounds;
    anyhow::ensure!(
        rounds >= from,
        "--rounds {rounds} is fewer than the {from} the run in {} was started with; a run can only \
         be given more rounds",
        run_dir.display()
    );
    if rounds == from {
        return Ok(Extension::Unchanged);
    }
    let new_text = with_rounds(&text, &config, rounds)?;
    let mut lineage = read_lineage(run_dir)?;
    lineage.earlier.push(Earlier {
        config_sha256: config_hash(&text),
        rounds: from,
    });
    let lineage_path = run_dir.join(LINEAGE);
    exspin::fsutil::write_atomically(
        &lineage_path,
        &serde_json::to_vec_pretty(&lineage).expect("the lineage serializes"),
    )
    .with_context(|| format!("writing {}", lineage_path.display()))?;
    exspin::fsutil::write_atomically(&config_path, new_text.as_bytes())
        .with_context(|| format!("writing {}", config_path.display()))?;
    let summary_path = run_dir.join("summary.json");
    if let Ok(bytes) = std::fs::read(&summary_path)
        && let Ok(mut summary) = serde_json::from_slice::<serde_json::Value>(&bytes)
    {
        summary["finished"] = serde_json::Value::Bool(false);
        exspin::fsutil::write_atomically(
            &summary_path,
            &serde_json::to_vec_pretty(&summary).expect("a JSON value serializes"),
        )
        .with_context(|| format!("writing {}", summary_path.display()))?;
    }
    Ok(Extension::Raised { from, to: rounds })
}

/// Whether a checkpoint made under the config whose text hashes to `hash` belongs to this run:
/// its config now, or one it had before [`extend_rounds`].
pub fn is_own_config(run_dir: &Path, current_hash: &str, hash: &str) -> anyhow::Result<bool> {
    Ok(hash == current_hash
        || read_lineage(run_dir)?
            .earlier
            .iter()
            .any(|e| e.config_sha256 == hash))
}

fn read_lineage(run_dir: &Path) -> anyhow::Result<Lineage> {
    let path: PathBuf = run_dir.join(LINEAGE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} does not parse; it lists the configs the run had before its rounds were \
                 raised (restore it from a backup, or delete it to resume only under the current \
                 config)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lineage::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `text` with `run.rounds = rounds`, its comments and layout kept where the rounds line is a
/// plain `rounds = N` in `[run]`; otherwise the config written out again. Either way the result
/// parses to `config` with only the rounds changed.
fn with_rounds(text: &str, config: &JobConfig, rounds: u64) -> anyhow::Result<String> {
    let mut want = config.clone();
    want.run.rounds = rounds;
    let want_toml = toml::to_string(&want).context("writing the config")?;
    let same = |candidate: &str| {
        toml::from_str::<JobConfig>(candidate)
            .ok()
            .and_then(|c| toml::to_string(&c).ok())
            .is_some_and(|t| t == want_toml)
    };
    if let Some(edited) = edit_rounds_line(text, rounds)
        && same(&edited)
    {
        return Ok(edited);
    }
    Ok(want_toml)
}

/// Replaces the value of `rounds = N` inside the `[run]` table, or adds the line right after
/// `[run]`; None when the text has no `[run]` header.
fn edit_rounds_line(text: &str, rounds: u64) -> Option<String> {
    let mut out = Vec::new();
    let mut in_run = false;
    let mut header_at = None;
    let mut done = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_run = trimmed.trim_end() == "[run]" || trimmed.starts_with("[run]");
            if in_run && header_at.is_none() {
                header_at = Some(out.len());
            }
        } else if in_run && !done {
            let key = trimmed.split('=').next().map(str::trim);
            if key == Some("rounds") {
                let indent = &line[..line.len() - trimmed.len()];
                let comment = line.find('#').map(|i| &line[i..]);
                let mut new_line = format!("{indent}rounds = {rounds}");
                if let Some(c) = comment {
                    new_line.push_str("  ");
                    new_line.push_str(c);
                }
                out.push(new_line);
                done = true;
                continue;
            }
        }
        out.push(line.to_string());
    }
    if !done {
        out.insert(header_at? + 1, format!("rounds = {rounds}"));
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rounds_line_is_edited_in_place_keeping_comments() {
        let text = "# a job\n[data]\nrounds_note = 1\n[run]\nmode = \"exspin\"\nrounds = 2   # two\n[model]\nkind = \"fake\"\n";
        let got = edit_rounds_line(text, 5).unwrap();
        assert_eq!(
            got,
            "# a job\n[data]\nrounds_note = 1\n[run]\nmode = \"exspin\"\nrounds = 5  # two\n[model]\nkind = \"fake\"\n"
        );
        // No rounds line: added under [run]; no [run] table: nothing to edit.
        let got = edit_rounds_line("[run]\nmode = \"sft\"\n", 3).unwrap();
        assert_eq!(got, "[run]\nrounds = 3\nmode = \"sft\"\n");
        assert_eq!(edit_rounds_line("[data]\nx = 1\n", 3), None);
    }
}

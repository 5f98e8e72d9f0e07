//! Each round of one run against its version 0, and what the round cost: the view a long run needs
//! (is round t better than where it started, on the same questions, and at what price).
//!
//! `RUN/dev/round-{v}.jsonl` holds version v's verdict per dev question (version t + 1 closes round
//! t); `RUN/rounds.jsonl` holds the trainer's line per closed round (a round closed again after a
//! resume has a later line, which counts).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::stats;

/// One evaluated version of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundRow {
    /// The version evaluated (0: before self-play; t + 1: after round t).
    pub version: u64,
    pub correct: usize,
    pub examples: usize,
    /// Questions this version gets right and version 0 does not, and the reverse.
    pub gained: u64,
    pub lost: u64,
    /// Two-sided exact McNemar p of `gained` against `lost` (1 for version 0).
    pub p_value: f64,
    /// Wall seconds of the round that made this version, when known.
    pub wall_s: Option<f64>,
    /// Pairs trained in that round (from the trained pair ids).
    pub pairs: Option<usize>,
    /// Peak resident memory of the process while that round ran.
    pub peak_rss_bytes: Option<u64>,
}

impl RoundRow {
    pub fn pairs_per_s(&self) -> Option<f64> {
        let wall = self.wall_s.filter(|w| *w > 0.0)?;
        Some(self.pairs? as f64 / wall)
    }
}

/// One line of `RUN/rounds.jsonl` (older lines lack `round_seconds`).
#[derive(Debug, Clone, Deserialize)]
struct RoundLine {
    round: u64,
    unix_s: f64,
    elapsed_s: f64,
    #[serde(default)]
    round_seconds: Option<f64>,
    #[serde(default)]
    peak_rss_bytes: Option<u64>,
}

impl RoundLine {
    /// When the process that wrote the line started.
    fn process_start(&self) -> f64 {
        self.unix_s - self.elapsed_s
    }
}

/// The run's rows, version 0 first; empty when version 0 has no per-question verdicts.
/// `pairs_per_round` comes from the trained pair ids ([`super::outcome::Outcome`]).
pub fn read(
    run_dir: &Path,
    pairs_per_round: &BTreeMap<u64, usize>,
) -> anyhow::Result<Vec<RoundRow>> {
    let verdicts = dev_files(run_dir)?
        .into_iter()
        .map(|(v, file)| Ok((v, super::outcome::verdicts_of(&file)?)))
        .collect::<anyhow::Result<BTreeMap<u64, BTreeMap<String, bool>>>>()?;
    let Some(start) = verdicts.get(&0) else {
        return Ok(Vec::new());
    };
    let lines = round_lines(&run_dir.join("rounds.jsonl"))?;
    let mut rows = Vec::new();
    for (&version, answers) in &verdicts {
        let (mut gained, mut lost) = (0, 0);
        for (q, &right) in answers {
            if let Some(&right_at_start) = start.get(q) {
                gained += u64::from(right && !right_at_start);
                lost += u64::from(right_at_start && !right);
            }
        }
        let round = version.checked_sub(1);
        let line = round.and_then(|r| lines.get(&r));
        rows.push(RoundRow {
            version,
            correct: answers.values().filter(|&&r| r).count(),
            examples: answers.len(),
            gained,
            lost,
            p_value: stats::mcnemar_exact(gained, lost),
            wall_s: round.and_then(|r| wall_seconds(&lines, r)),
            pairs: round.and_then(|r| {
                (line.is_some() || pairs_per_round.contains_key(&r))
                    .then(|| pairs_per_round.get(&r).copied().unwrap_or(0))
            }),
            peak_rss_bytes: line.and_then(|l| l.peak_rss_bytes),
        });
    }
    Ok(rows)
}

/// Round `r`'s wall seconds: the count the runtime kept over its processes; for a line written
/// before that count existed, the time since the round before closed in the same process.
fn wall_seconds(lines: &BTreeMap<u64, RoundLine>, r: u64) -> Option<f64> {
    let line = lines.get(&r)?;
    if let Some(s) = line.round_seconds {
        return Some(s);
    }
    let before = lines.get(&r.checked_sub(1)?)?;
    ((line.process_start() - before.process_start()).abs() < 1.0)
        .then_some(line.elapsed_s - before.elapsed_s)
}

fn round_lines(path: &Path) -> anyhow::Result<BTreeMap<u64, RoundLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    // A round closed again after a resume has a later line: the last one counts.
    Ok(
        super::outcome::json_lines::<RoundLine>(path, &text, "a round")?
            .into_iter()
            .map(|line| (line.round, line))
            .collect(),
    )
}

/// `RUN/dev/round-{v}.jsonl` by version.
pub fn dev_files(run_dir: &Path) -> anyhow::Result<BTreeMap<u64, std::path::PathBuf>> {
    let dir = run_dir.join("dev");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(BTreeMap::new());
    };
    let mut files = BTreeMap::new();
    for e in entries {
        let path = e
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let version = path.file_name().and_then(|n| n.to_str()).and_then(|n| {
            n.strip_prefix("round-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()
        });
        if let Some(v) = version {
            files.insert(v, path);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(id: &str, correct: bool) -> String {
        serde_json::json!({"example_id": id, "gold_sql": "SELECT 1", "correct": correct})
            .to_string()
    }

    fn write(dir: &Path, name: &str, lines: &[String]) {
        std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn each_round_is_paired_with_version_0_and_given_its_cost() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Version 0 gets q1, q2 right; version 1 gains q3, q4 and loses q2; version 2 gains
        // q3..q7 and loses nothing.
        let v0: Vec<_> = (1..=8).map(|i| verdict(&format!("q{i}"), i <= 2)).collect();
        let v1: Vec<_> = (1..=8)
            .map(|i| verdict(&format!("q{i}"), [1, 3, 4].contains(&i)))
            .collect();
        let v2: Vec<_> = (1..=8).map(|i| verdict(&format!("q{i}"), i <= 7)).collect();
        write(d, "dev/round-0.jsonl", &v0);
        write(d, "dev/round-1.jsonl", &v1);
        write(d, "dev/round-2.jsonl", &v2);
        // Round 0 closed twice (the later line counts); round 1's line predates round_seconds
        // and was written by the process that closed round 0 (same start: 1000).
        write(
            d,
            "rounds.jsonl",
            &[
                r#"{"round":0,"unix_s":1100.0,"elapsed_s":100.0,"round_seconds":99.0,"peak_rss_bytes":7}"#.into(),
                r#"{"round":0,"unix_s":1200.0,"elapsed_s":200.0,"round_seconds":150.0,"peak_rss_bytes":8}"#.into(),
                r#"{"round":1,"unix_s":1600.0,"elapsed_s":600.0,"peak_rss_bytes":9}"#.into(),
            ],
        );
        let pairs = BTreeMap::from([(0, 30), (1, 20)]);
        let rows = read(d, &pairs).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].version, rows[0].correct, rows[0].examples),
            (0, 2, 8)
        );
        assert_eq!((rows[0].gained, rows[0].lost, rows[0].p_value), (0, 0, 1.0));
        assert_eq!(rows[0].wall_s, None);
        assert_eq!(rows[0].pairs, None);
        let r1 = &rows[1];
        assert_eq!((r1.correct, r1.gained, r1.lost), (3, 2, 1));
        assert_eq!(r1.p_value, 1.0); // 3 discordant: 2·P(X ≤ 1) = 2·4/8
        assert_eq!(r1.wall_s, Some(150.0));
        assert_eq!(r1.pairs, Some(30));
        assert_eq!(r1.pairs_per_s(), Some(0.2));
        assert_eq!(r1.peak_rss_bytes, Some(8));
        let r2 = &rows[2];
        assert_eq!((r2.correct, r2.gained, r2.lost), (7, 5, 0));
        assert!((r2.p_value - 2.0 / 32.0).abs() < 1e-12);
        assert_eq!(
            r2.wall_s,
            Some(400.0),
            "same process: elapsed since round 0 closed"
        );
        assert_eq!(r2.pairs, Some(20));
    }

    #[test]
    fn a_round_line_from_another_process_without_its_count_has_no_wall_time() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "dev/round-0.jsonl", &[verdict("q1", false)]);
        write(d, "dev/round-1.jsonl", &[verdict("q1", true)]);
        write(d, "dev/round-2.jsonl", &[verdict("q1", true)]);
        write(
            d,
            "rounds.jsonl",
            &[
                r#"{"round":0,"unix_s":1100.0,"elapsed_s":100.0}"#.into(),
                r#"{"round":1,"unix_s":9000.0,"elapsed_s":50.0}"#.into(),
            ],
        );
        let rows = read(d, &BTreeMap::new()).unwrap();
        assert_eq!(rows[1].wall_s, None, "round 0's start is not in the file");
        assert_eq!(rows[2].wall_s, None, "resumed in another process");
        assert_eq!(rows[2].pairs, Some(0));
        assert_eq!(rows[2].pairs_per_s(), None);
    }

    #[test]
    fn without_version_0_verdicts_there_is_nothing_to_pair() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "dev/round-1.jsonl", &[verdict("q1", true)]);
        assert!(read(dir.path(), &BTreeMap::new()).unwrap().is_empty());
    }
}

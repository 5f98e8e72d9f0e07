//! What one finished run contributes to the report, read back from its run folder.
//!
//! `summary.json` gives accuracy per round and the trained pair ids (`{example}#r{round}#s{k}`,
//! so pairs per round need no extra bookkeeping); `dev/round-{r}.jsonl`, where the evaluator
//! writes it, gives per-example verdicts for the per-query-type tables and the paired tests
//! between methods; `resources.json` is written by the experiment runner (wall time and peak
//! resident memory of the child process).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use exspin::eval::Bucket;
use exspin::sql::classify::{KeyInfo, classify};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub wall_s: f64,
    pub peak_rss_bytes: u64,
    /// Seconds of `wall_s` spent in this run's own SFT phase (0 when it started from another
    /// run's version 0), so time per round compares the self-play rounds alone.
    #[serde(default)]
    pub sft_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub name: String,
    /// The experiment seed of this run (`run.seed`), when the experiment file lists `seeds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Dev execution accuracy after each evaluation, in the run's order.
    pub dev_ex: Vec<f64>,
    pub rounds: u64,
    pub finished: bool,
    pub pairs_trained: usize,
    /// Pairs trained per self-play round, from the pair ids.
    pub pairs_per_round: BTreeMap<u64, usize>,
    pub resources: Resources,
    /// The last evaluated round's accuracy per query type (empty when the run wrote no
    /// per-example verdicts).
    pub by_type: BTreeMap<String, Bucket>,
    /// Dev examples behind the last accuracy, when known (for the confidence interval).
    pub dev_examples: Option<usize>,
    /// The last evaluated round's verdict per dev question (by example id; by line number when
    /// the file has no ids), for the paired tests. Not written to `results.json`.
    #[serde(skip)]
    pub per_question: BTreeMap<String, bool>,
    /// Each evaluated version against version 0, with its round's cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub round_rows: Vec<super::rounds::RoundRow>,
}

impl Outcome {
    pub fn final_ex(&self) -> Option<f64> {
        self.dev_ex.last().copied()
    }
    pub fn best_ex(&self) -> Option<f64> {
        self.dev_ex.iter().copied().reduce(f64::max)
    }
    /// The method's name, with the seed when the run has one ("ExSPIN (seed 2)").
    pub fn label(&self) -> String {
        match self.seed {
            Some(s) => format!("{} (seed {s})", self.name),
            None => self.name.clone(),
        }
    }
    pub fn seconds_per_round(&self) -> Option<f64> {
        (self.rounds > 0)
            .then(|| (self.resources.wall_s - self.resources.sft_s).max(0.0) / self.rounds as f64)
    }
}

/// The round a pair id belongs to (`...#r{round}#s{k}`).
pub fn round_of_pair(id: &str) -> Option<u64> {
    let rest = &id[id.rfind("#r")? + 2..];
    rest.split('#').next()?.parse().ok()
}

#[derive(Deserialize)]
struct SummaryView {
    #[serde(default)]
    rounds: u64,
    #[serde(default)]
    finished: bool,
    #[serde(default)]
    pairs_trained: usize,
    #[serde(default)]
    samples_trained_ids: Vec<String>,
    #[serde(default)]
    dev_ex_per_round: Vec<f64>,
}

/// One line of `dev/round-{r}.jsonl`. The evaluator knows the database's keys and writes the
/// query type; without it the type is read from the gold SQL alone (no key information, so an
/// equality on a key counts as a non-key equality).
#[derive(Deserialize)]
struct DevVerdict {
    #[serde(default)]
    example_id: Option<String>,
    gold_sql: String,
    correct: bool,
    #[serde(default)]
    query_type: Option<String>,
}

pub fn read(name: &str, run_dir: &Path) -> anyhow::Result<Outcome> {
    let path = run_dir.join("summary.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (did the run of {name:?} start? see its log)",
            path.display()
        )
    })?;
    let s: SummaryView = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a summary", path.display()))?;
    let mut pairs_per_round = BTreeMap::new();
    for id in &s.samples_trained_ids {
        if let Some(r) = round_of_pair(id) {
            *pairs_per_round.entry(r).or_insert(0) += 1;
        }
    }
    let resources = match std::fs::read_to_string(run_dir.join("resources.json")) {
        Ok(t) => serde_json::from_str(&t).unwrap_or_default(),
        Err(_) => Resources::default(),
    };
    let tally = match last_dev_file(run_dir)? {
        Some(file) => tally_by_type(&file)?,
        None => Tally::default(),
    };
    // A run with an SFT phase evaluated its starting point (`sft.json`): that is evaluation 0,
    // the paper's iteration 0, before any self-play round.
    let mut dev_ex = Vec::new();
    if let Ok(t) = std::fs::read_to_string(run_dir.join("sft.json"))
        && let Some(after) = serde_json::from_str::<serde_json::Value>(&t)
            .ok()
            .and_then(|v| v.get("dev_ex_after")?.as_f64())
    {
        dev_ex.push(after);
    }
    dev_ex.extend(s.dev_ex_per_round);
    let round_rows = super::rounds::read(run_dir, &pairs_per_round)?;
    Ok(Outcome {
        round_rows,
        name: name.into(),
        dev_ex,
        rounds: s.rounds,
        finished: s.finished,
        pairs_trained: s.pairs_trained,
        pairs_per_round,
        resources,
        by_type: tally.by_type,
        dev_examples: tally.examples,
        per_question: tally.per_question,
        seed: None,
    })
}

/// The per-example verdict file of the highest round, if the evaluator wrote any.
fn last_dev_file(run_dir: &Path) -> anyhow::Result<Option<std::path::PathBuf>> {
    Ok(super::rounds::dev_files(run_dir)?
        .pop_last()
        .map(|(_, p)| p))
}

/// The verdict per dev question of one `dev/round-{r}.jsonl`.
pub(super) fn verdicts_of(file: &Path) -> anyhow::Result<BTreeMap<String, bool>> {
    Ok(tally_by_type(file)?.per_question)
}

/// The records of a JSON-lines file's `text` (blank lines skipped); a bad line is named by its
/// file and number as not being `what`.
pub(super) fn json_lines<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
    what: &str,
) -> anyhow::Result<Vec<T>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not {what} line", file.display(), i + 1))
        })
        .collect()
}

/// What one `dev/round-{r}.jsonl` holds.
#[derive(Default)]
struct Tally {
    by_type: BTreeMap<String, Bucket>,
    examples: Option<usize>,
    per_question: BTreeMap<String, bool>,
}

fn tally_by_type(file: &Path) -> anyhow::Result<Tally> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut by_type: BTreeMap<String, Bucket> = BTreeMap::new();
    let mut per_question = BTreeMap::new();
    let mut n = 0;
    for v in json_lines::<DevVerdict>(file, &text, "a dev verdict")? {
        let kind = v
            .query_type
            .unwrap_or_else(|| classify(&v.gold_sql, &KeyInfo::new()).name().to_string());
        by_type.entry(kind).or_default().add(v.correct);
        per_question.insert(v.example_id.unwrap_or_else(|| format!("#{n}")), v.correct);
        n += 1;
    }
    Ok(Tally {
        by_type,
        examples: Some(n),
        per_question,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_ids_give_their_round() {
        assert_eq!(round_of_pair("dev_3#r2#s1"), Some(2));
        assert_eq!(round_of_pair("a#r#b#r10#s0"), Some(10));
        assert_eq!(round_of_pair("no-round"), None);
    }

    #[test]
    fn a_run_folder_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let summary = serde_json::json!({
            "rounds": 2, "finished": true, "pairs_trained": 3,
            "samples_trained_ids": ["e1#r0#s0", "e2#r0#s1", "e1#r1#s0"],
            "dev_ex_per_round": [0.1, 0.25, 0.5],
        });
        std::fs::write(dir.path().join("summary.json"), summary.to_string()).unwrap();
        std::fs::write(
            dir.path().join("resources.json"),
            r#"{"wall_s": 10.0, "peak_rss_bytes": 1000}"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::fs::write(
            dir.path().join("dev/round-1.jsonl"),
            "{\"gold_sql\": \"SELECT a FROM t\", \"correct\": false}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("dev/round-2.jsonl"),
            "{\"example_id\": \"q1\", \"gold_sql\": \"SELECT a FROM t\", \"correct\": true}\n\
             {\"example_id\": \"q2\", \"gold_sql\": \"SELECT count(*) FROM t\", \"correct\": false}\n\
             {\"gold_sql\": \"SELECT a FROM t WHERE b = 1\", \"correct\": true}\n",
        )
        .unwrap();
        let o = read("ExSPIN", dir.path()).unwrap();
        assert_eq!(o.dev_ex, vec![0.1, 0.25, 0.5]);
        std::fs::write(dir.path().join("sft.json"), r#"{"dev_ex_after": 0.05}"#).unwrap();
        let o = read("ExSPIN", dir.path()).unwrap();
        assert_eq!(
            o.dev_ex,
            vec![0.05, 0.1, 0.25, 0.5],
            "the SFT point comes first"
        );
        assert_eq!(o.final_ex(), Some(0.5));
        assert_eq!(o.best_ex(), Some(0.5));
        assert_eq!(o.pairs_per_round, BTreeMap::from([(0, 2), (1, 1)]));
        assert_eq!(o.seconds_per_round(), Some(5.0));
        assert_eq!(o.dev_examples, Some(3));
        // Verdicts by example id, or by line number where a line has none.
        assert_eq!(
            o.per_question,
            BTreeMap::from([
                ("q1".to_string(), true),
                ("q2".to_string(), false),
                ("#2".to_string(), true)
            ])
        );
        let total: usize = o.by_type.values().map(|t| t.count).sum();
        let correct: usize = o.by_type.values().map(|t| t.correct).sum();
        assert_eq!((correct, total), (2, 3), "{:?}", o.by_type);
        assert!(
            o.by_type.len() >= 2,
            "three different shapes: {:?}",
            o.by_type
        );
    }
}

//! Execution accuracy of a predictions file, with the official semantics and its breakdowns
//! (Spider's hardness levels, the paper's six query types, prediction outcome kinds).
//!
//! The predictions file has exactly one line per dataset example, in dataset order, including
//! examples that cannot be evaluated (their database is missing): those are reported as `null`,
//! never counted right or wrong.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, DatasetKind};
use crate::sql::classify::{self, KeyInfo, QueryType};
use crate::sql::compare::ComparisonRule;
use crate::sql::executor::{ExecutorPool, Outcome};
use crate::sql::hardness::{self, Hardness};
use crate::sql::official::Compat;

pub mod judge;

pub use judge::{Case, EvalOptions, Judge, Judgement, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read predictions {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: {found} predictions for {expected} examples; the file needs exactly one line per \
         example in dataset order (unevaluable examples included; an empty line is an empty \
         prediction){hint}",
        path.display()
    )]
    Count {
        path: PathBuf,
        found: usize,
        expected: usize,
        hint: &'static str,
    },
}

/// Accuracy over a group of examples.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    pub count: usize,
    pub correct: usize,
    pub accuracy: f64,
}

impl Bucket {
    pub fn add(&mut self, correct: bool) {
        self.count += 1;
        self.correct += usize::from(correct);
        self.accuracy = self.correct as f64 / self.count as f64;
    }
}

/// What one example got.
#[derive(Debug, Clone, Serialize)]
pub struct ExampleVerdict {
    pub index: usize,
    pub id: String,
    pub db_id: String,
    /// `None` when the example cannot be evaluated.
    pub correct: Option<bool>,
    pub hardness: Option<Hardness>,
    pub query_type: Option<QueryType>,
    /// Outcome kind of the prediction (`rows`, `error`, …), when it ran.
    pub prediction_outcome: Option<&'static str>,
    /// Why the example could not be evaluated, or the prediction's error.
    pub note: Option<String>,
}

/// The evaluation of a predictions file.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub dataset: String,
    pub rule: ComparisonRule,
    pub keep_distinct: bool,
    pub compat: Compat,
    /// Examples in the dataset (= lines in the predictions file).
    pub examples: usize,
    /// Examples that could be evaluated (database present, gold query runs).
    pub evaluable: usize,
    pub correct: usize,
    /// `correct / evaluable`.
    pub execution_accuracy: f64,
    /// Databases that are missing and how many examples each one costs.
    pub missing_databases: BTreeMap<String, usize>,
    /// Examples whose gold query did not run (the official script would stop on them).
    pub gold_failed: usize,
    pub by_hardness: BTreeMap<String, Bucket>,
    pub by_query_type: BTreeMap<String, Bucket>,
    /// How the predictions ran: rows, error, timeout, too_many_rows, rejected.
    pub prediction_outcomes: BTreeMap<String, usize>,
    pub seconds: f64,
    #[serde(skip)]
    pub verdicts: Vec<ExampleVerdict>,
}

impl EvalReport {
    /// One entry per example in dataset order: `Some(true|false)`, or `None` if unevaluable.
    pub fn per_example(&self) -> Vec<Option<bool>> {
        self.verdicts.iter().map(|v| v.correct).collect()
    }
}

/// Reads a predictions file: one SQL per line (the part before a tab, if any, trimmed).
///
/// In [`Compat::Official`] the file is read as `evaluation.py` reads it: blank lines separate
/// "sessions", and a Spider evaluation has one session, so an inner blank line is an error there
/// (the official script fails its `len(plist) == len(glist)` assertion).
pub fn read_predictions(
    path: &Path,
    expected: usize,
    compat: Compat,
) -> Result<Vec<String>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let first_field = |line: &str| line.trim().split('\t').next().unwrap_or("").to_string();
    let mut lines: Vec<String> = match compat {
        Compat::Default => text.lines().map(first_field).collect(),
        Compat::Official => {
            let mut sessions: Vec<Vec<String>> = vec![];
            let mut current = vec![];
            for line in text.lines() {
                if line.trim().is_empty() {
                    sessions.push(std::mem::take(&mut current));
                } else {
                    current.push(first_field(line));
                }
            }
            if !current.is_empty() {
                sessions.push(current);
            }
            if sessions.len() > 1 {
                return Err(EvalError::Count {
                    path: path.to_path_buf(),
                    found: sessions.iter().map(Vec::len).sum(),
                    expected,
                    hint: "; with --compat official a blank line separates sessions, as in \
                           evaluation.py, so it must not appear inside the file",
                });
            }
            sessions.pop().unwrap_or_default()
        }
    };
    // Blank lines after the last example are harmless trailing newlines.
    while lines.len() > expected && lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.len() != expected {
        return Err(EvalError::Count {
            path: path.to_path_buf(),
            found: lines.len(),
            expected,
            hint: "",
        });
    }
    Ok(lines)
}

/// The fixed subset of `n` evaluable examples stratified by the official hardness level (gold
/// queries whose level cannot be computed form a stratum of their own): what
/// `--stratified N` and `data.dev_stratified` select.
pub fn stratified_by_hardness(dataset: &Dataset, n: usize) -> Vec<usize> {
    crate::data::stratify::stratified_indices(dataset, n, |e| hardness::hardness(&e.gold_sql).ok())
}

/// The comparison rule a dataset's benchmark uses.
pub fn rule_for(kind: DatasetKind) -> ComparisonRule {
    Judge::for_dataset(kind, EvalOptions::default()).rule
}

/// Evaluates `predictions` (one per example, dataset order) against the dataset's gold SQL.
/// `progress` is ticked once per example.
pub fn evaluate(
    dataset: &Dataset,
    predictions: &[String],
    pool: &ExecutorPool,
    options: EvalOptions,
    progress: &indicatif::ProgressBar,
) -> EvalReport {
    assert_eq!(
        predictions.len(),
        dataset.len(),
        "read_predictions checks the count"
    );
    let started = Instant::now();
    let judge = Judge::for_dataset(dataset.kind, options);
    let rule = judge.rule;
    let mut verdicts: Vec<ExampleVerdict> = dataset
        .examples
        .iter()
        .enumerate()
        .map(|(index, ex)| ExampleVerdict {
            index,
            id: ex.id.clone(),
            db_id: ex.db_id.clone(),
            correct: None,
            hardness: None, // computed while the executor works, below
            query_type: None,
            prediction_outcome: None,
            note: (!dataset.evaluable[index])
                .then(|| format!("database missing: {}", dataset.db_path(&ex.db_id).display())),
        })
        .collect();
    let evaluable: Vec<(usize, PathBuf)> = dataset
        .evaluable_examples()
        .map(|(index, ex)| (index, dataset.db_path(&ex.db_id)))
        .collect();
    let scope = dataset.source.display().to_string();
    let cases: Vec<Case<'_>> = evaluable
        .iter()
        .map(|(index, db)| {
            let ex = &dataset.examples[*index];
            Case {
                gold_key: judge.gold_key(&scope, &ex.id),
                db,
                gold_sql: &ex.gold_sql,
                predicted_sql: &predictions[*index],
            }
        })
        .collect();
    progress.set_length(dataset.len() as u64);
    progress.inc((dataset.len() - cases.len()) as u64);

    let mut gold_failed = 0;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys: HashMap<String, Option<KeyInfo>> = HashMap::new();
    judge.judge_each(pool, &cases, |case, judged| {
        let index = evaluable[case].0;
        // Classifying here overlaps with the workers executing the queries queued behind.
        let ex = &dataset.examples[index];
        let key_info = keys
            .entry(ex.db_id.clone())
            .or_insert_with(|| KeyInfo::from_sqlite(&dataset.db_path(&ex.db_id)).ok());
        let verdict = &mut verdicts[index];
        verdict.query_type = key_info
            .as_ref()
            .map(|k| classify::classify(&ex.gold_sql, k));
        verdict.hardness = hardness::hardness(&ex.gold_sql).ok();
        verdict.correct = judged.verdict.correct();
        if verdict.correct.is_none() {
            gold_failed += 1;
            verdict.note = Some(format!(
                "gold query did not run: {}",
                describe(&judged.gold)
            ));
        } else {
            *outcomes
                .entry(judged.predicted.kind().to_string())
                .or_insert(0) += 1;
            verdict.prediction_outcome = Some(judged.predicted.kind());
            if judged.predicted.rows().is_none() {
                verdict.note = Some(describe(&judged.predicted));
            }
        }
        progress.inc(1);
    });

    let mut by_hardness: BTreeMap<String, Bucket> = BTreeMap::new();
    let mut by_query_type: BTreeMap<String, Bucket> = BTreeMap::new();
    let (mut evaluable, mut correct) = (0, 0);
    for v in &verdicts {
        let Some(ok) = v.correct else { continue };
        evaluable += 1;
        correct += usize::from(ok);
        let level = v
            .hardness
            .map_or("unknown".to_string(), |h| format!("{h:?}").to_lowercase());
        by_hardness.entry(level).or_default().add(ok);
        let kind = v.query_type.map_or("unknown", |q| q.name());
        by_query_type.entry(kind.to_string()).or_default().add(ok);
    }
    EvalReport {
        dataset: dataset.source.display().to_string(),
        rule,
        keep_distinct: options.keep_distinct,
        compat: options.compat,
        examples: dataset.len(),
        evaluable,
        correct,
        execution_accuracy: if evaluable == 0 {
            0.0
        } else {
            correct as f64 / evaluable as f64
        },
        missing_databases: dataset.missing_databases(),
        gold_failed,
        by_hardness,
        by_query_type,
        prediction_outcomes: outcomes,
        seconds: started.elapsed().as_secs_f64(),
        verdicts,
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Rows { rows, .. } => format!("{} rows", rows.len()),
        Outcome::Rejected { reason, message } => format!("rejected ({reason:?}): {message}"),
        Outcome::Error { message } => format!("error: {message}"),
        Outcome::Timeout { limit_ms } => format!("timed out after {limit_ms} ms"),
        Outcome::TooManyRows { limit } => format!("more than {limit} rows"),
    }
}

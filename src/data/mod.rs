//! Datasets: the [`Example`] type every stage passes around, and loaders for the formats we read.
//!
//! All loaders produce a [`Dataset`]: every example of the split in file order (so a predictions
//! file lines up with it), each marked evaluable or not depending on whether its database file
//! exists. Examples whose database is missing are never dropped silently: they stay in the list
//! (an evaluation reports them as `null`) and [`Dataset::missing_databases`] counts them.

pub mod bird;
pub mod error;
pub mod holdout;
pub mod jsonl;
pub mod spider;
pub mod stratify;
pub mod synthetic;
pub mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::DataError;
pub use tables::{DatabaseSchema, TablesFile};

/// One text-to-SQL example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// Stable id, unique within its dataset (e.g. `spider-dev-0042`, `bird-dev-17`).
    pub id: String,
    /// The database this question is asked of (a folder under the dataset's database root).
    pub db_id: String,
    pub question: String,
    /// External knowledge given with the question (BIRD's `evidence`); empty for Spider.
    #[serde(default)]
    pub evidence: String,
    /// The reference SQL.
    pub gold_sql: String,
}

/// Which public benchmark (or our own format) a dataset came from; decides the comparison rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// Spider: multiset of rows, order only when the gold query has ORDER BY, columns may be permuted.
    Spider,
    /// BIRD: set equality of rows.
    Bird,
    /// Our JSONL format (and the synthetic default): Spider semantics.
    Jsonl,
}

/// A loaded split: its examples in file order plus where their databases live.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub kind: DatasetKind,
    /// The file the examples came from (for messages).
    pub source: PathBuf,
    /// Folder holding `<db_id>/<db_id>.sqlite`.
    pub database_root: PathBuf,
    pub examples: Vec<Example>,
    /// `evaluable[i]` is true when example `i`'s database file exists.
    pub evaluable: Vec<bool>,
}

impl Dataset {
    /// Builds a dataset and checks which databases exist.
    pub fn new(
        kind: DatasetKind,
        source: PathBuf,
        database_root: PathBuf,
        examples: Vec<Example>,
    ) -> Self {
        let mut exists: BTreeMap<&str, bool> = BTreeMap::new();
        let evaluable = examples
            .iter()
            .map(|ex| {
                *exists
                    .entry(ex.db_id.as_str())
                    .or_insert_with(|| database_path(&database_root, &ex.db_id).is_file())
            })
            .collect();
        let dataset = Dataset {
            kind,
            source,
            database_root,
            examples,
            evaluable,
        };
        for (db, count) in dataset.missing_databases() {
            tracing::warn!(
                "{}: database '{db}' is missing ({}); its {count} example(s) are skipped",
                dataset.source.display(),
                database_path(&dataset.database_root, &db).display()
            );
        }
        dataset
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Path of the SQLite file of `db_id`.
    pub fn db_path(&self, db_id: &str) -> PathBuf {
        database_path(&self.database_root, db_id)
    }

    /// Number of examples whose database exists.
    pub fn evaluable_count(&self) -> usize {
        self.evaluable.iter().filter(|&&e| e).count()
    }

    /// Whether example `i`'s database exists (false past the end).
    pub fn is_evaluable(&self, i: usize) -> bool {
        self.evaluable.get(i).copied().unwrap_or(false)
    }

    /// Examples whose database exists, with their index in the dataset.
    pub fn evaluable_examples(&self) -> impl Iterator<Item = (usize, &Example)> {
        self.examples
            .iter()
            .enumerate()
            .filter(|(i, _)| self.evaluable[*i])
    }

    /// Missing databases and how many examples each one costs, sorted by name.
    pub fn missing_databases(&self) -> BTreeMap<String, usize> {
        let mut missing = BTreeMap::new();
        for (ex, ok) in self.examples.iter().zip(&self.evaluable) {
            if !ok {
                *missing.entry(ex.db_id.clone()).or_insert(0) += 1;
            }
        }
        missing
    }

    /// Keeps only the first `n` examples (for quick runs).
    pub fn truncate(&mut self, n: usize) {
        self.examples.truncate(n);
        self.evaluable.truncate(n);
    }
}

/// `<root>/<db_id>/<db_id>.sqlite`, the layout Spider and BIRD share.
pub fn database_path(root: &Path, db_id: &str) -> PathBuf {
    root.join(db_id).join(format!("{db_id}.sqlite"))
}

/// Reads a JSON file into `T`, with errors that name the file and the place.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| DataError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

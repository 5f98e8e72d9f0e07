//! The one prompt renderer: every path that turns an example into the text (and token ids) a
//! model continues goes through here: `exspin ask`, `exspin generate`, `exspin sft` and the
//! run's prompt builder and real seams. Two steps:
//!
//! 1. The schema prompt of an example ([`SchemaPrompts`]): by [`SchemaMode`], `src/schema`'s
//!    prompt builder (plain full schema or the integrated, filtered one) or the bare `CREATE
//!    TABLE` statements of tables.json ([`ddl`]); optionally training pairs like the question
//!    ([`shots`]). It ends with the question.
//! 2. The model's text around it ([`render`]): the system message and instruction under ChatML,
//!    the `-- SQL:` answer cue under the plain template, and the answer's end of turn.

pub mod ddl;
pub mod render;
pub mod repair;
pub mod requalify;
pub mod shots;
pub mod source;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use render::{
    ANSWER_PREFIX, INSTRUCTION, PLAIN_CUE, SYSTEM, answer_ids, answer_prefix, answer_sql,
    answer_text, prompt_ids, render,
};
pub use shots::ShotPool;
pub use source::{SchemaPrompts, SchemaSource, set_builder_mode};

use crate::data::DataError;
use crate::model::ModelError;
use crate::schema::SchemaError;

/// Which schema text a prompt carries (`model.schema` of the job config, `--schema` of
/// `exspin generate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMode {
    /// The full schema as plain `CREATE TABLE` statements (src/schema, `Style::Plain`): the
    /// ablation without schema integration.
    Plain,
    /// Bare `CREATE TABLE` statements from tables.json (Spider / BIRD only).
    Ddl,
    /// The schema filtered to the question, annotated, with matched values (src/schema,
    /// `Style::Explicit`); example rows of the kept tables when the options ask for them.
    Integrated,
    /// The full schema as `CREATE TABLE` statements with keys, each followed by its first k
    /// rows (k = the options' `example_rows`, [`DEFAULT_EXAMPLE_ROWS`] when unset): the
    /// representation of Rajkumar et al. and DAIL-SQL's study.
    Rows,
}

/// Example rows per table of the rows prompt when none are asked for.
pub const DEFAULT_EXAMPLE_ROWS: usize = 3;

impl SchemaMode {
    /// The default prompt of `exspin generate`, `exspin ask` and `exspin prompt`: the best of
    /// the measured table (BENCHMARKS.md, "Which prompt for a small model").
    pub const RECOMMENDED: SchemaMode = SchemaMode::Rows;

    pub const NAMES: [&'static str; 4] = ["plain", "ddl", "integrated", "rows"];

    pub fn name(self) -> &'static str {
        match self {
            SchemaMode::Plain => "plain",
            SchemaMode::Ddl => "ddl",
            SchemaMode::Integrated => "integrated",
            SchemaMode::Rows => "rows",
        }
    }
}

impl fmt::Display for SchemaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchemaMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(SchemaMode::Plain),
            "ddl" => Ok(SchemaMode::Ddl),
            "integrated" => Ok(SchemaMode::Integrated),
            "rows" => Ok(SchemaMode::Rows),
            other => Err(format!(
                "unknown schema mode {other:?}: use plain, rows, integrated or ddl"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{}: no schema for database {db_id} (the ddl prompt reads it from tables.json)", path.display())]
    NoDdlSchema { path: PathBuf, db_id: String },
    #[error("building the prompt of {example}: {source}")]
    Schema {
        example: String,
        #[source]
        source: SchemaError,
    },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

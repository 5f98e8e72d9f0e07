//! Explicit schema integration: everything the prompt-builder does, as plain library calls.
//!
//! * [`introspect`] — tables, columns, types, keys, natural names, descriptions, representative
//!   values and row counts of one database, merged from the SQLite file and `tables.json`, cached.
//! * [`values`] — a tantivy BM25 index over each database's distinct text values, then
//!   longest-common-substring matching against the question.
//! * [`filter`] — scorers of tables and columns against the question and the top-k1 / top-k2
//!   selection that keeps join keys.
//! * [`embedding`] — cosine similarity on all-MiniLM-L6-v2 embeddings ([`minilm`], in candle).
//! * [`learned`] — the logistic-regression scorer trained on Spider train.
//! * [`gold`] — the tables and columns a gold SQL query uses (labels and recall).
//! * [`prompt`] — the deterministic serialization, schema first and question last.
//! * [`builder`] — ties them together per database with the caches.

pub mod builder;
pub mod embedding;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod filter;
pub mod gold;
pub mod introspect;
pub mod learned;
pub mod minilm;
pub mod prompt;
pub mod text;
pub mod tokens;
pub mod values;

pub use builder::{BuiltPrompt, PromptBuilder, PromptOptions, ScorerKind};
pub use error::SchemaError;
pub use introspect::{Column, DbInfo, ForeignKey, Table};

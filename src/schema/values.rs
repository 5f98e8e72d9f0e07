//! Value retrieval: which database values does the question mention?
//!
//! Each database's distinct text values go into a tantivy BM25 index, built once (`exspin index`)
//! and kept in the cache folder under the database's content hash, so a changed file gets a new
//! index. A question is matched in two steps: a coarse BM25 search with the question's words
//! (every n-gram of the question shares its words with the values it names), then a longest
//! common substring check that keeps only values that really occur in the question.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TEXT};
use tantivy::{Index, IndexReader, ReloadPolicy, Term, doc};

use super::SchemaError;
use super::introspect::{DbInfo, open_read_only, quote_ident, value_text};
use super::text::{is_stop_word, longest_common_substring, words};

/// Values longer than this are prose, not something a question quotes.
const MAX_VALUE_CHARS: usize = 100;
/// At most this many distinct values per column (keeps huge free-text columns bounded).
const MAX_VALUES_PER_COLUMN: usize = 20_000;

/// How strictly a value must occur in the question.
#[derive(Debug, Clone, Copy)]
pub struct MatchConfig {
    /// BM25 candidates to check.
    pub candidates: usize,
    /// Minimum share of the value's characters that must appear, contiguous, in the question.
    pub threshold: f32,
    /// Minimum length in characters of the common substring.
    pub min_chars: usize,
    /// At most this many matches are returned.
    pub max_matches: usize,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            candidates: 50,
            threshold: 0.9,
            min_chars: 3,
            max_matches: 8,
        }
    }
}

/// `table.column = 'value'`, indices into [`DbInfo::tables`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueMatch {
    pub table: usize,
    pub column: usize,
    pub value: String,
    /// Share of the value found in the question, in (0, 1].
    pub score: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexedValue {
    table: u32,
    column: u32,
    value: String,
}

/// An opened value index of one database.
pub struct ValueIndex {
    reader: IndexReader,
    text: Field,
    values: Vec<IndexedValue>,
}

/// The folder of a database's value index in the cache.
pub fn index_dir(cache: &Path, info: &DbInfo) -> PathBuf {
    cache
        .join("values")
        .join(format!("{}-{}", info.db_id, &info.content_hash[..16]))
}

fn schema() -> (Schema, Field, Field) {
    let mut b = Schema::builder();
    let text = b.add_text_field("value", TEXT);
    let id = b.add_u64_field("vid", FAST);
    (b.build(), text, id)
}

impl ValueIndex {
    /// Opens the index of `info` from the cache, building it from `db_path` first when it is
    /// missing. Returns the index and whether it was built now.
    pub fn open_or_build(
        cache: &Path,
        db_path: &Path,
        info: &DbInfo,
    ) -> Result<(ValueIndex, bool), SchemaError> {
        let dir = index_dir(cache, info);
        if dir.join("complete").is_file()
            && let Ok(index) = Self::open(&dir)
        {
            return Ok((index, false));
        }
        Self::build(&dir, db_path, info)?;
        Ok((Self::open(&dir)?, true))
    }

    fn open(dir: &Path) -> Result<ValueIndex, SchemaError> {
        let err = |message: String| SchemaError::Index {
            path: dir.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(dir.join("values.json")).map_err(|e| err(e.to_string()))?;
        let values: Vec<IndexedValue> =
            serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
        let index = Index::open_in_dir(dir.join("index")).map_err(|e| err(e.to_string()))?;
        let text = index
            .schema()
            .get_field("value")
            .map_err(|e| err(e.to_string()))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e: tantivy::TantivyError| err(e.to_string()))?;
        Ok(ValueIndex {
            reader,
            text,
            values,
        })
    }

    /// Builds the index in a temporary folder and renames it into place, so a crash never leaves
    /// a half index that looks complete.
    fn build(dir: &Path, db_path: &Path, info: &DbInfo) -> Result<(), SchemaError> {
        let values = distinct_text_values(db_path, info)?;
        let io = |source| SchemaError::Cache {
            path: dir.to_path_buf(),
            source,
        };
        let staged = crate::fsutil::Staged::dir(dir).map_err(io)?;
        let tmp = staged.path();
        std::fs::create_dir_all(tmp.join("index")).map_err(io)?;
        let err = |e: tantivy::TantivyError| SchemaError::Index {
            path: tmp.to_path_buf(),
            message: e.to_string(),
        };
        let (schema, text, id) = schema();
        let index = Index::create_in_dir(tmp.join("index"), schema).map_err(err)?;
        // One thread, the smallest arena tantivy allows: databases are small and cores are shared.
        let mut writer = index.writer_with_num_threads(1, 15_000_000).map_err(err)?;
        for (i, v) in values.iter().enumerate() {
            writer
                .add_document(doc!(text => v.value.as_str(), id => i as u64))
                .map_err(err)?;
        }
        writer.commit().map_err(err)?;
        writer.wait_merging_threads().map_err(err)?;
        let json = serde_json::to_vec(&values)
            .map_err(std::io::Error::other)
            .map_err(io)?;
        std::fs::write(tmp.join("values.json"), json).map_err(io)?;
        std::fs::write(tmp.join("complete"), b"").map_err(io)?;
        staged.commit().map_err(io)
    }

    /// Number of indexed values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Values that occur in `question`, best first.
    pub fn search(&self, question: &str, cfg: &MatchConfig) -> Vec<ValueMatch> {
        let mut terms: Vec<String> = words(question)
            .into_iter()
            .filter(|w| !is_stop_word(w))
            .collect();
        terms.sort();
        terms.dedup();
        // A pathological question must not become a huge query.
        terms.truncate(64);
        if terms.is_empty() || self.values.is_empty() {
            return Vec::new();
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.text, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let Ok(hits) = searcher.search(
            &query,
            &TopDocs::with_limit(cfg.candidates).order_by_score(),
        ) else {
            return Vec::new();
        };
        let q: Vec<char> = question.to_lowercase().chars().collect();
        let mut out: Vec<ValueMatch> = Vec::new();
        for (_, addr) in hits {
            let Ok(col) = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64("vid")
            else {
                continue;
            };
            let Some(v) = col
                .first(addr.doc_id)
                .and_then(|i| self.values.get(i as usize))
            else {
                continue;
            };
            if let Some(score) = occurrence(&v.value, &q, cfg)
                && !out.iter().any(|m| {
                    m.table == v.table as usize
                        && m.column == v.column as usize
                        && m.value == v.value
                })
            {
                out.push(ValueMatch {
                    table: v.table as usize,
                    column: v.column as usize,
                    value: v.value.clone(),
                    score,
                });
            }
        }
        // Longer and more complete matches first; ties in a fixed order so prompts are stable.
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.value.chars().count().cmp(&a.value.chars().count()))
                .then((a.table, a.column, &a.value).cmp(&(b.table, b.column, &b.value)))
        });
        out.truncate(cfg.max_matches);
        out
    }
}

/// The share of `value` that occurs contiguously in the question (lower-cased chars), if it is
/// enough. A whole-value match must start and end on word boundaries, so `Ed` does not match
/// inside `edited`.
fn occurrence(value: &str, question: &[char], cfg: &MatchConfig) -> Option<f32> {
    let v: Vec<char> = value.to_lowercase().chars().collect();
    if v.is_empty() || v.len() > MAX_VALUE_CHARS {
        return None;
    }
    let (len, end) = longest_common_substring(&v, question);
    if len < cfg.min_chars.min(v.len()) || len < 2 {
        return None;
    }
    let score = len as f32 / v.len() as f32;
    if score < cfg.threshold {
        return None;
    }
    let start = end - len;
    let boundary = |i: Option<&char>| i.is_none_or(|c| !c.is_alphanumeric());
    let before = if start == 0 {
        None
    } else {
        question.get(start - 1)
    };
    if !boundary(before) || !boundary(question.get(end)) {
        return None;
    }
    Some(score)
}

/// Distinct text values of every column (numbers are left to the model: they are in the question
/// verbatim and BM25 over digits mostly finds noise).
fn distinct_text_values(db_path: &Path, info: &DbInfo) -> Result<Vec<IndexedValue>, SchemaError> {
    let conn = open_read_only(db_path)?;
    let mut out = Vec::new();
    for (ti, t) in info.tables.iter().enumerate() {
        for (ci, c) in t.columns.iter().enumerate() {
            let (tq, cq) = (quote_ident(&t.name), quote_ident(&c.name));
            let sql = format!(
                "SELECT DISTINCT {cq} FROM {tq} WHERE typeof({cq}) = 'text' \
                 AND length({cq}) BETWEEN 1 AND {MAX_VALUE_CHARS} LIMIT {MAX_VALUES_PER_COLUMN}"
            );
            // A column that cannot be read contributes no values rather than failing the index.
            let Ok(mut stmt) = conn.prepare(&sql) else {
                continue;
            };
            let Ok(rows) = stmt.query_map([], |r| Ok(value_text(r.get_ref(0)?))) else {
                continue;
            };
            for v in rows.flatten().flatten() {
                let v = v.trim().to_string();
                if !v.is_empty() && v.chars().any(|c| c.is_alphabetic()) {
                    out.push(IndexedValue {
                        table: ti as u32,
                        column: ci as u32,
                        value: v,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrence_respects_word_boundaries() {
        let cfg = MatchConfig::default();
        let q: Vec<char> = "who edited the book from france?".chars().collect();
        assert!(occurrence("Ed", &q, &cfg).is_none());
        assert_eq!(occurrence("France", &q, &cfg), Some(1.0));
        assert!(occurrence("Germany", &q, &cfg).is_none());
    }
}

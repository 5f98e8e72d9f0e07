//! The embedding scorer: cosine between the question's all-MiniLM-L6-v2 embedding and each
//! table's and column's. Schema embeddings are computed once per database (keyed by its content
//! hash) and kept in memory, so a prompt costs one short forward pass, for the question.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::SchemaError;
use super::features::Question;
use super::filter::{SchemaScorer, Scores};
use super::introspect::{DbInfo, Table};
use super::minilm::{self, SentenceEncoder};

/// The embeddings of one database's tables and columns (unit vectors, schema order).
pub struct SchemaVectors {
    pub tables: Vec<Vec<f32>>,
    pub columns: Vec<Vec<Vec<f32>>>,
}

/// What a table is to the encoder: its natural name and its columns' natural names.
pub fn table_text(t: &Table) -> String {
    let cols: Vec<&str> = t.columns.iter().map(|c| c.natural.as_str()).collect();
    format!("{}: {}", t.natural, cols.join(", "))
}

/// What a column is to the encoder: table and column natural names (the table tells "name" of a
/// singer from "name" of a country) and BIRD's description when there is one.
pub fn column_text(t: &Table, c: usize) -> String {
    let col = &t.columns[c];
    let mut s = format!("{} {}", t.natural, col.natural);
    if let Some(d) = col.description.as_deref().filter(|d| !d.is_empty()) {
        s.push_str(": ");
        s.push_str(d);
    }
    s
}

pub struct EmbeddingScorer {
    encoder: SentenceEncoder,
    schemas: Mutex<HashMap<String, Arc<SchemaVectors>>>,
}

impl EmbeddingScorer {
    pub fn new(encoder: SentenceEncoder) -> EmbeddingScorer {
        EmbeddingScorer {
            encoder,
            schemas: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the model from `$EXSPIN_MINILM` or `<cache>/minilm`.
    pub fn load(cache: &Path) -> Result<EmbeddingScorer, SchemaError> {
        Ok(EmbeddingScorer::new(SentenceEncoder::load(
            &minilm::model_dir(cache),
        )?))
    }

    pub fn encoder(&self) -> &SentenceEncoder {
        &self.encoder
    }

    /// Databases whose schema embeddings are cached.
    pub fn cached_databases(&self) -> usize {
        self.schemas.lock().len()
    }

    /// The schema embeddings of `db`, computed on first use.
    pub fn schema_vectors(&self, db: &DbInfo) -> Result<Arc<SchemaVectors>, String> {
        let key = format!("{}:{}", db.db_id, db.content_hash);
        if let Some(v) = self.schemas.lock().get(&key) {
            return Ok(Arc::clone(v));
        }
        // Computed outside the lock: two threads may both compute a new database once, which is
        // cheaper than making every other database wait.
        let mut texts: Vec<String> = db.tables.iter().map(table_text).collect();
        for t in &db.tables {
            texts.extend((0..t.columns.len()).map(|c| column_text(t, c)));
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut vecs = self.encoder.embed(&refs)?.into_iter();
        let tables: Vec<Vec<f32>> = vecs.by_ref().take(db.tables.len()).collect();
        let columns = db
            .tables
            .iter()
            .map(|t| vecs.by_ref().take(t.columns.len()).collect())
            .collect();
        let v = Arc::new(SchemaVectors { tables, columns });
        self.schemas.lock().insert(key, Arc::clone(&v));
        Ok(v)
    }

    /// Cosine similarities of the question (and its evidence) with every table and column.
    pub fn similarities(&self, db: &DbInfo, question: &Question<'_>) -> Result<Scores, String> {
        let schema = self.schema_vectors(db)?;
        // The encoder truncates at 256 tokens, so a huge question costs no more than that.
        let q = self.encoder.embed(&[question.text])?.remove(0);
        Ok(Scores {
            tables: schema.tables.iter().map(|t| minilm::dot(&q, t)).collect(),
            columns: schema
                .columns
                .iter()
                .map(|cols| cols.iter().map(|c| minilm::dot(&q, c)).collect())
                .collect(),
        })
    }
}

impl SchemaScorer for EmbeddingScorer {
    fn name(&self) -> &'static str {
        "embedding"
    }

    fn score(&self, db: &DbInfo, question: &Question<'_>) -> Scores {
        match self.similarities(db, question) {
            Ok(s) => s,
            Err(e) => {
                // The trait cannot fail (a prompt must always be built); with no scores every
                // table is padding, the same as a question that mentions nothing.
                tracing::warn!(db = %db.db_id, "embedding scorer failed: {e}");
                Scores {
                    tables: vec![f32::MIN; db.tables.len()],
                    columns: db
                        .tables
                        .iter()
                        .map(|t| vec![0.0; t.columns.len()])
                        .collect(),
                }
            }
        }
    }

    fn relevance_threshold(&self) -> f32 {
        0.2
    }
}

//! Schema filtering: score every table and column against the question, keep the top-k1 tables
//! and the top-k2 columns of each, plus the keys that join the kept tables.

use std::collections::BTreeSet;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::features::{self, Question};
use super::introspect::DbInfo;

/// A score for every table and every column (schema order); higher is more relevant.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub tables: Vec<f32>,
    pub columns: Vec<Vec<f32>>,
}

/// Something that scores a schema against a question.
pub trait SchemaScorer: Send + Sync {
    fn name(&self) -> &'static str;
    fn score(&self, db: &DbInfo, question: &Question<'_>) -> Scores;
    /// Tables scoring below this are "not relevant": they only fill the k1 slots as padding.
    fn relevance_threshold(&self) -> f32;
}

/// Names, natural names and retrieved values, matched word by word (n-grams through phrase
/// tests, fuzzy through prefix and one-edit matches) with fixed weights.
#[derive(Debug, Clone, Copy, Default)]
pub struct LexicalScorer;

impl LexicalScorer {
    /// The lexical score of a column from its features (also a feature of the learned scorer).
    pub fn column_score(c: &[f32; features::COLUMN_FEATURES]) -> f32 {
        c[0].max(c[1]) + 0.5 * c[8] + c[2] + 0.3 * c[9] + 0.2 * c[10] + 0.05 * c[3]
    }

    /// The lexical score of a table from its features.
    pub fn table_score(t: &[f32; features::TABLE_FEATURES]) -> f32 {
        t[0].max(t[1]) + 0.5 * t[9] + 0.4 * t[2] + 0.3 * t[3] + t[4] + 0.3 * t[10]
    }
}

impl SchemaScorer for LexicalScorer {
    fn name(&self) -> &'static str {
        "lexical"
    }

    fn score(&self, db: &DbInfo, question: &Question<'_>) -> Scores {
        let f = features::compute(db, question);
        Scores {
            tables: f.tables.iter().map(Self::table_score).collect(),
            columns: f
                .columns
                .iter()
                .map(|cols| cols.iter().map(Self::column_score).collect())
                .collect(),
        }
    }

    fn relevance_threshold(&self) -> f32 {
        0.3
    }
}

/// How much to keep.
#[derive(Debug, Clone, Copy)]
pub struct FilterConfig {
    /// Tables to keep.
    pub k1: usize,
    /// Scored columns to keep per table (keys come on top).
    pub k2: usize,
    /// Seed of the random padding (mixed with the question, so each question is reproducible).
    pub seed: u64,
    /// Pad with random tables, as the paper does (true), or with the next best scored (false).
    pub random_padding: bool,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            k1: 4,
            k2: 10,
            seed: 0,
            random_padding: true,
        }
    }
}

/// A kept table and its kept columns, both in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptTable {
    pub table: usize,
    pub columns: Vec<usize>,
}

/// The filtered schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub tables: Vec<KeptTable>,
}

impl Selection {
    /// Everything: the ablation "without explicit schema integration".
    pub fn full(db: &DbInfo) -> Selection {
        Selection {
            tables: db
                .tables
                .iter()
                .enumerate()
                .map(|(ti, t)| KeptTable {
                    table: ti,
                    columns: (0..t.columns.len()).collect(),
                })
                .collect(),
        }
    }

    pub fn has_table(&self, t: usize) -> bool {
        self.tables.iter().any(|k| k.table == t)
    }

    pub fn has_column(&self, t: usize, c: usize) -> bool {
        self.tables
            .iter()
            .any(|k| k.table == t && k.columns.contains(&c))
    }
}

/// FNV-1a, to turn a question into a padding seed that does not depend on the process.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Keeps the top-k1 tables (relevant ones first, padding after) and the top-k2 columns of each,
/// plus primary keys and the foreign-key columns between kept tables.
pub fn select(
    db: &DbInfo,
    scores: &Scores,
    threshold: f32,
    cfg: &FilterConfig,
    question: &str,
) -> Selection {
    let n = db.tables.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        scores.tables[b]
            .total_cmp(&scores.tables[a])
            .then(a.cmp(&b))
    });
    let k1 = cfg.k1.max(1).min(n);
    let mut kept: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&t| scores.tables[t] >= threshold)
        .take(k1)
        .collect();
    if kept.len() < k1 {
        let mut rest: Vec<usize> = order
            .iter()
            .copied()
            .filter(|t| !kept.contains(t))
            .collect();
        if cfg.random_padding {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ fnv(question));
            rest.shuffle(&mut rng);
        }
        kept.extend(rest.into_iter().take(k1 - kept.len()));
    }
    let kept_set: BTreeSet<usize> = kept.iter().copied().collect();
    let tables = kept_set
        .iter()
        .map(|&ti| {
            let t = &db.tables[ti];
            let mut cols: Vec<usize> = (0..t.columns.len()).collect();
            cols.sort_by(|&a, &b| {
                scores.columns[ti][b]
                    .total_cmp(&scores.columns[ti][a])
                    .then(a.cmp(&b))
            });
            let mut keep: BTreeSet<usize> = cols.into_iter().take(cfg.k2).collect();
            keep.extend((0..t.columns.len()).filter(|&c| t.columns[c].primary_key));
            for fk in &db.foreign_keys {
                if kept_set.contains(&fk.from_table) && kept_set.contains(&fk.to_table) {
                    if fk.from_table == ti {
                        keep.insert(fk.from_column);
                    }
                    if fk.to_table == ti {
                        keep.insert(fk.to_column);
                    }
                }
            }
            KeptTable {
                table: ti,
                columns: keep.into_iter().collect(),
            }
        })
        .collect();
    Selection { tables }
}

//! The learned scorer: two logistic regressions (tables, columns) over the lexical and value
//! features of [`super::features`], the lexical scorer's own score, the MiniLM cosine
//! similarities when the model is installed (see [`super::embedding`]), and all their pairwise
//! products; fitted by Newton's method (seconds on Spider train) and saved as a small JSON file in
//! the cache folder.
//!
//! The fitted weights are derived from Spider (CC BY-SA 4.0), so they live in the cache and are
//! never committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::SchemaError;
use super::embedding::EmbeddingScorer;
use super::features::{self, Question};
use super::filter::{LexicalScorer, SchemaScorer, Scores};
use super::introspect::DbInfo;

/// The model file's name inside the cache folder.
pub const MODEL_FILE: &str = "schema-learned.json";

pub fn model_path(cache: &Path) -> PathBuf {
    cache.join(MODEL_FILE)
}

/// Raw features plus all pairwise products (squares included): a quadratic decision surface.
fn expand(x: &[f32]) -> Vec<f64> {
    let mut out: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    for i in 0..x.len() {
        for j in i..x.len() {
            out.push(f64::from(x[i]) * f64::from(x[j]));
        }
    }
    out
}

/// A standardized logistic regression.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Logistic {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Logistic {
    pub fn probability(&self, raw: &[f32]) -> f32 {
        let x = expand(raw);
        let z: f64 = self.bias
            + x.iter()
                .zip(&self.mean)
                .zip(&self.std)
                .zip(&self.weights)
                .map(|(((v, m), s), w)| (v - m) / s * w)
                .sum::<f64>();
        (1.0 / (1.0 + (-z).exp())) as f32
    }

    /// Fits by Newton's method with a small L2 penalty (keeps the Hessian invertible when a
    /// feature is constant).
    pub fn fit(rows: &[Vec<f32>], labels: &[bool], iterations: usize) -> Logistic {
        let x: Vec<Vec<f64>> = rows.iter().map(|r| expand(r)).collect();
        let d = x.first().map_or(0, Vec::len);
        let n = x.len().max(1) as f64;
        let mut mean = vec![0.0; d];
        let mut std = vec![0.0; d];
        for r in &x {
            for j in 0..d {
                mean[j] += r[j] / n;
            }
        }
        for r in &x {
            for j in 0..d {
                std[j] += (r[j] - mean[j]).powi(2) / n;
            }
        }
        for s in &mut std {
            *s = s.sqrt().max(1e-6);
        }
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| {
                let mut v: Vec<f64> = (0..d).map(|j| (r[j] - mean[j]) / std[j]).collect();
                v.push(1.0);
                v
            })
            .collect();
        let p = d + 1;
        let mut w = vec![0.0; p];
        let l2 = 1e-3 * n;
        for _ in 0..iterations {
            let mut grad = vec![0.0; p];
            let mut hess = vec![vec![0.0; p]; p];
            for (r, &y) in z.iter().zip(labels) {
                let s: f64 = r.iter().zip(&w).map(|(a, b)| a * b).sum();
                let mu = 1.0 / (1.0 + (-s).exp());
                let g = mu - f64::from(u8::from(y));
                let h = (mu * (1.0 - mu)).max(1e-9);
                for a in 0..p {
                    grad[a] += g * r[a];
                    let ha = h * r[a];
                    for b in a..p {
                        hess[a][b] += ha * r[b];
                    }
                }
            }
            for a in 0..p {
                for b in 0..a {
                    hess[a][b] = hess[b][a];
                }
                if a < d {
                    grad[a] += l2 * w[a];
                    hess[a][a] += l2;
                }
            }
            let Some(step) = solve(hess, grad) else { break };
            let mut change: f64 = 0.0;
            for a in 0..p {
                w[a] -= step[a];
                change = change.max(step[a].abs());
            }
            if change < 1e-6 {
                break;
            }
        }
        let bias = w.pop().unwrap_or(0.0);
        Logistic {
            mean,
            std,
            weights: w,
            bias,
        }
    }
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` when singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            if f != 0.0 {
                for k in col..n {
                    a[row][k] -= f * a[col][k];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// The threshold of model files written before it was calibrated.
const DEFAULT_THRESHOLD: f32 = 0.1;

fn default_threshold() -> f32 {
    DEFAULT_THRESHOLD
}

/// Feature rows of every table and column (schema order).
pub struct Rows {
    pub tables: Vec<Vec<f32>>,
    pub columns: Vec<Vec<Vec<f32>>>,
}

/// Row widths: the features, the lexical score, and two embedding similarities when used.
pub fn widths(embedding: bool) -> (usize, usize) {
    let extra = 1 + if embedding { 2 } else { 0 };
    (
        features::TABLE_FEATURES + extra,
        features::COLUMN_FEATURES + extra,
    )
}

/// The rows of one question. `similarities` are the embedding scorer's cosines (None: a model
/// trained without them). A table gets its own cosine and its best column's; a column its own
/// and its table's.
pub fn rows(db: &DbInfo, question: &Question<'_>, similarities: Option<&Scores>) -> Rows {
    let f = features::compute(db, question);
    let tables = f
        .tables
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let mut r = t.to_vec();
            r.push(LexicalScorer::table_score(t));
            if let Some(s) = similarities {
                let best = s.columns[ti].iter().copied().fold(-1.0, f32::max);
                r.extend([s.tables[ti], best]);
            }
            r
        })
        .collect();
    let columns = f
        .columns
        .iter()
        .enumerate()
        .map(|(ti, cols)| {
            cols.iter()
                .enumerate()
                .map(|(ci, c)| {
                    let mut r = c.to_vec();
                    r.push(LexicalScorer::column_score(c));
                    if let Some(s) = similarities {
                        r.extend([s.columns[ti][ci], s.tables[ti]]);
                    }
                    r
                })
                .collect()
        })
        .collect();
    Rows { tables, columns }
}

/// The trained table and column classifiers.
#[derive(Clone, Serialize, Deserialize)]
pub struct LearnedScorer {
    pub table: Logistic,
    pub column: Logistic,
    /// What it was trained on (for the record).
    pub trained_on: String,
    pub examples: usize,
    /// Trained with the MiniLM similarities as features (then it needs the model to score).
    #[serde(default)]
    pub embedding: bool,
    /// Tables with a lower probability only fill the k1 slots as padding (see
    /// [`TrainingSet::fit`] for how it is chosen).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// The encoder when `embedding` (attached by [`LearnedScorer::with_encoder`]).
    #[serde(skip)]
    encoder: Option<Arc<EmbeddingScorer>>,
}

impl std::fmt::Debug for LearnedScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LearnedScorer")
            .field("trained_on", &self.trained_on)
            .field("examples", &self.examples)
            .field("embedding", &self.embedding)
            .finish_non_exhaustive()
    }
}

impl LearnedScorer {
    pub fn load(path: &Path) -> Result<LearnedScorer, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|e| SchemaError::Model {
            path: path.to_path_buf(),
            message: format!("{e} (train it with `exspin schema train --spider DIR`)"),
        })?;
        let model: LearnedScorer = serde_json::from_str(&text).map_err(|e| SchemaError::Model {
            path: path.to_path_buf(),
            message: format!(
                "not a learned schema scorer: {e} (retrain with `exspin schema train`)"
            ),
        })?;
        let (wt, wc) = widths(model.embedding);
        let (dt, dc) = (expand(&vec![0.0; wt]).len(), expand(&vec![0.0; wc]).len());
        if model.table.weights.len() != dt || model.column.weights.len() != dc {
            return Err(SchemaError::Model {
                path: path.to_path_buf(),
                message: "trained with another feature set (retrain with `exspin schema train`)"
                    .into(),
            });
        }
        Ok(model)
    }

    /// Loads the model file and, when it was trained with embedding features, the MiniLM model
    /// from `<cache>/minilm` (or `$EXSPIN_MINILM`).
    pub fn load_with_encoder(path: &Path, cache: &Path) -> Result<LearnedScorer, SchemaError> {
        let model = LearnedScorer::load(path)?;
        if !model.embedding {
            return Ok(model);
        }
        let encoder = EmbeddingScorer::load(cache).map_err(|e| SchemaError::Model {
            path: path.to_path_buf(),
            message: format!(
                "trained with MiniLM similarities, which cannot be computed: {e}; or retrain \
                 with `exspin schema train --no-embedding`"
            ),
        })?;
        Ok(model.with_encoder(Arc::new(encoder)))
    }

    pub fn with_encoder(mut self, encoder: Arc<EmbeddingScorer>) -> LearnedScorer {
        self.encoder = Some(encoder);
        self
    }

    pub fn save(&self, path: &Path) -> Result<(), SchemaError> {
        let io = |source| SchemaError::Cache {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let json = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .map_err(io)?;
        std::fs::write(path, json).map_err(io)
    }
}

impl SchemaScorer for LearnedScorer {
    fn name(&self) -> &'static str {
        "learned"
    }

    fn score(&self, db: &DbInfo, question: &Question<'_>) -> Scores {
        // Without the encoder (built without `load_with_encoder`) or when it fails, neutral
        // similarities keep the scorer usable: a prompt must always be built.
        let neutral = || Scores {
            tables: vec![0.0; db.tables.len()],
            columns: db
                .tables
                .iter()
                .map(|t| vec![0.0; t.columns.len()])
                .collect(),
        };
        let sims = match (self.embedding, &self.encoder) {
            (false, _) => None,
            (true, Some(e)) => Some(e.similarities(db, question).unwrap_or_else(|err| {
                tracing::warn!(db = %db.db_id, "MiniLM similarities failed: {err}");
                neutral()
            })),
            (true, None) => Some(neutral()),
        };
        let r = rows(db, question, sims.as_ref());
        Scores {
            tables: r.tables.iter().map(|t| self.table.probability(t)).collect(),
            columns: r
                .columns
                .iter()
                .map(|cols| cols.iter().map(|c| self.column.probability(c)).collect())
                .collect(),
        }
    }

    fn relevance_threshold(&self) -> f32 {
        self.threshold
    }
}

/// Training rows gathered example by example.
#[derive(Default)]
pub struct TrainingSet {
    pub table_rows: Vec<Vec<f32>>,
    pub table_labels: Vec<bool>,
    pub column_rows: Vec<Vec<f32>>,
    pub column_labels: Vec<bool>,
    pub examples: usize,
    /// Rows carry the MiniLM similarities.
    pub embedding: bool,
}

impl TrainingSet {
    /// Adds one question's rows; labels are what its gold SQL uses. Columns are learned only for
    /// tables the query reads (at inference the table step has chosen them already).
    /// `similarities` must be given for every example or for none.
    pub fn add(
        &mut self,
        db: &DbInfo,
        question: &Question<'_>,
        usage: &super::gold::Usage,
        similarities: Option<&Scores>,
    ) {
        self.embedding = similarities.is_some();
        let f = rows(db, question, similarities);
        for (ti, t) in f.tables.into_iter().enumerate() {
            self.table_rows.push(t);
            self.table_labels.push(usage.tables.contains(&ti));
            if usage.tables.contains(&ti) {
                for (ci, c) in f.columns[ti].iter().enumerate() {
                    self.column_rows.push(c.clone());
                    self.column_labels.push(usage.columns.contains(&(ti, ci)));
                }
            }
        }
        self.examples += 1;
    }

    pub fn fit(&self, trained_on: &str) -> LearnedScorer {
        let table = Logistic::fit(&self.table_rows, &self.table_labels, 25);
        let threshold = self.calibrate(&table);
        LearnedScorer {
            table,
            column: Logistic::fit(&self.column_rows, &self.column_labels, 25),
            trained_on: trained_on.to_string(),
            examples: self.examples,
            embedding: self.embedding,
            threshold,
            encoder: None,
        }
    }

    /// Share of the gold tables of the training set that the lexical scorer's threshold counts
    /// as relevant.
    pub fn lexical_gold_coverage(&self) -> f64 {
        let lexical = LexicalScorer.relevance_threshold();
        let gold = self.gold_tables().count().max(1);
        let kept = self
            .gold_tables()
            .filter(|r| r[features::TABLE_FEATURES] >= lexical)
            .count();
        kept as f64 / gold as f64
    }

    fn gold_tables(&self) -> impl Iterator<Item = &Vec<f32>> {
        self.table_rows
            .iter()
            .zip(&self.table_labels)
            .filter(|(_, y)| **y)
            .map(|(r, _)| r)
    }

    /// The relevance threshold: the probability above which the same share of training gold
    /// tables lies as above the lexical scorer's threshold. A fixed probability (0.1 was tried)
    /// counted more gold tables as irrelevant than the lexical scorer does, so random padding
    /// took their slots and the learned scorer kept fewer gold tables although it ranks them
    /// better.
    fn calibrate(&self, table: &Logistic) -> f32 {
        let mut p: Vec<f32> = self.gold_tables().map(|r| table.probability(r)).collect();
        if p.is_empty() {
            return DEFAULT_THRESHOLD;
        }
        p.sort_by(f32::total_cmp);
        let below = ((1.0 - self.lexical_gold_coverage()) * p.len() as f64).floor() as usize;
        p[below.min(p.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_separates_a_threshold() {
        let rows: Vec<Vec<f32>> = (0..200).map(|i| vec![i as f32 / 200.0]).collect();
        let labels: Vec<bool> = (0..200).map(|i| i >= 120).collect();
        let m = Logistic::fit(&rows, &labels, 25);
        assert!(m.probability(&[0.9]) > 0.8);
        assert!(m.probability(&[0.2]) < 0.2);
    }
}

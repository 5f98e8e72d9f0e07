//! The learned scorer: two logistic regressions (tables, columns) over the lexical and value
//! features of [`super::features`] and their pairwise products, fitted by Newton's method
//! (a few seconds on Spider train) and saved as a small JSON file in the cache folder.
//!
//! The fitted weights are derived from Spider (CC BY-SA 4.0), so they live in the cache and are
//! never committed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SchemaError;
use super::features::{self, Question};
use super::filter::{SchemaScorer, Scores};
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

/// The trained table and column classifiers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnedScorer {
    pub table: Logistic,
    pub column: Logistic,
    /// What it was trained on (for the record).
    pub trained_on: String,
    pub examples: usize,
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
        let dt = expand(&[0.0; features::TABLE_FEATURES]).len();
        let dc = expand(&[0.0; features::COLUMN_FEATURES]).len();
        if model.table.weights.len() != dt || model.column.weights.len() != dc {
            return Err(SchemaError::Model {
                path: path.to_path_buf(),
                message: "trained with another feature set (retrain with `exspin schema train`)"
                    .into(),
            });
        }
        Ok(model)
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
        let f = features::compute(db, question);
        Scores {
            tables: f.tables.iter().map(|t| self.table.probability(t)).collect(),
            columns: f
                .columns
                .iter()
                .map(|cols| cols.iter().map(|c| self.column.probability(c)).collect())
                .collect(),
        }
    }

    fn relevance_threshold(&self) -> f32 {
        0.1
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
}

impl TrainingSet {
    /// Adds one question's rows; labels are what its gold SQL uses. Columns are learned only for
    /// tables the query reads (at inference the table step has chosen them already).
    pub fn add(&mut self, db: &DbInfo, question: &Question<'_>, usage: &super::gold::Usage) {
        let f = features::compute(db, question);
        for (ti, t) in f.tables.iter().enumerate() {
            self.table_rows.push(t.to_vec());
            self.table_labels.push(usage.tables.contains(&ti));
            if usage.tables.contains(&ti) {
                for (ci, c) in f.columns[ti].iter().enumerate() {
                    self.column_rows.push(c.to_vec());
                    self.column_labels.push(usage.columns.contains(&(ti, ci)));
                }
            }
        }
        self.examples += 1;
    }

    pub fn fit(&self, trained_on: &str) -> LearnedScorer {
        LearnedScorer {
            table: Logistic::fit(&self.table_rows, &self.table_labels, 25),
            column: Logistic::fit(&self.column_rows, &self.column_labels, 25),
            trained_on: trained_on.to_string(),
            examples: self.examples,
        }
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

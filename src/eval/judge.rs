//! The one judge: whether a predicted query is right, by the dataset's benchmark rule.
//!
//! Everything that decides "correct" calls this — `exspin eval`, `exspin bench eval`, the
//! self-play filter (which discards generations judged [`Verdict::Correct`]) and the run's dev
//! evaluation — so a run's filter, its dev accuracy and the evaluator the README reports against
//! cannot disagree. The rule is chosen by the dataset ([`Judge::for_dataset`]):
//!
//! * **Spider** (and our JSONL / synthetic data): the official `exec_eval.py` steps — both
//!   queries post-processed (`> =` → `>=`, …), `DISTINCT` removed unless kept, `YEAR(CURDATE())`
//!   replaced — then a multiset comparison that is ordered only when the gold query orders,
//!   with Python's `1 == 1.0` and the prediction's columns allowed to be permuted;
//! * **BIRD**: both queries run as written; set equality of rows.

use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::{Receiver, bounded};
use serde::{Deserialize, Serialize};

use crate::data::DatasetKind;
use crate::sql::compare::{ComparisonRule, results_match};
use crate::sql::executor::{ExecutorPool, Outcome};
use crate::sql::official::{self, Compat};

/// How to evaluate beyond the dataset's rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalOptions {
    /// Keep `DISTINCT` (the official script removes it by default).
    pub keep_distinct: bool,
    pub compat: Compat,
}

/// The judgement of one prediction against its gold query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Correct,
    /// It ran and returned another result.
    WrongResult,
    /// It did not run: a SQL error, a refused statement, too many rows (`kind` says which).
    Error {
        kind: String,
    },
    Timeout,
    /// The gold query itself did not return rows: the example cannot be judged.
    GoldFailed,
}

impl Verdict {
    /// A stable snake_case name, for metrics and journals.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::WrongResult => "wrong_result",
            Verdict::Error { .. } => "error",
            Verdict::Timeout => "timeout",
            Verdict::GoldFailed => "gold_failed",
        }
    }

    /// `Some(right)` when the example could be judged, `None` when its gold query failed.
    pub fn correct(&self) -> Option<bool> {
        match self {
            Verdict::GoldFailed => None,
            v => Some(*v == Verdict::Correct),
        }
    }
}

/// One prediction to judge: the gold query's cache key (see [`Judge::gold_key`]), the database
/// and both queries as written (the judge applies its text steps itself).
#[derive(Debug, Clone)]
pub struct Case<'a> {
    pub gold_key: String,
    pub db: &'a Path,
    pub gold_sql: &'a str,
    pub predicted_sql: &'a str,
}

/// What the judge saw and decided for one [`Case`].
#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: Verdict,
    pub gold: Arc<Outcome>,
    pub predicted: Outcome,
}

/// The benchmark rule of a dataset with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judge {
    pub rule: ComparisonRule,
    pub options: EvalOptions,
}

impl Judge {
    /// The rule the dataset's benchmark uses: BIRD's for BIRD, Spider's otherwise.
    pub fn for_dataset(kind: DatasetKind, options: EvalOptions) -> Judge {
        let rule = match kind {
            DatasetKind::Bird => ComparisonRule::Bird,
            DatasetKind::Spider | DatasetKind::Jsonl => ComparisonRule::Spider,
        };
        Judge { rule, options }
    }

    /// The gold query as it is executed.
    pub fn prepare_gold(&self, sql: &str) -> String {
        match self.rule {
            ComparisonRule::Spider => {
                official::prepare_for_execution(sql, self.options.keep_distinct)
            }
            // BIRD's official script runs both queries as written.
            ComparisonRule::Bird => sql.to_string(),
        }
    }

    /// The predicted query as it is executed (with `--compat official`, `evaluation.py`'s quirk of
    /// replacing `value` by `1` first).
    pub fn prepare_prediction(&self, sql: &str) -> String {
        match self.options.compat {
            Compat::Official => self.prepare_gold(&official::official_value_quirk(sql)),
            Compat::Default => self.prepare_gold(sql),
        }
    }

    /// The key under which the pool caches a gold result: the example, scoped by where it came
    /// from (`scope`, e.g. the dataset file) and by the text steps that change the gold query.
    pub fn gold_key(&self, scope: &str, example_id: &str) -> String {
        format!("{scope}|{example_id}|{}", self.options.keep_distinct)
    }

    /// The verdict for outcomes already computed. `prepared_gold_sql` is the gold query after
    /// [`Judge::prepare_gold`] (Spider orders only when it does).
    pub fn verdict(&self, prepared_gold_sql: &str, gold: &Outcome, predicted: &Outcome) -> Verdict {
        let Some(gold_rows) = gold.rows() else {
            return Verdict::GoldFailed;
        };
        match predicted {
            Outcome::Rows { rows, .. } => {
                let ordered = official::order_matters(prepared_gold_sql);
                if results_match(self.rule, gold_rows, rows, ordered) {
                    Verdict::Correct
                } else {
                    Verdict::WrongResult
                }
            }
            Outcome::Timeout { .. } => Verdict::Timeout,
            other => Verdict::Error {
                kind: other.kind().to_string(),
            },
        }
    }

    /// Judges every case on the pool's workers, calling `on_judged(index, judgement)` in input
    /// order as each one completes, so the caller's own per-case work overlaps with the queries
    /// still running. Gold results are cached in the pool by [`Case::gold_key`]. Submission runs
    /// on a helper thread through a channel as deep as the pool's queue, so any number of cases
    /// can be judged without deadlock.
    pub fn judge_each<'a>(
        &self,
        pool: &ExecutorPool,
        cases: &[Case<'a>],
        mut on_judged: impl FnMut(usize, Judgement),
    ) {
        type Pending = (
            usize,
            String,
            Result<Arc<Outcome>, Receiver<Outcome>>,
            Receiver<Outcome>,
        );
        std::thread::scope(|scope| {
            let (tx, rx) = bounded::<Pending>(pool.config().queue_capacity.max(1));
            scope.spawn(move || {
                for (index, case) in cases.iter().enumerate() {
                    let gold_sql = self.prepare_gold(case.gold_sql);
                    let gold = match pool.cached_gold(&case.gold_key) {
                        Some(hit) => Ok(hit),
                        None => Err(pool.submit(case.db, &gold_sql)),
                    };
                    let predicted =
                        pool.submit(case.db, &self.prepare_prediction(case.predicted_sql));
                    if tx.send((index, gold_sql, gold, predicted)).is_err() {
                        break;
                    }
                }
            });
            for (index, gold_sql, gold, predicted) in rx {
                let gold = match gold {
                    Ok(hit) => hit,
                    Err(rx) => pool.remember_gold(&cases[index].gold_key, receive(rx)),
                };
                let predicted = receive(predicted);
                let verdict = self.verdict(&gold_sql, &gold, &predicted);
                on_judged(
                    index,
                    Judgement {
                        verdict,
                        gold,
                        predicted,
                    },
                );
            }
        });
    }

    /// [`Judge::judge_each`], collected in input order.
    pub fn judge_all(&self, pool: &ExecutorPool, cases: &[Case<'_>]) -> Vec<Judgement> {
        let mut out = Vec::with_capacity(cases.len());
        self.judge_each(pool, cases, |_, j| out.push(j));
        out
    }
}

fn receive(rx: Receiver<Outcome>) -> Outcome {
    rx.recv().unwrap_or_else(|_| Outcome::Error {
        message: "executor stopped before answering".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[&[i64]]) -> Outcome {
        use crate::sql::value::Value;
        Outcome::Rows {
            columns: vec!["a".into()],
            rows: values
                .iter()
                .map(|r| r.iter().map(|v| Value::Integer(*v)).collect())
                .collect(),
        }
    }

    #[test]
    fn spider_orders_only_when_gold_orders_and_bird_compares_sets() {
        let spider = Judge::for_dataset(DatasetKind::Spider, EvalOptions::default());
        let bird = Judge::for_dataset(DatasetKind::Bird, EvalOptions::default());
        let (gold, swapped) = (rows(&[&[1], &[2]]), rows(&[&[2], &[1]]));
        assert_eq!(
            spider.verdict("select a from t", &gold, &swapped),
            Verdict::Correct
        );
        assert_eq!(
            spider.verdict("select a from t order by a", &gold, &swapped),
            Verdict::WrongResult
        );
        // Spider counts duplicates (multiset); BIRD does not (set).
        let doubled = rows(&[&[1], &[2], &[2]]);
        assert_eq!(
            spider.verdict("select a from t", &gold, &doubled),
            Verdict::WrongResult
        );
        assert_eq!(
            bird.verdict("select a from t", &gold, &doubled),
            Verdict::Correct
        );
        let failed = Outcome::Error {
            message: "no such table".into(),
        };
        assert_eq!(spider.verdict("x", &failed, &gold), Verdict::GoldFailed);
        assert_eq!(
            spider.verdict("x", &gold, &failed),
            Verdict::Error {
                kind: "error".into()
            }
        );
    }

    #[test]
    fn spider_removes_distinct_unless_kept_and_bird_runs_queries_as_written() {
        let sql = "SELECT DISTINCT a FROM t WHERE b > = 1";
        let spider = Judge::for_dataset(DatasetKind::Jsonl, EvalOptions::default());
        assert_eq!(spider.prepare_gold(sql), "SELECT  a FROM t WHERE b >= 1");
        let keep = Judge::for_dataset(
            DatasetKind::Spider,
            EvalOptions {
                keep_distinct: true,
                ..EvalOptions::default()
            },
        );
        assert_eq!(
            keep.prepare_gold(sql),
            "SELECT DISTINCT a FROM t WHERE b >= 1"
        );
        assert_ne!(keep.gold_key("dev", "1"), spider.gold_key("dev", "1"));
        let bird = Judge::for_dataset(DatasetKind::Bird, EvalOptions::default());
        assert_eq!(bird.prepare_gold(sql), sql);
    }
}

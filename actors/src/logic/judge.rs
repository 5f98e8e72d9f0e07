//! The runtime's call of the one judge (`exspin::eval::Judge`): the self-play filter (the
//! executor stage) and the dev evaluation (the real evaluator) judge their (prompt, sample)
//! items through [`judge_all`], so neither compares result rows itself.

use exspin::eval::{Case, Judge};
use exspin::sql::executor::ExecutorPool;

use crate::protocol::seams::{Judged, PromptItem, Sample};

/// Judges every generation with the one judge (`exspin::eval::Judge`, the rule of the train
/// dataset) on the pool: queries run in parallel, verdicts come back in input order. Gold results
/// are cached per example under `scope` (the dataset the examples come from).
pub fn judge_all(
    judge: &Judge,
    pool: &ExecutorPool,
    scope: &str,
    db_path: impl Fn(&str) -> std::path::PathBuf,
    items: Vec<(PromptItem, Sample)>,
) -> Vec<Judged> {
    let dbs: Vec<std::path::PathBuf> = items.iter().map(|(p, _)| db_path(&p.db_id)).collect();
    let cases: Vec<Case<'_>> = items
        .iter()
        .zip(&dbs)
        .map(|((prompt, sample), db)| Case {
            gold_key: judge.gold_key(scope, &prompt.example_id),
            db,
            gold_sql: &prompt.gold_sql,
            predicted_sql: &sample.sql,
        })
        .collect();
    let verdicts = judge.judge_all(pool, &cases);
    items
        .into_iter()
        .zip(verdicts)
        .map(|((prompt, sample), judged)| Judged {
            prompt,
            sample,
            verdict: judged.verdict,
        })
        .collect()
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;

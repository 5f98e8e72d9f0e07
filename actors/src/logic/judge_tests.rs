//! One judge: the self-play filter and the run's dev evaluation judge a prediction exactly as
//! `exspin eval` does, because they call the same `exspin::eval::Judge` (through
//! [`judge_all`], the function both runtime paths call).

use super::judge_all;
use crate::protocol::seams::{PromptItem, Sample, Verdict};
use exspin::data::spider;
use exspin::eval::{self, EvalOptions, Judge};
use exspin::sql::executor::{ExecutorConfig, ExecutorPool};
use exspin::sql::official::Compat;

fn pool() -> ExecutorPool {
    ExecutorPool::new(ExecutorConfig {
        timeout: std::time::Duration::from_secs(60),
        max_rows: 10_000_000,
        ..ExecutorConfig::default()
    })
}

// The core's test helpers: the shared data (and the switch that forbids skipping without it).
#[path = "../../../tests/util.rs"]
mod util;

#[test]
fn the_runtime_judge_gives_exspin_evals_per_example_verdicts_on_dail_sql() {
    let Some(dir) = util::spider_dir("runtime judge agreement") else {
        return;
    };
    let dataset = spider::load(&dir, "dev").unwrap();
    let file = dir.join("predictions").join("DAIL-SQL+GPT-4.txt");
    let predictions = eval::read_predictions(&file, dataset.len(), Compat::Default).unwrap();
    let report = eval::evaluate(
        &dataset,
        &predictions,
        &pool(),
        EvalOptions::default(),
        &indicatif::ProgressBar::hidden(),
    );
    assert_eq!((report.correct, report.evaluable), (809, 972));

    // What the executor stage and the dev evaluator hand the judge: prompts and samples.
    let items: Vec<(PromptItem, Sample)> = dataset
        .evaluable_examples()
        .map(|(i, ex)| {
            let prompt = PromptItem {
                example_id: ex.id.clone(),
                db_id: ex.db_id.clone(),
                question: ex.question.clone(),
                gold_sql: ex.gold_sql.clone(),
                prompt: String::new(),
                round: 0,
            };
            let sample = Sample {
                example_id: ex.id.clone(),
                sample_id: prompt.sample_id(0),
                round: 0,
                sql: predictions[i].clone(),
                version: 0,
                ref_version: 0,
                logp_gold: 0.0,
                logp_gen: 0.0,
                tokens: 0,
            };
            (prompt, sample)
        })
        .collect();
    let indices: Vec<usize> = dataset.evaluable_examples().map(|(i, _)| i).collect();
    let judge = Judge::for_dataset(dataset.kind, EvalOptions::default());
    let judged = judge_all(&judge, &pool(), "dev", |db| dataset.db_path(db), items);
    let expected = report.per_example();
    let disagreements: Vec<String> = judged
        .iter()
        .zip(&indices)
        .filter(|(j, i)| j.verdict.correct() != expected[**i])
        .map(|(j, i)| format!("#{i} runtime {:?} eval {:?}", j.verdict, expected[*i]))
        .collect();
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    let right = judged
        .iter()
        .filter(|j| j.verdict == Verdict::Correct)
        .count();
    assert_eq!(right, 809);
}

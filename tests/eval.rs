//! Execution accuracy agrees with the official Spider evaluator (test-suite-sql-eval,
//! `--etype exec`), per example. The expected per-example verdicts under `tests/data/official/`
//! were produced by the official `exec_eval.eval_exec_match` on the same files
//! (`scripts/official-agreement.py` reproduces them from a checkout of the official repository).

use std::path::{Path, PathBuf};

use exspin::data::spider;
use exspin::eval::{self, EvalOptions};
use exspin::sql::executor::{ExecutorConfig, ExecutorPool};
use exspin::sql::official::Compat;

use crate::util::spider_dir;

fn pool() -> ExecutorPool {
    ExecutorPool::new(ExecutorConfig {
        timeout: std::time::Duration::from_secs(60),
        max_rows: 10_000_000,
        ..ExecutorConfig::default()
    })
}

fn official_verdicts(name: &str) -> Vec<Option<bool>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/official")
        .join(format!("{name}.per-example.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check_against_official(predictions: &str, expected_correct: usize) {
    let Some(dir) = spider_dir("official agreement") else {
        return;
    };
    let dataset = spider::load(&dir, "dev").unwrap();
    assert_eq!(dataset.len(), 1034);
    assert_eq!(dataset.evaluable_count(), 972);
    let file: PathBuf = dir.join("predictions").join(format!("{predictions}.txt"));
    let preds = eval::read_predictions(&file, dataset.len(), Compat::Default).unwrap();
    let report = eval::evaluate(
        &dataset,
        &preds,
        &pool(),
        EvalOptions::default(),
        &indicatif::ProgressBar::hidden(),
    );
    let ours = report.per_example();
    let official = official_verdicts(predictions);
    let disagreements: Vec<usize> = (0..ours.len())
        .filter(|&i| ours[i] != official[i])
        .collect();
    for &i in &disagreements {
        eprintln!(
            "#{i} ours {:?} official {:?}: gold {} | pred {} | {:?}",
            ours[i], official[i], dataset.examples[i].gold_sql, preds[i], report.verdicts[i].note
        );
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements",
        disagreements.len()
    );
    assert_eq!(report.correct, expected_correct);
    assert_eq!(report.evaluable, 972);
    assert_eq!(
        ours.iter().filter(|v| v.is_none()).count(),
        62,
        "wta_1's 62 examples are null"
    );
    assert_eq!(report.missing_databases.get("wta_1"), Some(&62));
    assert_eq!(report.gold_failed, 0);
    // Per hardness level, the official breakdown: the official verdicts grouped by the level of
    // the official parse (dev.json's `sql` field).
    let raw: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("dev.json")).unwrap()).unwrap();
    let mut expected: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for (i, verdict) in official.iter().enumerate() {
        if let Some(ok) = verdict {
            let level = exspin::sql::hardness::hardness_from_parsed(&raw[i]["sql"]).unwrap();
            let entry = expected
                .entry(format!("{level:?}").to_lowercase())
                .or_default();
            entry.0 += 1;
            entry.1 += usize::from(*ok);
        }
    }
    let got: std::collections::BTreeMap<String, (usize, usize)> = report
        .by_hardness
        .iter()
        .map(|(k, b)| (k.clone(), (b.count, b.correct)))
        .collect();
    assert_eq!(got, expected);
    // Breakdowns cover every evaluable example.
    let by_level: usize = report.by_hardness.values().map(|b| b.count).sum();
    let by_type: usize = report.by_query_type.values().map(|b| b.count).sum();
    assert_eq!((by_level, by_type), (972, 972));
}

#[test]
fn dail_sql_gpt4_gives_the_official_809_of_972() {
    check_against_official("DAIL-SQL+GPT-4", 809);
}

#[test]
fn dail_sql_self_consistency_gives_the_official_815_of_972() {
    check_against_official("DAIL-SQL+GPT-4+self-consistency", 815);
}

#[test]
fn gold_as_predictions_is_all_correct_and_broken_ones_are_wrong() {
    let Some(dir) = spider_dir("gold self-agreement") else {
        return;
    };
    let mut dataset = spider::load(&dir, "dev").unwrap();
    dataset.truncate(200);
    let gold: Vec<String> = dataset
        .examples
        .iter()
        .map(|e| e.gold_sql.clone())
        .collect();
    let pool = pool();
    let hidden = indicatif::ProgressBar::hidden();
    let report = eval::evaluate(&dataset, &gold, &pool, EvalOptions::default(), &hidden);
    assert_eq!(report.correct, report.evaluable);
    // Reusing the pool hits the gold cache; breaking every prediction makes each one wrong.
    let cached = pool.gold_cached();
    let broken: Vec<String> = gold
        .iter()
        .map(|g| format!("{} LIMIT 0", g.trim().trim_end_matches(';')))
        .collect();
    let report = eval::evaluate(&dataset, &broken, &pool, EvalOptions::default(), &hidden);
    assert_eq!(pool.gold_cached(), cached);
    // An empty result still matches an empty gold result (Spider has many); nothing else does.
    for v in &report.verdicts {
        let ex = &dataset.examples[v.index];
        let gold_sql = exspin::sql::official::prepare_for_execution(&ex.gold_sql, false);
        let gold_rows = pool.execute(&dataset.db_path(&ex.db_id), &gold_sql);
        let gold_empty = gold_rows.rows().is_some_and(|r| r.is_empty());
        assert_eq!(v.correct, Some(gold_empty), "{}: {}", v.id, broken[v.index]);
    }
}

fn write_predictions(dir: &Path, lines: &[&str]) -> PathBuf {
    let path = dir.join("preds.txt");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[test]
fn predictions_file_must_have_one_line_per_example() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_predictions(tmp.path(), &["SELECT 1", "SELECT 2"]);
    let err = eval::read_predictions(&path, 3, Compat::Default).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("2 predictions for 3 examples"), "{msg}");
    assert!(msg.contains("preds.txt"), "{msg}");
    // An empty line inside the file is an (empty) prediction by default...
    let path = write_predictions(tmp.path(), &["SELECT 1", "", "SELECT 3", ""]);
    let lines = eval::read_predictions(&path, 3, Compat::Default).unwrap();
    assert_eq!(lines, vec!["SELECT 1", "", "SELECT 3"]);
    // ...but a session separator for the official script, which then fails.
    assert!(eval::read_predictions(&path, 3, Compat::Official).is_err());
    // Text after a tab (e.g. a db_id column) is ignored, as evaluation.py does.
    let path = write_predictions(tmp.path(), &["  SELECT 1\tconcert_singer"]);
    assert_eq!(
        eval::read_predictions(&path, 1, Compat::Default).unwrap(),
        vec!["SELECT 1"]
    );
}

#[test]
fn official_compat_replaces_value_in_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let db_dir = tmp.path().join("database").join("kv");
    std::fs::create_dir_all(&db_dir).unwrap();
    let conn = rusqlite::Connection::open(db_dir.join("kv.sqlite")).unwrap();
    conn.execute_batch(
        "CREATE TABLE kv(k INTEGER, value TEXT); INSERT INTO kv VALUES (1, 'a'), (2, 'b');",
    )
    .unwrap();
    drop(conn);
    let jsonl = tmp.path().join("data.jsonl");
    std::fs::write(
        &jsonl,
        r#"{"id": "q1", "db_id": "kv", "question": "values?", "sql": "SELECT value FROM kv ORDER BY k"}"#,
    )
    .unwrap();
    let dataset = exspin::data::jsonl::load(&jsonl, None).unwrap();
    let preds = vec!["SELECT value FROM kv ORDER BY k".to_string()];
    let hidden = indicatif::ProgressBar::hidden();
    let pool = pool();
    let default = eval::evaluate(&dataset, &preds, &pool, EvalOptions::default(), &hidden);
    assert_eq!(default.per_example(), vec![Some(true)]);
    let compat = EvalOptions {
        compat: Compat::Official,
        ..EvalOptions::default()
    };
    // "SELECT 1 FROM kv ORDER BY k" returns 1, 1: the official quirk makes it wrong.
    let official = eval::evaluate(&dataset, &preds, &pool, compat, &hidden);
    assert_eq!(official.per_example(), vec![Some(false)]);
}

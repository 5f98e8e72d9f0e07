//! Dataset loaders: real files load, bad input gets an error that names file, record and field,
//! and missing databases are counted, never dropped.

use std::path::Path;

use exspin::data::{DataError, DatasetKind, TablesFile, bird, jsonl, spider};

use crate::util::shared_data;

#[test]
fn spider_dev_and_train_load_with_missing_databases_counted() {
    let Some(data) = shared_data("spider loaders") else {
        return;
    };
    let dir = data.join("spider");
    let dev = spider::load(&dir, "dev").unwrap();
    assert_eq!(dev.kind, DatasetKind::Spider);
    assert_eq!(dev.len(), 1034);
    assert_eq!(dev.evaluable_count(), 972);
    assert_eq!(
        dev.missing_databases().into_iter().collect::<Vec<_>>(),
        vec![("wta_1".to_string(), 62)]
    );
    assert_eq!(dev.examples[0].question, "How many singers do we have?");
    assert_eq!(dev.examples[0].gold_sql, "SELECT count(*) FROM singer");
    let train = spider::load(&dir, "train").unwrap();
    assert_eq!(train.len(), 7000);
    // baseball_1 and soccer_1 are missing from the shared copy (96 train examples).
    assert_eq!(train.len() - train.evaluable_count(), 96);
    let ids: std::collections::HashSet<_> = train.examples.iter().map(|e| &e.id).collect();
    assert_eq!(ids.len(), train.len(), "ids are unique");
    let tables = TablesFile::load(&dir.join("tables.json")).unwrap();
    assert_eq!(tables.databases.len(), 166);
    let perp = tables.get("perpetrator").unwrap();
    assert_eq!(perp.column_names_original[1].1, "Perpetrator_ID");
}

#[test]
fn bird_dev_loads_evidence_and_composite_keys() {
    let Some(data) = shared_data("bird loaders") else {
        return;
    };
    let dir = data.join("bird");
    let dev = bird::load(&dir, "dev").unwrap();
    assert_eq!(dev.kind, DatasetKind::Bird);
    assert_eq!(dev.len(), 1534);
    assert_eq!(dev.evaluable_count(), 0, "no BIRD databases are shared");
    assert!(dev.examples[0].evidence.contains("Eligible free rate"));
    assert_eq!(dev.examples[0].id, "bird-dev-0");
    let mini = bird::load(&dir, "mini_dev").unwrap();
    assert_eq!(mini.len(), 500);
    let tables = TablesFile::load(&dir.join("dev_tables.json")).unwrap();
    let debit = tables.get("debit_card_specializing").unwrap();
    assert!(
        debit.primary_keys.iter().any(|k| k.columns().len() == 2),
        "a composite key"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_jsonl_lines_name_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = r#"{"id": "a", "db_id": "d", "question": "q?", "sql": "SELECT 1"}"#;
    let cases = [
        (format!("{ok}\n{{not json"), "data.jsonl:2:", "JSON"),
        (
            format!("{ok}\n{{\"db_id\": \"d\", \"sql\": \"SELECT 1\"}}"),
            "record 2",
            "`question`: is missing",
        ),
        (
            format!("{ok}\n{{\"db_id\": 3, \"question\": \"q\", \"sql\": \"x\"}}"),
            "record 2",
            "`db_id`: must be a string, found a number",
        ),
        (
            format!("{ok}\n{ok}"),
            "record 2",
            "'a' is used by an earlier line",
        ),
        (format!("{ok}\n[1, 2]"), "record 2", "not an object"),
        (
            format!("{ok}\n{{\"db_id\": \"d\", \"question\": \"  \", \"sql\": \"x\"}}"),
            "record 2",
            "`question`: is empty",
        ),
    ];
    for (text, place, what) in cases {
        let path = write(tmp.path(), "data.jsonl", &text);
        let err = jsonl::load(&path, None).unwrap_err().to_string();
        assert!(err.contains("data.jsonl"), "{err}");
        assert!(err.contains(place), "{err} should name {place}");
        assert!(err.contains(what), "{err} should say {what}");
    }
}

#[test]
fn jsonl_round_trips_and_counts_missing_databases() {
    let tmp = tempfile::tempdir().unwrap();
    let db_dir = tmp.path().join("database").join("here");
    std::fs::create_dir_all(&db_dir).unwrap();
    rusqlite::Connection::open(db_dir.join("here.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE t(a)")
        .unwrap();
    let examples = vec![
        exspin::data::Example {
            id: "1".into(),
            db_id: "here".into(),
            question: "How many?".into(),
            evidence: String::new(),
            gold_sql: "SELECT count(*) FROM t".into(),
        },
        exspin::data::Example {
            id: "2".into(),
            db_id: "gone".into(),
            question: "Where?".into(),
            evidence: "gone means absent".into(),
            gold_sql: "SELECT 1".into(),
        },
    ];
    let path = tmp.path().join("x.jsonl");
    jsonl::write(&path, &examples).unwrap();
    let loaded = jsonl::load(&path, None).unwrap();
    assert_eq!(loaded.examples, examples);
    assert_eq!(loaded.evaluable, vec![true, false]);
    assert_eq!(loaded.missing_databases().get("gone"), Some(&1));
}

#[test]
fn spider_layout_errors_say_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let err = spider::load(&tmp.path().join("nope"), "dev").unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err}");
    let err = spider::load(tmp.path(), "dev").unwrap_err().to_string();
    assert!(err.contains("dev.json"), "{err}");
    let err = spider::load(tmp.path(), "test").unwrap_err().to_string();
    assert!(
        err.contains("unknown split 'test'") && err.contains("dev, train"),
        "{err}"
    );
    write(
        tmp.path(),
        "dev.json",
        r#"[{"db_id": "a", "question": "q", "query": "SELECT 1"}, {"db_id": "a", "question": "q"}]"#,
    );
    let err = spider::load(tmp.path(), "dev").unwrap_err().to_string();
    assert!(err.contains("record 1") && err.contains("`query`"), "{err}");
    write(tmp.path(), "dev.json", "[{]");
    let err = spider::load(tmp.path(), "dev").unwrap_err().to_string();
    assert!(err.contains("dev.json:1:"), "{err}");
}

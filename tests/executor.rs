//! The sandbox against hostile SQL: every query gets its typed outcome within the time limit, and
//! the database file is byte-for-byte unchanged afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use exspin::sql::executor::{ExecutorConfig, ExecutorPool, Outcome, RejectReason, Sandbox};
use exspin::sql::value::Value;
use sha2::{Digest, Sha256};

/// A small database with two tables and a text cell holding invalid UTF-8.
fn make_db(dir: &Path) -> PathBuf {
    let path = dir.join("shop.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, price REAL);
         CREATE TABLE sale(id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES item(id), qty INTEGER);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n LIMIT 2000)
           INSERT INTO item SELECT x, 'item ' || x, x * 1.5 FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n LIMIT 2000)
           INSERT INTO sale SELECT x, (x % 50) + 1, x % 7 FROM n;
         INSERT INTO item VALUES (9999, CAST(x'ff41c3a9' AS TEXT), 0);",
    )
    .unwrap();
    drop(conn);
    path
}

fn checksum(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn config(timeout_ms: u64) -> ExecutorConfig {
    ExecutorConfig {
        timeout: Duration::from_millis(timeout_ms),
        max_rows: 10_000,
        workers: 2,
        ..ExecutorConfig::default()
    }
}

/// The outcome without its rows (a failed assertion must not print a gigabyte).
fn short(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Rows { rows, .. } => format!("rows ({} rows)", rows.len()),
        other => format!("{other:?}"),
    }
}

fn rejected(outcome: &Outcome) -> Option<RejectReason> {
    match outcome {
        Outcome::Rejected { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[test]
fn hostile_queries_get_typed_outcomes_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = make_db(dir.path());
    let before = checksum(&db);
    let outside = dir.path().join("outside.db");
    let outside_sql = outside.display().to_string();
    let sandbox = Sandbox::open(&db).unwrap();
    let cfg = config(1_000);
    use RejectReason::*;
    let cases: Vec<(String, Option<RejectReason>)> = vec![
        ("INSERT INTO item VALUES (5000, 'x', 1)".into(), Some(Write)),
        ("UPDATE item SET price = 0".into(), Some(Write)),
        ("DELETE FROM sale".into(), Some(Write)),
        ("DROP TABLE sale".into(), Some(Write)),
        ("CREATE TABLE evil(a)".into(), Some(Write)),
        ("CREATE TEMP TABLE evil(a)".into(), Some(Write)),
        ("ALTER TABLE item ADD COLUMN x".into(), Some(Write)),
        ("CREATE INDEX ix ON item(name)".into(), Some(Write)),
        ("VACUUM".into(), Some(Write)),
        (format!("VACUUM INTO '{outside_sql}'"), Some(Write)),
        ("BEGIN IMMEDIATE".into(), Some(Write)),
        ("REINDEX".into(), Some(Write)),
        ("ANALYZE".into(), Some(Write)),
        (
            "WITH x AS (SELECT 1, 'a', 2.0) INSERT INTO item SELECT * FROM x".into(),
            Some(Write),
        ),
        (
            format!("ATTACH DATABASE '{outside_sql}' AS other"),
            Some(Attach),
        ),
        ("DETACH DATABASE main".into(), Some(Attach)),
        ("PRAGMA journal_mode = WAL".into(), Some(Pragma)),
        ("PRAGMA writable_schema = ON".into(), Some(Pragma)),
        ("PRAGMA user_version = 7".into(), Some(Pragma)),
        ("PRAGMA query_only = 0".into(), Some(Pragma)),
        (
            "SELECT load_extension('/tmp/evil.so')".into(),
            Some(Extension),
        ),
        ("SELECT fts3_tokenizer('simple')".into(), Some(Extension)),
        ("SELECT 1; DROP TABLE item".into(), Some(MultipleStatements)),
        ("SELECT 1; SELECT 2".into(), Some(MultipleStatements)),
        ("".into(), Some(Empty)),
        ("  -- only a comment".into(), Some(Empty)),
    ];
    for (sql, want) in &cases {
        let outcome = sandbox.run(sql, &cfg);
        assert_eq!(
            rejected(&outcome),
            *want,
            "{sql:?} gave {}",
            short(&outcome)
        );
    }
    // Read-only pragmas and trailing semicolons/comments are fine.
    for sql in [
        "PRAGMA table_info(item)",
        "SELECT count(*) FROM item; -- done",
        "SELECT name FROM sqlite_master",
    ] {
        let outcome = sandbox.run(sql, &cfg);
        assert!(outcome.rows().is_some(), "{sql:?} gave {}", short(&outcome));
    }
    // Errors are errors, not panics.
    for sql in [
        "SELEC * FRM item",
        "SELECT * FROM no_such_table",
        "SELECT * FROM item WHERE id = ?",
        "SELECT zeroblob(1000000000)",
        "SELECT writefile('/tmp/exspin-evil', 'x')",
        "SELECT 'unterminated",
    ] {
        let outcome = sandbox.run(sql, &cfg);
        assert!(
            matches!(outcome, Outcome::Error { .. } | Outcome::Rejected { .. }),
            "{sql:?} gave {}",
            short(&outcome)
        );
    }
    // Non-UTF-8 text comes back with the invalid bytes dropped, as Python's decode(errors="ignore").
    let outcome = sandbox.run("SELECT name FROM item WHERE id = 9999", &cfg);
    assert_eq!(outcome.rows().unwrap()[0][0], Value::Text("Aé".into()));
    let outcome = sandbox.run("SELECT 'naïve — ☃'", &cfg);
    assert_eq!(
        outcome.rows().unwrap()[0][0],
        Value::Text("naïve — ☃".into())
    );

    drop(sandbox);
    assert_eq!(checksum(&db), before, "the database file changed");
    assert!(!outside.exists(), "a file outside the dataset was written");
    assert!(!Path::new("/tmp/exspin-evil").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "shop.sqlite")
        .collect();
    assert!(
        leftovers.is_empty(),
        "journal or other files appeared: {leftovers:?}"
    );
}

#[test]
fn runaway_queries_stop_at_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = make_db(dir.path());
    let sandbox = Sandbox::open(&db).unwrap();
    let limit_ms = 500;
    let cfg = config(limit_ms);
    for sql in [
        "SELECT count(*) FROM item a, item b, item c, item d",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        "SELECT max(a.name || b.name) FROM item a JOIN item b ON a.price > b.price JOIN sale s",
    ] {
        let started = Instant::now();
        let outcome = sandbox.run(sql, &cfg);
        let elapsed = started.elapsed();
        assert!(
            matches!(outcome, Outcome::Timeout { limit_ms: 500 }),
            "{sql} gave {}",
            short(&outcome)
        );
        // A generous bound: this checks the limit is enforced, not how fast.
        assert!(
            elapsed < Duration::from_millis(limit_ms) + Duration::from_secs(5),
            "{sql} ran {elapsed:?}"
        );
        // The connection is still usable afterwards.
        assert!(sandbox.run("SELECT 1", &cfg).rows().is_some());
    }
}

#[test]
fn row_cap_gives_too_many_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = make_db(dir.path());
    let sandbox = Sandbox::open(&db).unwrap();
    let cfg = ExecutorConfig {
        max_rows: 1_000,
        ..config(5_000)
    };
    let outcome = sandbox.run("SELECT * FROM item", &cfg);
    assert!(
        matches!(outcome, Outcome::TooManyRows { limit: 1_000 }),
        "{}",
        short(&outcome)
    );
    let outcome = sandbox.run("SELECT * FROM item LIMIT 1000", &cfg);
    assert_eq!(outcome.rows().map(Vec::len), Some(1_000));
}

#[test]
fn opening_a_missing_database_is_a_clear_error() {
    let err = Sandbox::open(Path::new("/nonexistent/x.sqlite"))
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("/nonexistent/x.sqlite"), "{err}");
}

#[test]
fn pool_matches_sequential_runs_and_caches_gold() {
    let dir = tempfile::tempdir().unwrap();
    let db = make_db(dir.path());
    let queries: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => format!("SELECT name FROM item WHERE id = {}", i + 1),
            1 => format!("SELECT count(*) FROM sale WHERE qty = {}", i % 7),
            2 => "SELECT * FROM nope".to_string(),
            _ => format!("DELETE FROM item WHERE id = {i}"),
        })
        .collect();
    let sandbox = Sandbox::open(&db).unwrap();
    let cfg = ExecutorConfig {
        queue_capacity: 8, // smaller than the batch: submission must not deadlock
        ..config(5_000)
    };
    let sequential: Vec<String> = queries
        .iter()
        .map(|q| serde_json::to_string(&sandbox.run(q, &cfg)).unwrap())
        .collect();
    let pool = ExecutorPool::new(cfg);
    let parallel: Vec<String> = pool
        .execute_many(queries.iter().map(|q| (db.as_path(), q.as_str())))
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect();
    assert_eq!(parallel, sequential);
    let a = pool.gold("ex-1", &db, "SELECT count(*) FROM item");
    let b = pool.gold("ex-1", &db, "SELECT count(*) FROM item");
    assert!(
        std::sync::Arc::ptr_eq(&a, &b),
        "second gold lookup must hit the cache"
    );
    assert_eq!(pool.gold_cached(), 1);
    assert_eq!(a.rows().unwrap()[0][0], Value::Integer(2001));
}

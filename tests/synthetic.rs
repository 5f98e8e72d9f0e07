//! The synthetic default dataset: determinism, Spider layout, executable gold, intended types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use exspin::data::spider;
use exspin::data::synthetic::{SynthConfig, generate};
use exspin::sql::classify::{KeyInfo, QueryType, classify};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

/// Every file under `dir` (relative path → SHA-256), so two outputs compare byte for byte.
fn hash_tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, hex::encode(Sha256::digest(&bytes)));
            }
        }
    }
    out
}

/// The default dataset, generated once for the tests that only read it.
fn default_dataset() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let summary = generate(&SynthConfig::default(), dir.path()).unwrap();
        eprintln!(
            "synthetic default generated in {:.2?}: {}",
            started.elapsed(),
            serde_json::to_string(&summary.splits).unwrap()
        );
        dir
    })
    .path()
}

#[test]
fn synthetic_same_seed_same_bytes_other_seed_other_bytes() {
    let config = SynthConfig {
        train_examples: 120,
        dev_examples: 60,
        ..SynthConfig::default()
    };
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(&config, a.path()).unwrap();
    generate(&config, b.path()).unwrap();
    let other = SynthConfig {
        seed: config.seed + 1,
        ..config.clone()
    };
    generate(&other, c.path()).unwrap();
    let (ha, hb, hc) = (
        hash_tree(a.path()),
        hash_tree(b.path()),
        hash_tree(c.path()),
    );
    // tables.json, two splits, their two gold files and eight databases; no temporary file
    // left behind.
    assert_eq!(ha.len(), 13, "{:?}", ha.keys());
    assert!(ha.keys().all(|p| !p.to_string_lossy().contains(".tmp")));
    assert_eq!(ha, hb, "same seed must give identical bytes");
    assert_eq!(ha.keys().collect::<Vec<_>>(), hc.keys().collect::<Vec<_>>());
    for (file, hash) in &ha {
        // The schema does not depend on the seed; every data file does.
        if file != Path::new("tables.json") {
            assert_ne!(
                hash,
                &hc[file],
                "{} did not change with the seed",
                file.display()
            );
        }
    }
    // Regenerating into a used folder replaces the files with the same bytes.
    generate(&config, a.path()).unwrap();
    assert_eq!(hash_tree(a.path()), hb);
}

#[test]
fn synthetic_loads_as_spider_with_disjoint_databases() {
    let dir = default_dataset();
    let train = spider::load(dir, "train").unwrap();
    let dev = spider::load(dir, "dev").unwrap();
    assert_eq!(train.len(), SynthConfig::default().train_examples);
    assert_eq!(dev.len(), SynthConfig::default().dev_examples);
    assert_eq!(train.evaluable_count(), train.len());
    assert_eq!(dev.evaluable_count(), dev.len());
    let dbs = |d: &exspin::data::Dataset| {
        d.examples
            .iter()
            .map(|e| e.db_id.clone())
            .collect::<BTreeSet<_>>()
    };
    let (train_dbs, dev_dbs) = (dbs(&train), dbs(&dev));
    assert_eq!(train_dbs.len(), 5, "{train_dbs:?}");
    assert_eq!(dev_dbs.len(), 3, "{dev_dbs:?}");
    assert!(
        train_dbs.is_disjoint(&dev_dbs),
        "{train_dbs:?} vs {dev_dbs:?}"
    );
    let tables = exspin::data::TablesFile::load(&dir.join("tables.json")).unwrap();
    assert_eq!(tables.databases.len(), 8);
    for schema in tables.databases.values() {
        assert!(
            (3..=5).contains(&schema.table_names.len()),
            "{}",
            schema.db_id
        );
        assert_eq!(
            schema.primary_keys.len(),
            schema.table_names.len(),
            "{}",
            schema.db_id
        );
        assert!(!schema.foreign_keys.is_empty(), "{}", schema.db_id);
        for ty in &schema.column_types {
            assert!(["text", "number", "time"].contains(&ty.as_str()), "{ty}");
        }
        // The declared keys are the ones the SQLite file has.
        let path = dir
            .join("database")
            .join(&schema.db_id)
            .join(format!("{}.sqlite", schema.db_id));
        assert_eq!(
            schema.key_info(),
            KeyInfo::from_sqlite(&path).unwrap(),
            "{}",
            schema.db_id
        );
    }
}

/// `(db_id, query, query_type)` of every record of a split file.
fn records(dir: &Path, file: &str) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let values: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    values
        .iter()
        .map(|v| {
            let s = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("{file}: no {k}"))
                    .to_string()
            };
            (s("db_id"), s("query"), s("query_type"))
        })
        .collect()
}

#[test]
fn synthetic_gold_runs_returns_rows_and_classifies_as_intended() {
    let dir = default_dataset();
    let mut keys_by_db = BTreeMap::new();
    let mut total = 0usize;
    let mut agree = 0usize;
    let mut disagreements = Vec::new();
    for (split, file) in [("train", "train_spider.json"), ("dev", "dev.json")] {
        let mut types = BTreeSet::new();
        for (db_id, query, intended) in records(dir, file) {
            let path = dir
                .join("database")
                .join(&db_id)
                .join(format!("{db_id}.sqlite"));
            let conn =
                Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            let mut stmt = conn
                .prepare(&query)
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            let has_row = stmt.query([]).unwrap().next().unwrap().is_some();
            assert!(has_row, "{split}: no rows: {query}");
            let keys = keys_by_db
                .entry(db_id.clone())
                .or_insert_with(|| KeyInfo::from_sqlite(&path).unwrap());
            let intended =
                QueryType::from_name(&intended).unwrap_or_else(|| panic!("type {intended}"));
            types.insert(intended);
            total += 1;
            let got = classify(&query, keys);
            if got == intended {
                agree += 1;
            } else {
                disagreements.push(format!("{intended} classified {got}: {query}"));
            }
        }
        assert_eq!(
            types,
            QueryType::SIX.into_iter().collect(),
            "{split} lacks a type"
        );
    }
    let rate = agree as f64 / total as f64;
    eprintln!(
        "synthetic: classify agrees with the intended type on {agree}/{total} ({:.2}%)",
        100.0 * rate
    );
    for d in disagreements.iter().take(10) {
        eprintln!("  {d}");
    }
    assert!(rate >= 0.98, "agreement {rate:.4} below 98%");
}

#[test]
fn synthetic_config_is_strict_and_validated() {
    let err =
        serde_json::from_str::<SynthConfig>(r#"{"seed": 1, "train_exemples": 5}"#).unwrap_err();
    assert!(err.to_string().contains("train_exemples"), "{err}");
    let partial: SynthConfig = serde_json::from_str(r#"{"seed": 7}"#).unwrap();
    assert_eq!(
        partial,
        SynthConfig {
            seed: 7,
            ..SynthConfig::default()
        }
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = SynthConfig {
        dev_databases: 8,
        ..SynthConfig::default()
    };
    let err = generate(&bad, dir.path()).unwrap_err();
    assert!(err.to_string().contains("dev_databases"), "{err}");
}

//! The six query types on the real Spider dev set.

use std::collections::BTreeMap;

use exspin::data::{TablesFile, spider};
use exspin::sql::classify::{KeyInfo, QueryType, classify};

use crate::util;

#[test]
fn classify_spider_dev_distribution() {
    let Some(dir) = util::spider_dir("classify_spider_dev_distribution") else {
        return;
    };
    let dev = spider::load(&dir, "dev").unwrap();
    let tables = TablesFile::load(&dir.join("tables.json")).unwrap();
    let mut keys = BTreeMap::new();
    let mut counts: BTreeMap<QueryType, usize> = BTreeMap::new();
    let mut sqlite_agree = 0usize;
    let mut samples: BTreeMap<QueryType, Vec<&str>> = BTreeMap::new();
    for ex in &dev.examples {
        let schema = tables
            .get(&ex.db_id)
            .unwrap_or_else(|| panic!("no schema for {}", ex.db_id));
        let (from_schema, from_sqlite) = keys.entry(ex.db_id.clone()).or_insert_with(|| {
            let path = dev.db_path(&ex.db_id);
            (schema.key_info(), KeyInfo::from_sqlite(&path).ok())
        });
        let ty = classify(&ex.gold_sql, from_schema);
        if from_sqlite
            .as_ref()
            .is_some_and(|k| classify(&ex.gold_sql, k) == ty)
        {
            sqlite_agree += 1;
        }
        *counts.entry(ty).or_insert(0) += 1;
        let sample = samples.entry(ty).or_default();
        if sample.len() < 2 && !sample.contains(&ex.gold_sql.as_str()) {
            sample.push(&ex.gold_sql);
        }
    }
    eprintln!("Spider dev, {} gold queries:", dev.len());
    for ty in QueryType::ALL {
        let n = counts.get(&ty).copied().unwrap_or(0);
        eprintln!(
            "  {:<24} {n:>5} ({:.1}%)",
            ty.name(),
            100.0 * n as f64 / dev.len() as f64
        );
        for sql in samples.get(&ty).into_iter().flatten() {
            eprintln!("      e.g. {sql}");
        }
    }
    eprintln!("  keys from the SQLite files give the same type for {sqlite_agree} queries");
    assert_eq!(counts.values().sum::<usize>(), dev.len());
    for ty in QueryType::ALL {
        assert!(
            counts.get(&ty).copied().unwrap_or(0) > 0,
            "no {ty} query in Spider dev"
        );
    }
}

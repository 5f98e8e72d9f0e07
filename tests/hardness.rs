//! Spider hardness levels: the text parser against Spider's own parsed queries.

use std::collections::BTreeMap;

use exspin::sql::hardness::{
    Components, Hardness, SpiderSql, hardness, hardness_from_parsed, parse,
};

use crate::util::spider_dir;

fn dev_examples(what: &str) -> Option<Vec<serde_json::Value>> {
    let dir = spider_dir(what)?;
    let text = std::fs::read_to_string(dir.join("dev.json")).expect("read dev.json");
    let examples: Vec<serde_json::Value> = serde_json::from_str(&text).expect("parse dev.json");
    assert_eq!(examples.len(), 1034, "Spider dev has 1034 examples");
    Some(examples)
}

/// The parsed form shipped with Spider dev gives the published split (the Spider paper's dev
/// counts, also printed by the test-suite evaluation): easy 248, medium 446, hard 174, extra 166.
#[test]
fn hardness_dev_parsed_totals_match_published_split() {
    let Some(examples) = dev_examples("hardness_dev_parsed_totals_match_published_split") else {
        return;
    };
    let mut totals: BTreeMap<Hardness, usize> = BTreeMap::new();
    for (i, ex) in examples.iter().enumerate() {
        let level =
            hardness_from_parsed(&ex["sql"]).unwrap_or_else(|e| panic!("dev example {i}: {e}"));
        *totals.entry(level).or_default() += 1;
    }
    let published = BTreeMap::from([
        (Hardness::Easy, 248),
        (Hardness::Medium, 446),
        (Hardness::Hard, 174),
        (Hardness::Extra, 166),
    ]);
    assert_eq!(totals, published);
}

/// The text parser reproduces, from the query text alone, the level of (nearly) every dev query,
/// and the three counts behind it.
#[test]
fn hardness_dev_text_agrees_with_parsed() {
    let Some(examples) = dev_examples("hardness_dev_text_agrees_with_parsed") else {
        return;
    };
    let (mut same_level, mut same_counts) = (0, 0);
    let mut disagreements = Vec::new();
    for (i, ex) in examples.iter().enumerate() {
        let query = ex["query"].as_str().expect("query is a string");
        let official = SpiderSql::from_parsed(&ex["sql"])
            .map(|s| Components::of(&s))
            .unwrap_or_else(|e| panic!("dev example {i}: {e}"));
        match parse(query).map(|s| Components::of(&s)) {
            Ok(ours) => {
                same_level += usize::from(ours.level() == official.level());
                same_counts += usize::from(ours == official);
                if ours != official {
                    disagreements
                        .push(format!("#{i}: text {ours:?}, parsed {official:?}: {query}"));
                }
            }
            Err(e) => disagreements.push(format!(
                "#{i}: text error ({e}), parsed {official:?}: {query}"
            )),
        }
        // The convenience entry points agree with the two steps.
        assert_eq!(hardness_from_parsed(&ex["sql"]), Ok(official.level()));
        if let Ok(level) = hardness(query) {
            assert_eq!(parse(query).map(|s| Components::of(&s).level()), Ok(level));
        }
    }
    for d in &disagreements {
        eprintln!("DISAGREE {d}");
    }
    let n = examples.len();
    eprintln!("hardness: same level {same_level}/{n}, same three counts {same_counts}/{n}");
    assert!(same_level >= 1030, "only {same_level}/{n} dev levels agree");
}

/// Every Spider train gold query was parsed by `get_sql` (the released files ship its parse), so
/// the text parser should read every one of them too.
#[test]
fn hardness_reads_every_train_gold_query() {
    let Some(dir) = spider_dir("hardness_reads_every_train_gold_query") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("train_gold.sql")).expect("read train_gold.sql");
    let mut failures = Vec::new();
    let mut totals: BTreeMap<Hardness, usize> = BTreeMap::new();
    let mut n = 0;
    for (line_no, line) in text.lines().enumerate() {
        let query = line.split('\t').next().unwrap_or_default();
        if query.trim().is_empty() {
            continue;
        }
        n += 1;
        match hardness(query) {
            Ok(level) => *totals.entry(level).or_default() += 1,
            Err(e) => failures.push(format!("line {}: {e}: {query}", line_no + 1)),
        }
    }
    for f in &failures {
        eprintln!("UNREAD {f}");
    }
    eprintln!(
        "hardness: train gold {n} queries, levels {totals:?}, unread {}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {n} train gold queries unread",
        failures.len()
    );
}

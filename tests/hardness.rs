//! Spider hardness levels: the text parser against Spider's own parsed queries.

use std::collections::BTreeMap;

use exspin::sql::hardness::{Hardness, hardness, hardness_from_parsed};

use crate::util::spider_dir;

fn dev_examples(what: &str) -> Option<Vec<serde_json::Value>> {
    let dir = spider_dir(what)?;
    let text = std::fs::read_to_string(dir.join("dev.json")).expect("read dev.json");
    let examples: Vec<serde_json::Value> = serde_json::from_str(&text).expect("parse dev.json");
    assert_eq!(examples.len(), 1034, "Spider dev has 1034 examples");
    Some(examples)
}

/// The parsed form shipped with Spider dev gives the published split (Yu et al. 2018, and the
/// test-suite evaluation's per-level counts): easy 248, medium 446, hard 174, extra 166.
#[test]
fn hardness_dev_parsed_totals_match_published_split() {
    let Some(examples) = dev_examples("hardness_dev_parsed_totals_match_published_split") else {
        return;
    };
    let mut totals: BTreeMap<Hardness, usize> = BTreeMap::new();
    for (i, ex) in examples.iter().enumerate() {
        let level = hardness_from_parsed(&ex["sql"])
            .unwrap_or_else(|e| panic!("dev example {i}: {e}"));
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

/// The text parser reproduces the level of (nearly) every dev query from its text alone.
#[test]
fn hardness_dev_text_agrees_with_parsed() {
    let Some(examples) = dev_examples("hardness_dev_text_agrees_with_parsed") else {
        return;
    };
    let mut agree = 0;
    let mut disagreements = Vec::new();
    for (i, ex) in examples.iter().enumerate() {
        let query = ex["query"].as_str().expect("query is a string");
        let official = hardness_from_parsed(&ex["sql"])
            .unwrap_or_else(|e| panic!("dev example {i}: {e}"));
        match hardness(query) {
            Ok(level) if level == official => agree += 1,
            Ok(level) => disagreements.push(format!("#{i}: text {level}, parsed {official}: {query}")),
            Err(e) => disagreements.push(format!("#{i}: text error ({e}), parsed {official}: {query}")),
        }
    }
    for d in &disagreements {
        eprintln!("DISAGREE {d}");
    }
    eprintln!("hardness: text agrees with parsed on {agree}/{}", examples.len());
    assert!(agree >= 1030, "only {agree}/1034 agree");
}

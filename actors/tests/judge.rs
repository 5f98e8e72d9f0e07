//! One judge: no file of the runtime compares result rows itself (the per-example agreement of
//! the runtime's judge with `exspin eval` is a unit test beside it,
//! `src/logic/judge_tests.rs`).

use std::path::Path;

/// No file of the runtime compares result rows itself: only `exspin::eval::Judge` does.
#[test]
fn no_runtime_file_compares_rows_itself() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for needle in [
                    "results_match",
                    "spider_result_eq",
                    "bird_result_eq",
                    "order_matters",
                    "prepare_for_execution",
                ] {
                    if text.contains(needle) {
                        offenders.push(format!("{} uses {needle}", path.display()));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

//! Result comparison with the official semantics.
//!
//! * **Spider** (`exec_eval.result_eq` of taoyds/test-suite-sql-eval): rows compared as a multiset,
//!   as a list when the gold query has ORDER BY; the columns of the prediction may be permuted.
//!   Its quick-rejection step sorts each row's cells by `str(x) + str(type(x))`; that is
//!   reproduced exactly, because it decides a few edge cases (`1` vs `1.0`).
//! * **BIRD** (`evaluation.py` of bird-bench): `set(predicted) == set(gold)`, column order fixed.
//!
//! Cells compare with Python's equality (`1 == 1.0`), see [`Value`].

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::value::Value;

/// Which benchmark's equality to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComparisonRule {
    Spider,
    Bird,
}

/// True when `pred` denotes the same result as `gold` under `rule`. `order_matters` is only read
/// by the Spider rule (the official script sets it when the gold SQL contains `order by`).
pub fn results_match(
    rule: ComparisonRule,
    gold: &[Vec<Value>],
    pred: &[Vec<Value>],
    order_matters: bool,
) -> bool {
    match rule {
        ComparisonRule::Spider => spider_result_eq(gold, pred, order_matters),
        ComparisonRule::Bird => bird_result_eq(gold, pred),
    }
}

/// BIRD: set equality of rows.
pub fn bird_result_eq(gold: &[Vec<Value>], pred: &[Vec<Value>]) -> bool {
    let g: HashSet<&Vec<Value>> = gold.iter().collect();
    let p: HashSet<&Vec<Value>> = pred.iter().collect();
    g == p
}

/// Spider's `result_eq(result1=gold, result2=pred, order_matters)`.
pub fn spider_result_eq(gold: &[Vec<Value>], pred: &[Vec<Value>], order_matters: bool) -> bool {
    if gold.is_empty() && pred.is_empty() {
        return true;
    }
    if gold.len() != pred.len() {
        return false;
    }
    let width = gold[0].len();
    if pred[0].len() != width {
        return false;
    }
    // Rows of unequal width cannot come from SQLite, but never index out of bounds on them.
    if gold.iter().chain(pred).any(|r| r.len() != width) {
        return false;
    }
    if !quick_accept(gold, pred, order_matters) {
        return false;
    }
    if width == 1 {
        return rows_equal(gold, pred, order_matters);
    }
    // Which gold column can each prediction column stand for? A permutation can only succeed if
    // every value of the prediction column occurs in the gold column (the official script prunes
    // with 20 sampled rows; pruning with all rows keeps exactly the permutations that can pass).
    let gold_columns: Vec<HashSet<&Value>> = (0..width)
        .map(|c| gold.iter().map(|r| &r[c]).collect())
        .collect();
    let candidates: Vec<Vec<usize>> = (0..width)
        .map(|gc| {
            (0..width)
                .filter(|&pc| pred.iter().all(|r| gold_columns[gc].contains(&r[pc])))
                .collect()
        })
        .collect();
    // Prediction columns that are equal cell by cell are interchangeable: trying one of each
    // such class avoids a factorial blow-up on results with many identical columns.
    let class_of: Vec<usize> = (0..width)
        .map(|pc| {
            (0..pc)
                .find(|&other| pred.iter().all(|r| r[other] == r[pc]))
                .unwrap_or(pc)
        })
        .collect();
    let mut perm = Vec::with_capacity(width);
    let mut used = vec![false; width];
    search_permutation(
        gold,
        pred,
        order_matters,
        &candidates,
        &class_of,
        &mut perm,
        &mut used,
    )
}

fn search_permutation(
    gold: &[Vec<Value>],
    pred: &[Vec<Value>],
    order_matters: bool,
    candidates: &[Vec<usize>],
    class_of: &[usize],
    perm: &mut Vec<usize>,
    used: &mut [bool],
) -> bool {
    let gc = perm.len();
    if gc == candidates.len() {
        let permuted: Vec<Vec<Value>> = pred
            .iter()
            .map(|row| perm.iter().map(|&pc| row[pc].clone()).collect())
            .collect();
        return rows_equal(gold, &permuted, order_matters);
    }
    let mut tried_classes = HashSet::new();
    for &pc in &candidates[gc] {
        if used[pc] || !tried_classes.insert(class_of[pc]) {
            continue;
        }
        used[pc] = true;
        perm.push(pc);
        let found = search_permutation(gold, pred, order_matters, candidates, class_of, perm, used);
        perm.pop();
        used[pc] = false;
        if found {
            return true;
        }
    }
    false
}

/// `result1 == result2` (ordered) or set equality plus multiset equality (unordered).
fn rows_equal(gold: &[Vec<Value>], pred: &[Vec<Value>], order_matters: bool) -> bool {
    if order_matters {
        gold == pred
    } else {
        multiset(gold) == multiset(pred)
    }
}

fn multiset(rows: &[Vec<Value>]) -> HashMap<&Vec<Value>, usize> {
    let mut counts = HashMap::with_capacity(rows.len());
    for r in rows {
        *counts.entry(r).or_insert(0) += 1;
    }
    counts
}

/// The official `quick_rej` (it returns True when the results *may* be equal): each row's cells
/// sorted by Python's `str(x) + str(type(x))`, then compared as lists (ordered) or sets.
fn quick_accept(gold: &[Vec<Value>], pred: &[Vec<Value>], order_matters: bool) -> bool {
    let g: Vec<Vec<&Value>> = gold.iter().map(|r| unorder_row(r)).collect();
    let p: Vec<Vec<&Value>> = pred.iter().map(|r| unorder_row(r)).collect();
    if order_matters {
        g == p
    } else {
        let gs: HashSet<&Vec<&Value>> = g.iter().collect();
        let ps: HashSet<&Vec<&Value>> = p.iter().collect();
        gs == ps
    }
}

fn unorder_row(row: &[Value]) -> Vec<&Value> {
    let mut keyed: Vec<(String, &Value)> = row.iter().map(|v| (v.python_sort_key(), v)).collect();
    // Python's sort is stable; so is sort_by.
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Value::*;

    fn t(s: &str) -> Value {
        Text(s.into())
    }

    #[test]
    fn empty_results_are_equal() {
        assert!(spider_result_eq(&[], &[], true));
        assert!(!spider_result_eq(&[vec![Integer(1)]], &[], false));
    }

    #[test]
    fn columns_may_be_permuted() {
        let gold = vec![vec![t("a"), Integer(1)], vec![t("b"), Integer(2)]];
        let pred = vec![vec![Integer(2), t("b")], vec![Integer(1), t("a")]];
        assert!(spider_result_eq(&gold, &pred, false));
        // ...but the row order matters once the gold has ORDER BY.
        assert!(!spider_result_eq(&gold, &pred, true));
        // BIRD keeps column order.
        assert!(!bird_result_eq(&gold, &pred));
    }

    #[test]
    fn multiset_not_set_for_spider_set_for_bird() {
        let gold = vec![vec![Integer(1)], vec![Integer(1)], vec![Integer(2)]];
        let pred = vec![vec![Integer(1)], vec![Integer(2)], vec![Integer(2)]];
        assert!(!spider_result_eq(&gold, &pred, false));
        assert!(bird_result_eq(&gold, &pred));
    }

    #[test]
    fn permutation_must_be_consistent_across_rows() {
        // Each row is a permutation of the other's, but no single column mapping works.
        let gold = vec![vec![Integer(1), Integer(2)], vec![Integer(3), Integer(4)]];
        let pred = vec![vec![Integer(1), Integer(2)], vec![Integer(4), Integer(3)]];
        assert!(!spider_result_eq(&gold, &pred, false));
    }

    #[test]
    fn int_and_float_quirk_of_quick_rejection() {
        // Python: sorted((1, 10), key=str+type) -> (10, 1); sorted((1.0, 10)) -> (1.0, 10).
        // The sorted rows differ, so the official script rejects although 1 == 1.0.
        let gold = vec![vec![Integer(1), Integer(10)]];
        let pred = vec![vec![Real(1.0), Integer(10)]];
        assert!(!spider_result_eq(&gold, &pred, false));
        // Where sorting does not separate them, 1 == 1.0 holds.
        let gold = vec![vec![Integer(5), t("x")]];
        let pred = vec![vec![Real(5.0), t("x")]];
        assert!(spider_result_eq(&gold, &pred, false));
    }

    #[test]
    fn many_identical_columns_do_not_explode() {
        let row: Vec<Value> = (0..12).map(|_| Null).collect();
        let gold = vec![row.clone(); 3];
        let mut pred = gold.clone();
        assert!(spider_result_eq(&gold, &pred, false));
        pred[0][5] = Integer(1);
        assert!(!spider_result_eq(&gold, &pred, false));
    }
}

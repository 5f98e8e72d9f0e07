//! Properties of result comparison (proptest): the laws the official semantics imply.

use exspin::sql::compare::{bird_result_eq, spider_result_eq};
use exspin::sql::value::Value;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        (-3i64..4).prop_map(Value::Integer),
        (-6i64..7).prop_map(|h| Value::Real(h as f64 / 2.0)),
        prop::sample::select(vec!["a", "b", "ab", "É"]).prop_map(|s| Value::Text(s.into())),
    ]
}

/// A result: 1..5 columns, 0..8 rows.
fn result() -> impl Strategy<Value = Vec<Vec<Value>>> {
    (1usize..5).prop_flat_map(|w| prop::collection::vec(prop::collection::vec(value(), w), 0..8))
}

proptest! {
    #[test]
    fn equal_to_itself(r in result(), ordered in any::<bool>()) {
        prop_assert!(spider_result_eq(&r, &r, ordered));
        prop_assert!(bird_result_eq(&r, &r));
    }

    #[test]
    fn row_order_ignored_unless_ordered(r in result(), seed in any::<u64>()) {
        let mut shuffled = r.clone();
        // Deterministic shuffle from the seed.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert!(spider_result_eq(&r, &shuffled, false));
        prop_assert!(bird_result_eq(&r, &shuffled));
        // With one column no column permutation can undo a change of row order.
        if shuffled != r && r[0].len() == 1 {
            prop_assert!(!spider_result_eq(&r, &shuffled, true));
        }
    }

    #[test]
    fn column_permutation_ignored_by_spider(r in result(), rot in 0usize..5) {
        prop_assume!(!r.is_empty());
        let w = r[0].len();
        let permuted: Vec<Vec<Value>> =
            r.iter().map(|row| (0..w).map(|c| row[(c + rot) % w].clone()).collect()).collect();
        prop_assert!(spider_result_eq(&r, &permuted, false));
        prop_assert!(spider_result_eq(&r, &permuted, true));
    }

    #[test]
    fn a_new_value_breaks_equality(r in result(), row in any::<prop::sample::Index>(), col in any::<prop::sample::Index>()) {
        prop_assume!(!r.is_empty());
        let mut changed = r.clone();
        let i = row.index(r.len());
        let j = col.index(r[0].len());
        changed[i][j] = Value::Text("never seen".into());
        prop_assert!(!spider_result_eq(&r, &changed, false));
        prop_assert!(!spider_result_eq(&changed, &r, false));
        prop_assert!(!bird_result_eq(&r, &changed));
    }

    #[test]
    fn different_row_counts_differ_for_spider(r in result(), extra in value()) {
        let mut longer = r.clone();
        let w = r.first().map_or(1, Vec::len);
        longer.push(vec![extra; w]);
        prop_assert!(!spider_result_eq(&r, &longer, false));
    }

    #[test]
    fn integral_floats_equal_ints_in_one_column(xs in prop::collection::vec(-50i64..50, 1..10)) {
        let ints: Vec<Vec<Value>> = xs.iter().map(|&x| vec![Value::Integer(x)]).collect();
        let floats: Vec<Vec<Value>> = xs.iter().map(|&x| vec![Value::Real(x as f64)]).collect();
        prop_assert!(spider_result_eq(&ints, &floats, true));
        prop_assert!(bird_result_eq(&ints, &floats));
    }
}

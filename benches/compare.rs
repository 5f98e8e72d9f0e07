//! Result comparison cost on a typical large result (10,000 rows × 4 columns, shuffled rows and
//! permuted columns). BIRD's plain set equality runs in the same process as the baseline: the
//! Spider rule's extra work (quick rejection with Python sort keys, column-permutation search)
//! is the ratio between the two.
//!
//! `cargo bench --bench compare`

use criterion::{Criterion, criterion_group, criterion_main};
use exspin::sql::compare::{bird_result_eq, spider_result_eq};
use exspin::sql::value::Value;

fn results() -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    let gold: Vec<Vec<Value>> = (0..10_000i64)
        .map(|i| {
            vec![
                Value::Integer(i),
                Value::Text(format!("name {}", i % 977)),
                Value::Real(i as f64 * 0.25),
                Value::Integer(i % 13),
            ]
        })
        .collect();
    let mut pred: Vec<Vec<Value>> = gold
        .iter()
        .map(|r| vec![r[2].clone(), r[0].clone(), r[3].clone(), r[1].clone()])
        .collect();
    pred.reverse();
    (gold, pred)
}

fn bench(c: &mut Criterion) {
    let (gold, pred) = results();
    let mut group = c.benchmark_group("compare_10k_rows");
    group.sample_size(20);
    group.bench_function("bird_set_equality_baseline", |b| {
        let same_cols: Vec<Vec<Value>> = gold.iter().rev().cloned().collect();
        b.iter(|| assert!(bird_result_eq(&gold, &same_cols)))
    });
    group.bench_function("spider_result_eq", |b| {
        b.iter(|| assert!(spider_result_eq(&gold, &pred, false)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

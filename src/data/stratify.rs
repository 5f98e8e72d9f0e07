//! A fixed, stratified subset of a split (e.g. 200 of Spider dev's 1,034 questions for quick
//! runs): the same examples every time, in dataset order, with each official hardness level
//! represented in proportion to its share of the evaluable examples.
//!
//! No random generator is involved: within a level the subset takes evenly spaced examples, so the
//! selection depends only on the dataset file, and `generate` and `eval` given the same `N` pick
//! the same questions.

use std::collections::BTreeMap;

use super::Dataset;

/// Indices (ascending) of `n` evaluable examples of `dataset`, stratified by `level(example)`.
/// Examples whose level is `None` form a stratum of their own. With `n` at least the number of
/// evaluable examples, every evaluable example is returned.
pub fn stratified_indices<K: Ord + Clone>(
    dataset: &Dataset,
    n: usize,
    level: impl Fn(&super::Example) -> K,
) -> Vec<usize> {
    let mut strata: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, ex) in dataset.evaluable_examples() {
        strata.entry(level(ex)).or_default().push(i);
    }
    let total: usize = strata.values().map(Vec::len).sum();
    if n >= total {
        return dataset.evaluable_examples().map(|(i, _)| i).collect();
    }
    // Largest-remainder apportionment of n over the strata.
    let mut quota: Vec<(usize, f64)> = strata
        .values()
        .map(|members| {
            let exact = n as f64 * members.len() as f64 / total as f64;
            (exact.floor() as usize, exact - exact.floor())
        })
        .collect();
    let mut left = n - quota.iter().map(|q| q.0).sum::<usize>();
    let mut by_remainder: Vec<usize> = (0..quota.len()).collect();
    by_remainder.sort_by(|&a, &b| quota[b].1.total_cmp(&quota[a].1).then(a.cmp(&b)));
    for s in by_remainder {
        if left == 0 {
            break;
        }
        quota[s].0 += 1;
        left -= 1;
    }
    let mut chosen: Vec<usize> = strata
        .values()
        .zip(&quota)
        .flat_map(|(members, &(k, _))| {
            // Evenly spaced: the middle of each of k equal slices of the stratum.
            (0..k).map(move |j| members[(2 * j + 1) * members.len() / (2 * k)])
        })
        .collect();
    chosen.sort_unstable();
    chosen
}

impl Dataset {
    /// Keeps only the examples at `indices` (ascending), in their order.
    pub fn retain_indices(&mut self, indices: &[usize]) {
        self.examples = indices.iter().map(|&i| self.examples[i].clone()).collect();
        self.evaluable = indices.iter().map(|&i| self.evaluable[i]).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DatasetKind, Example};
    use std::path::PathBuf;

    fn dataset(levels: &[u8]) -> Dataset {
        let examples = levels
            .iter()
            .enumerate()
            .map(|(i, l)| Example {
                id: format!("x-{i}"),
                db_id: "missing".into(),
                question: format!("q{i}"),
                evidence: String::new(),
                gold_sql: format!("{l}"),
            })
            .collect::<Vec<_>>();
        let n = examples.len();
        Dataset {
            kind: DatasetKind::Jsonl,
            source: PathBuf::from("<test>"),
            database_root: PathBuf::from("<none>"),
            examples,
            evaluable: vec![true; n],
        }
    }

    #[test]
    fn proportional_per_level_and_deterministic() {
        // 60 level-0, 30 level-1, 10 level-2 → 20 picks: 12 / 6 / 2.
        let mut levels = vec![0u8; 60];
        levels.extend([1u8; 30]);
        levels.extend([2u8; 10]);
        let d = dataset(&levels);
        let level = |e: &Example| e.gold_sql.clone();
        let picked = stratified_indices(&d, 20, level);
        assert_eq!(picked.len(), 20);
        assert!(
            picked.windows(2).all(|w| w[0] < w[1]),
            "ascending, no repeats"
        );
        let count = |l: &str| {
            picked
                .iter()
                .filter(|&&i| d.examples[i].gold_sql == l)
                .count()
        };
        assert_eq!((count("0"), count("1"), count("2")), (12, 6, 2));
        assert_eq!(picked, stratified_indices(&d, 20, level));
    }

    #[test]
    fn skips_unevaluable_and_caps_at_all() {
        let mut d = dataset(&[0, 1, 0, 1, 0]);
        d.evaluable[2] = false;
        let all = stratified_indices(&d, 10, |e: &Example| e.gold_sql.clone());
        assert_eq!(all, vec![0, 1, 3, 4]);
        d.retain_indices(&all[..2]);
        assert_eq!(
            d.examples.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["x-0", "x-1"]
        );
        assert_eq!(d.evaluable, vec![true, true]);
    }
}

//! A validation split held out of a train split: the SFT phase scores it to stop when it stops
//! improving, so dev is never used for a training decision. The choice is a seeded permutation
//! of the evaluable examples (the same config holds out the same questions every time); the
//! held-out questions leave the train split, so self-play never prompts with them either.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::Dataset;

/// Splits `n` evaluable examples (at most all of them) off `train`: `(train without them,
/// validation)`, each in file order.
pub fn hold_out(train: Dataset, n: usize, seed: u64) -> (Dataset, Dataset) {
    let mut candidates: Vec<usize> = train.evaluable_examples().map(|(i, _)| i).collect();
    // The constant keeps this draw apart from the other uses of the run's seed.
    candidates.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x7661_6c69));
    let mut held = vec![false; train.len()];
    for &i in candidates.iter().take(n) {
        held[i] = true;
    }
    let (kept, out): (Vec<usize>, Vec<usize>) = (0..train.len()).partition(|&i| !held[i]);
    let mut validation = train.clone();
    validation.retain_indices(&out);
    let mut rest = train;
    rest.retain_indices(&kept);
    (rest, validation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DatasetKind, Example};

    fn train(n: usize) -> Dataset {
        let examples = (0..n)
            .map(|i| Example {
                id: format!("t{i}"),
                db_id: "db".into(),
                question: format!("q{i}"),
                evidence: String::new(),
                gold_sql: "SELECT 1".into(),
            })
            .collect();
        let mut d = Dataset::new(
            DatasetKind::Spider,
            "train.json".into(),
            "/nowhere".into(),
            examples,
        );
        // Every other example is evaluable (its database "exists").
        d.evaluable = (0..n).map(|i| i % 2 == 0).collect();
        d
    }

    #[test]
    fn holds_out_a_seeded_evaluable_subset_and_removes_it_from_train() {
        let (rest, val) = hold_out(train(20), 4, 9);
        assert_eq!(val.len(), 4);
        assert_eq!(rest.len(), 16);
        assert!(
            val.evaluable.iter().all(|&e| e),
            "only evaluable questions are held out"
        );
        let ids = |d: &Dataset| d.examples.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        assert!(ids(&val).iter().all(|id| !ids(&rest).contains(id)));
        // File order kept; the same seed holds out the same questions, another seed others.
        let nums: Vec<usize> = ids(&val)
            .iter()
            .map(|id| id[1..].parse().unwrap())
            .collect();
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "{nums:?}");
        assert_eq!(ids(&hold_out(train(20), 4, 9).1), ids(&val));
        assert_ne!(ids(&hold_out(train(20), 4, 10).1), ids(&val));
        // Asking for more than there is holds out every evaluable one.
        let (rest, val) = hold_out(train(20), 50, 9);
        assert_eq!((rest.len(), val.len()), (10, 10));
        assert_eq!(rest.evaluable_count(), 0);
    }
}

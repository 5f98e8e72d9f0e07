//! The data cursor: which examples each round asks about. A seeded permutation of the train split;
//! round r takes the window [r·P, (r+1)·P) of it, wrapping around.

use exspin::data::Dataset;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::logic::prompts::Prompter;
use crate::protocol::seams::{PromptItem, stand_in_prompt};

/// The evaluable train examples (database present) in a seeded order.
pub fn permutation(train: &Dataset, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = train.evaluable_examples().map(|(i, _)| i).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order
}

/// The prompts of `round`, in issue order (`per_round` ≤ `order.len()`, so no example twice).
pub fn round_prompts(
    train: &Dataset,
    order: &[usize],
    round: u64,
    per_round: usize,
    prompter: &Prompter,
) -> Vec<PromptItem> {
    let start = round as usize * per_round;
    (start..start + per_round)
        .map(|i| order[i % order.len()])
        .map(|i| {
            let ex = &train.examples[i];
            PromptItem {
                example_id: ex.id.clone(),
                db_id: ex.db_id.clone(),
                question: ex.question.clone(),
                gold_sql: ex.gold_sql.clone(),
                // Every train prompt was built once before the run started (see `runtime::prepare`),
                // so a failure here would be new; the stand-in keeps the round going.
                prompt: prompter.prompt(ex).unwrap_or_else(|e| {
                    tracing::error!("{e:#}; using the stand-in prompt");
                    stand_in_prompt(&ex.db_id, &ex.question)
                }),
                round,
            }
        })
        .collect()
}

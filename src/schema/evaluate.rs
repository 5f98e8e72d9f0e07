//! Measurements over a dataset (recall of the filter, value retrieval, prompt length) and the
//! training set of the learned scorer: both walk the evaluable examples through a builder.

use serde::Serialize;

use super::SchemaError;
use super::builder::PromptBuilder;
use super::embedding::EmbeddingScorer;
use super::features::Question;
use super::filter::{SchemaScorer, Selection};

use super::gold;
use super::learned::TrainingSet;
use super::prompt::{self, PromptInput, Style};
use crate::data::Dataset;

#[derive(Debug, Clone, Serialize)]
pub struct RecallReport {
    pub scorer: String,
    pub k1: usize,
    pub k2: usize,
    /// Evaluable examples measured.
    pub examples: usize,
    /// Examples skipped because their database is missing.
    pub skipped_missing_db: usize,
    /// Share of examples whose gold tables are all kept.
    pub tables_all_kept: f64,
    /// Share whose gold columns are all kept (table and column).
    pub columns_all_kept: f64,
    /// `tables_all_kept` over examples whose database has more than k1 tables.
    pub tables_all_kept_large_db: f64,
    pub large_db_examples: usize,
    /// Gold string literals found among the matched values / matched values that are gold literals.
    pub value_recall: f64,
    pub value_precision: f64,
    pub gold_values: usize,
    pub matched_values: usize,
    /// Prompt length in tokens (null without a tokenizer).
    pub prompt_tokens_mean: Option<f64>,
    pub prompt_tokens_p95: Option<usize>,
    /// The same for the plain full-schema prompt (the ablation).
    pub full_prompt_tokens_mean: Option<f64>,
    pub full_prompt_tokens_p95: Option<usize>,
}

fn p95(v: &mut [usize]) -> Option<usize> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1])
}

fn share(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Measures the builder on every evaluable example; `progress` is called after each one.
pub fn recall(
    builder: &PromptBuilder,
    dataset: &Dataset,
    progress: &dyn Fn(),
) -> Result<RecallReport, SchemaError> {
    let k1 = builder.options().filter.k1;
    let (mut n, mut tables_ok, mut cols_ok, mut large, mut large_ok) = (0, 0, 0, 0, 0);
    let (mut gold_values, mut gold_found, mut matched, mut matched_gold) = (0, 0, 0, 0);
    let mut tokens = Vec::new();
    let mut full_tokens = Vec::new();
    for (_, ex) in dataset.evaluable_examples() {
        let (db, _) = builder.load(&ex.db_id)?;
        let built = builder.build_for(&db, &ex.question, &ex.evidence);
        let usage = gold::usage(&ex.gold_sql, &db.info);
        let t_ok = usage.tables.iter().all(|&t| built.selection.has_table(t));
        n += 1;
        tables_ok += usize::from(t_ok);
        cols_ok += usize::from(
            t_ok && usage
                .columns
                .iter()
                .all(|&(t, c)| built.selection.has_column(t, c)),
        );
        if db.info.tables.len() > k1 {
            large += 1;
            large_ok += usize::from(t_ok);
        }
        let literals = gold::string_literals(&ex.gold_sql);
        let mut values: Vec<String> = built
            .values
            .iter()
            .map(|m| m.value.to_lowercase())
            .collect();
        values.sort();
        values.dedup();
        gold_values += literals.len();
        gold_found += literals
            .iter()
            .filter(|l| values.contains(&l.to_lowercase()))
            .count();
        matched += values.len();
        matched_gold += values
            .iter()
            .filter(|v| literals.iter().any(|l| l.to_lowercase() == **v))
            .count();
        if let Some(t) = builder.count_tokens(&built.prompt.text) {
            tokens.push(t);
            let full = Selection::full(&db.info);
            let plain = prompt::render(
                &PromptInput {
                    db: &db.info,
                    selection: &full,
                    values: &[],
                    question: &ex.question,
                    evidence: &ex.evidence,
                    style: Style::Plain,
                    drop_order: &[],
                    representative_values: true,
                    example_rows: 0,
                },
                None,
            );
            full_tokens.push(builder.count_tokens(&plain.text).unwrap_or(0));
        }
        progress();
    }
    let mean =
        |v: &[usize]| (!v.is_empty()).then(|| v.iter().sum::<usize>() as f64 / v.len() as f64);
    Ok(RecallReport {
        scorer: builder.scorer_name().to_string(),
        k1,
        k2: builder.options().filter.k2,
        examples: n,
        skipped_missing_db: dataset.len() - dataset.evaluable_count(),
        tables_all_kept: share(tables_ok, n),
        columns_all_kept: share(cols_ok, n),
        tables_all_kept_large_db: share(large_ok, large),
        large_db_examples: large,
        value_recall: share(gold_found, gold_values),
        value_precision: share(matched_gold, matched),
        gold_values,
        matched_values: matched,
        prompt_tokens_mean: mean(&tokens),
        prompt_tokens_p95: p95(&mut tokens),
        full_prompt_tokens_mean: mean(&full_tokens),
        full_prompt_tokens_p95: p95(&mut full_tokens),
    })
}

/// The learned scorer's training rows: features of every evaluable example, labelled by what its
/// gold SQL uses; with `embedding`, its similarities are features too.
pub fn training_set(
    builder: &PromptBuilder,
    dataset: &Dataset,
    embedding: Option<&EmbeddingScorer>,
    progress: &dyn Fn(),
) -> Result<TrainingSet, SchemaError> {
    let mut set = TrainingSet::default();
    for (_, ex) in dataset.evaluable_examples() {
        let (db, _) = builder.load(&ex.db_id)?;
        let values = db.values.search(&ex.question, &builder.options().matching);
        let q = Question::new(&ex.question, &ex.evidence, &values);
        let usage = gold::usage(&ex.gold_sql, &db.info);
        if !usage.tables.is_empty() {
            let sims = embedding.map(|e| e.score(&db.info, &q));
            set.add(&db.info, &q, &usage, sims.as_ref());
        }
        progress();
    }
    Ok(set)
}

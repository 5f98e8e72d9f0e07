//! Turns the shared schema arguments into a prompt builder for a dataset.

use anyhow::Context;
use exspin::data::Dataset;
use exspin::schema::builder::{self, PromptBuilder, PromptOptions, ScorerKind};
use exspin::schema::filter::FilterConfig;
use exspin::schema::prompt::Style;
use exspin::schema::tokens::TokenCounter;
use exspin::schema::values::MatchConfig;

use crate::cli::SchemaArgs;

pub fn builder(args: &SchemaArgs, dataset: &Dataset) -> anyhow::Result<PromptBuilder> {
    let tables = builder::tables_file_for(dataset)?;
    builder_for(args, &dataset.database_root, tables)
}

/// A prompt builder over any database root (e.g. `exspin ask` on a single SQLite file, whose
/// schema comes from the file alone).
pub fn builder_for(
    args: &SchemaArgs,
    database_root: &std::path::Path,
    tables: exspin::data::TablesFile,
) -> anyhow::Result<PromptBuilder> {
    let kind: ScorerKind = args.scorer.parse().map_err(anyhow::Error::msg)?;
    let scorer = builder::make_scorer(kind, &args.cache)?;
    let options = PromptOptions {
        filter: FilterConfig {
            k1: args.k1,
            k2: args.k2,
            seed: args.seed,
            random_padding: !args.ranked_padding,
        },
        matching: MatchConfig {
            threshold: args.value_threshold,
            ..MatchConfig::default()
        },
        style: if args.full_schema {
            Style::Plain
        } else {
            Style::Explicit
        },
        token_budget: args.budget,
        representative_values: !args.no_values,
    };
    // clap is built without its `env` feature, so the variable is read here.
    let tokenizer = args.tokenizer.clone().or_else(|| {
        std::env::var_os("EXSPIN_TOKENIZER")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    });
    if args.budget.is_some() && tokenizer.is_none() {
        anyhow::bail!("--budget needs a tokenizer: pass --tokenizer FILE or set EXSPIN_TOKENIZER");
    }
    let mut b = PromptBuilder::new(&args.cache, database_root, tables, scorer, options);
    if let Some(path) = &tokenizer {
        let counter = TokenCounter::from_file(path)
            .with_context(|| format!("loading tokenizer {}", path.display()))?;
        b = b.with_tokenizer(counter);
    }
    Ok(b)
}

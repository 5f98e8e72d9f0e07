//! The schema arguments every prompt-building command shares, and the prompt builder they make
//! for a dataset.

use std::path::PathBuf;

use clap::Args;

use anyhow::Context;
use exspin::data::Dataset;
use exspin::prompt::SchemaMode;
use exspin::schema::builder::{self, PromptBuilder, PromptOptions, ScorerKind};
use exspin::schema::filter::FilterConfig;
use exspin::schema::prompt::Style;
use exspin::schema::tokens::TokenCounter;
use exspin::schema::values::MatchConfig;

/// Which prompt a prompt-making command renders (`generate`, `ask`, `prompt`).
#[derive(Args, Debug, Clone)]
pub struct PromptModeArgs {
    /// plain (the full schema as CREATE TABLE with keys), rows (the same, each table followed
    /// by its first rows: --example-rows, 3 by default; the best measured for a small model),
    /// integrated (the schema filtered to the question, with comments and matched values: the
    /// explicit schema integration; --example-rows K adds the kept tables' rows), or ddl (bare
    /// CREATE TABLE statements of the dataset's tables.json; not for `ask`).
    #[arg(long = "schema", value_name = "MODE", default_value_t = SchemaMode::RECOMMENDED)]
    pub mode: SchemaMode,
    /// Put the K training questions most like the question, with their SQL, between the
    /// schema and the question (masked-question similarity, DAIL-SQL's selection; always from
    /// other databases than the question's). 0: none.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub shots: usize,
    /// The Spider-layout folder whose train split (and tables.json) the examples come from
    /// (default: the --spider folder).
    #[arg(long, value_name = "DIR")]
    pub shots_from: Option<PathBuf>,
}

/// The example pool of `--shots`: the train split of `--shots-from`, else of `--spider`.
pub fn shot_pool(
    mode: &PromptModeArgs,
    dataset: &super::DatasetArgs,
) -> anyhow::Result<Option<exspin::prompt::ShotPool>> {
    if mode.shots == 0 {
        return Ok(None);
    }
    let Some(dir) = mode.shots_from.as_ref().or(dataset.spider.as_ref()) else {
        anyhow::bail!(
            "--shots needs training examples: pass --shots-from DIR (a Spider-layout folder with \
             train_spider.json and tables.json), or use --spider"
        );
    };
    let train = exspin::data::spider::load(dir, "train")
        .with_context(|| format!("loading the --shots examples from {}", dir.display()))?;
    let tables = exspin::data::TablesFile::load(&dir.join("tables.json"))?;
    Ok(Some(exspin::prompt::ShotPool::new(train.examples, &tables)))
}

/// How prompts are built: cache, scorer, k1/k2, tokenizer, budget.
#[derive(Args, Debug, Clone)]
pub struct SchemaArgs {
    /// Cache folder (introspection, value indexes, the learned scorer). Never inside the dataset.
    #[arg(long, value_name = "DIR", default_value = ".cache/exspin")]
    pub cache: PathBuf,
    /// Schema scorer: auto (= lexical, the best measured; see BENCHMARKS.md), lexical, learned
    /// (after `exspin schema train`), embedding (after scripts/install-minilm.sh).
    #[arg(long, default_value = "auto")]
    pub scorer: String,
    /// Tables kept. 6 (with k2 = 20) is the smallest filter that keeps every gold table and
    /// column of 99.9% of Spider dev questions (`exspin schema recall`, BENCHMARKS.md).
    #[arg(long, default_value_t = 6)]
    pub k1: usize,
    /// Columns kept per table (keys come on top).
    #[arg(long, default_value_t = 20)]
    pub k2: usize,
    /// Seed of the random table padding.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pad with the next best tables instead of random ones (the paper pads randomly).
    #[arg(long)]
    pub ranked_padding: bool,
    /// Minimum share of a value that must occur in the question to be matched.
    #[arg(long, default_value_t = 0.9)]
    pub value_threshold: f32,
    /// Leave the representative values (`-- e.g. ...`) out of the explicit prompt's column
    /// comments (filtering, keys, comments and matched values stay).
    #[arg(long)]
    pub no_values: bool,
    /// Example rows per kept table after its CREATE TABLE (kept columns only): the rows prompt
    /// shows 3 unless told; the integrated prompt shows none unless told.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub example_rows: usize,
    /// tokenizer.json for token counts and the budget (default: $EXSPIN_TOKENIZER).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Token budget of a prompt (needs a tokenizer).
    #[arg(long, value_name = "TOKENS")]
    pub budget: Option<usize>,
}

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
        // The prompt commands set the style from their --schema mode; recall from --full-schema.
        style: Style::Explicit,
        token_budget: args.budget,
        representative_values: !args.no_values,
        example_rows: args.example_rows,
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

/// The schema prompts of a dataset in `mode`: the ddl of the dataset's tables.json (Spider /
/// BIRD), or the schema module's builder with the shared schema arguments.
pub fn schema_prompts(
    mode_args: &PromptModeArgs,
    dataset: &super::DatasetArgs,
    data: &exspin::data::Dataset,
    schema_args: &SchemaArgs,
) -> anyhow::Result<exspin::prompt::SchemaPrompts> {
    let mode = mode_args.mode;
    let prompts = match mode {
        SchemaMode::Ddl => {
            let path = match (&dataset.spider, &dataset.bird) {
                (Some(dir), _) => dir.join("tables.json"),
                (_, Some(dir)) => dir.join(format!("{}_tables.json", dataset.split)),
                _ => anyhow::bail!(
                    "the ddl prompt needs --spider or --bird (their tables.json gives the \
schema); use the plain or integrated prompt with --jsonl"
                ),
            };
            exspin::prompt::SchemaPrompts::ddl(&path)?
        }
        SchemaMode::Plain | SchemaMode::Rows | SchemaMode::Integrated => {
            exspin::prompt::SchemaPrompts::builder(builder(schema_args, data)?, mode)
        }
    };
    Ok(match shot_pool(mode_args, dataset)? {
        Some(pool) => prompts.with_shots(pool, mode_args.shots),
        None => prompts,
    })
}

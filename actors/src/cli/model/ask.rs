//! `exspin ask`: answer a question about any SQLite file. The prompt comes from the schema
//! integration (the file's own schema, filtered to the question, with matched values), the model
//! answers greedily, the SQL is extracted and run in the read-only sandbox, and the SQL and its
//! result are printed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use exspin::data::TablesFile;
use exspin::model::chat::ChatTemplate;
use exspin::model::continuous::generate_continuous;
use exspin::model::generate::GenerateConfig;
use exspin::model::load;
use exspin::model::load::LoadedModel;
use exspin::model::prefix_cache::PrefixCache;
use exspin::prompt::SchemaMode;
use exspin::schema::builder::LoadedDb;
use exspin::schema::introspect;
use exspin::schema::values::ValueIndex;
use exspin::sql::executor::{ExecutorConfig, Outcome, Sandbox};
use serde_json::json;

use crate::cli::args::SchemaArgs;
use crate::cli::args::compute::ComputeArgs;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin ask --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
--db data/spider/database/concert_singer/concert_singer.sqlite \"How many singers are there?\"\n\n\
Prints the SQL on a line starting with `SQL: `, then the result table (or the error). Exit \
status 0 when the query returned rows, 1 otherwise."
)]
pub struct AskArgs {
    /// A Hugging Face folder or a .gguf file.
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// The SQLite file to ask about (opened read-only).
    #[arg(long, value_name = "FILE.sqlite")]
    pub db: PathBuf,
    /// The question, in plain words.
    pub question: String,
    /// External knowledge to add to the prompt (BIRD's evidence).
    #[arg(long, default_value = "")]
    pub evidence: String,
    #[command(flatten)]
    pub mode: crate::cli::args::PromptModeArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// Prompt template: chatml or plain (default: from the model's metadata).
    #[arg(long)]
    pub template: Option<ChatTemplate>,
    /// Token budget of the answer.
    #[arg(long, default_value_t = 200)]
    pub max_new_tokens: usize,
    /// Repairs: when the answer fails to run, the model answers again with a note on what the
    /// SQLite error names (which table has the column); at most N times. One that still names a
    /// column through the wrong table of its joins is rewritten through the table that has it.
    /// 0: no repairs.
    #[arg(long, value_name = "N", default_value_t = exspin::prompt::repair::DEFAULT_ROUNDS)]
    pub repair: usize,
    /// Query time limit in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Rows of the result to print.
    #[arg(long, default_value_t = 20)]
    pub max_print_rows: usize,
    /// Show the prompt on stderr.
    #[arg(long)]
    pub show_prompt: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// One JSON object on stdout: {"question", "sql", "answer", "outcome", "prompt_ids" (of the
    /// first prompt), "repairs", "requalified"}.
    #[arg(long)]
    pub json: bool,
}

/// One greedy answer: the raw text, the extracted SQL, and the token ids in and out.
#[derive(Debug, Clone)]
pub struct Answer {
    pub text: String,
    pub sql: String,
    pub prompt_ids: Vec<u32>,
    pub generated: Vec<u32>,
}

/// Greedy answers of prompts (token ids of `exspin::prompt`), at most `max_rows` decoding at
/// once.
pub fn answer(
    lm: &LoadedModel,
    template: &ChatTemplate,
    ids: Vec<Vec<u32>>,
    max_new_tokens: usize,
    max_rows: usize,
    prefixes: &mut PrefixCache,
) -> anyhow::Result<Vec<Answer>> {
    let cfg = GenerateConfig {
        max_new_tokens,
        ..GenerateConfig::default()
    };
    // Continuous batching: a finished answer's slot goes to the next question at once.
    let gens = generate_continuous(
        &lm.model,
        &lm.tokenizer,
        &lm.special,
        &ids,
        None,
        &cfg,
        max_rows,
        Some(prefixes),
    )?;
    Ok(gens
        .into_iter()
        .map(|g| Answer {
            sql: exspin::prompt::answer_sql(template, &g.text),
            prompt_ids: ids[g.prompt].clone(),
            generated: g.tokens,
            text: g.text,
        })
        .collect())
}

pub fn run(args: AskArgs) -> anyhow::Result<()> {
    let (device, dtype, _) = args.compute.open()?;
    anyhow::ensure!(
        args.timeout > 0.0 && args.timeout.is_finite(),
        "--timeout must be a positive number of seconds"
    );
    anyhow::ensure!(
        args.db.is_file(),
        "{}: no such SQLite file",
        args.db.display()
    );
    // The schema of the file itself (no tables.json): introspection and the value index are
    // cached by content hash in the cache folder.
    let info = introspect::load_cached(&args.schema.cache, &args.db, None)
        .with_context(|| format!("reading the schema of {}", args.db.display()))?;
    let (values, _) = ValueIndex::open_or_build(&args.schema.cache, &args.db, &info)?;
    let db = LoadedDb { info, values };
    let root = args.db.parent().unwrap_or(std::path::Path::new("."));
    anyhow::ensure!(
        args.mode.mode != SchemaMode::Ddl,
        "--schema ddl renders a dataset's tables.json, and `ask` reads the schema from the \
         SQLite file: use --schema rows, plain or integrated"
    );
    anyhow::ensure!(
        args.mode.shots == 0,
        "--shots is for a dataset's questions (`exspin generate`); `ask` takes its prompt \
         without examples"
    );
    let mut builder =
        crate::cli::args::schema::builder_for(&args.schema, root, TablesFile::default())?;
    exspin::prompt::set_builder_mode(builder.options_mut(), args.mode.mode);

    let lm = load::load_as(&args.model, dtype, &device)
        .with_context(|| format!("loading the model {}", args.model.display()))?;
    let template = args.template.clone().unwrap_or_else(|| lm.chat.clone());
    let schema_prompt = builder
        .build_for(&db, &args.question, &args.evidence)
        .prompt
        .text;
    if args.show_prompt {
        eprintln!("{}", exspin::prompt::render(&template, &schema_prompt));
    }
    // `prompt_ids` in the JSON is the first prompt's (what the one renderer made of the question).
    let prompt_ids = exspin::prompt::prompt_ids(&lm.tokenizer, &template, &schema_prompt)?;
    let mut prefixes = PrefixCache::new(0);
    let mut answers = answer(
        &lm,
        &template,
        vec![prompt_ids.clone()],
        args.max_new_tokens,
        1,
        &mut prefixes,
    )?;
    let (mut repairs, mut requalified) = (0, false);
    if args.repair > 0 {
        let asked = [super::repair::Asked {
            schema_prompt,
            db: &args.db,
            info: &db.info,
        }];
        let done = super::repair::repair(
            &lm,
            &template,
            &asked,
            &answers,
            args.repair,
            args.max_new_tokens,
            1,
            &mut prefixes,
        )?;
        repairs = done.stats.turns;
        requalified = done.requalified[0];
        if let Some(last) = done.last.into_iter().next().flatten() {
            answers = vec![last];
        }
    }
    let Answer { text: raw, sql, .. } = answers.pop().context("internal: no generation")?;
    let config = ExecutorConfig {
        timeout: Duration::from_secs_f64(args.timeout),
        ..ExecutorConfig::default()
    };
    let outcome = if sql.trim().is_empty() {
        None
    } else {
        let sandbox = Sandbox::open(&args.db)?;
        sandbox.set_max_value_bytes(config.max_value_bytes);
        Some(sandbox.run(&sql, &config))
    };
    if args.json {
        println!(
            "{}",
            json!({ "question": args.question, "sql": sql, "answer": raw, "outcome": outcome,
                    "prompt_ids": prompt_ids, "repairs": repairs,
                    "requalified": requalified })
        );
    } else {
        println!("SQL: {sql}");
        match &outcome {
            None => println!("error: the answer holds no SQL query:\n{raw}"),
            Some(Outcome::Rows { columns, rows }) => {
                println!("{}", columns.join("\t"));
                for row in rows.iter().take(args.max_print_rows) {
                    let cells: Vec<String> = row
                        .iter()
                        .map(|v| serde_json::to_string(v).unwrap_or_default())
                        .collect();
                    println!("{}", cells.join("\t"));
                }
                if rows.len() > args.max_print_rows {
                    println!("… {} more rows", rows.len() - args.max_print_rows);
                }
                println!("({} rows)", rows.len());
            }
            Some(other) => println!(
                "{}: {}",
                other.kind(),
                serde_json::to_string(other).unwrap_or_default()
            ),
        }
    }
    match outcome {
        Some(Outcome::Rows { .. }) => Ok(()),
        Some(other) => anyhow::bail!("the query did not return rows ({})", other.kind()),
        None => anyhow::bail!("the model's answer holds no SQL query"),
    }
}

//! `exspin generate`: predict one SQL query per question of a Spider (or BIRD) split with a model, one line
//! per question in the output file. Resumable: lines already in the file are kept and generation
//! continues after the last one.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use exspin::model::chat::ChatTemplate;
use exspin::model::load;
use exspin::prompt::SchemaPrompts;
use exspin::schema::introspect::{self, DbInfo};

use super::ask::Answer;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin generate --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
--spider data/spider --split dev --limit 50 --out pred.sql"
)]
pub struct GenerateArgs {
    /// A Hugging Face folder (config.json + *.safetensors + tokenizer.json) or a .gguf file.
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    #[command(flatten)]
    pub dataset: crate::cli::args::DatasetArgs,
    /// Output: one SQL per line, in question order. An existing file is continued.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Prompt template: chatml or plain (default: from the model's metadata).
    #[arg(long)]
    pub template: Option<ChatTemplate>,
    /// Questions decoding together (continuous batching: a finished answer's slot goes to the
    /// next question at once).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Token budget per answer.
    #[arg(long, default_value_t = 200)]
    pub max_new_tokens: usize,
    /// Memory for the KV caches of recent prompt prefixes (a database's schema is prefilled
    /// once for its questions); 0 turns the cache off.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub prefix_cache_mib: usize,
    #[command(flatten)]
    pub mode: crate::cli::args::PromptModeArgs,
    /// Repairs: an answer that fails to run (an SQLite error) is answered again, greedily, with a
    /// note after the question on what the error names (which table has the column); at most N
    /// times per question. One that still fails, naming a column through the wrong table of its
    /// joins, is rewritten through the table that has it. Only the database is consulted, never
    /// the gold answer. 0: one greedy pass (what the prompt table of BENCHMARKS.md compares
    /// prompts with).
    #[arg(long, value_name = "N", default_value_t = exspin::prompt::repair::DEFAULT_ROUNDS)]
    pub repair: usize,
    #[command(flatten)]
    pub schema_args: crate::cli::args::SchemaArgs,
    /// Also append {"prompt": [ids], "generated": [ids]} per question to this JSONL file (the
    /// input of `exspin bench quant-agreement`), with the answer's "sql", and {"repair":
    /// {"prompt", "generated", "sql", "requalified"}} for the last repair of a repaired answer
    /// ("requalified": its "sql" is the rewrite, not the model's text).
    #[arg(long, value_name = "FILE")]
    pub tokens_out: Option<PathBuf>,
    #[command(flatten)]
    pub compute: crate::cli::args::compute::ComputeArgs,
}

/// The schema prompt `generate` gives the model for `ex`, and its token ids.
pub fn prompt_ids(
    lm: &load::LoadedModel,
    template: &ChatTemplate,
    prompts: &SchemaPrompts,
    ex: &exspin::data::Example,
) -> anyhow::Result<(String, Vec<u32>)> {
    let schema_prompt = prompts.schema_prompt(ex)?;
    let ids = exspin::prompt::prompt_ids(&lm.tokenizer, template, &schema_prompt)?;
    Ok((schema_prompt, ids))
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let (device, dtype, _) = args.compute.open()?;
    let data = crate::cli::args::dataset::load(&args.dataset)?;
    let prompts = crate::cli::args::schema::schema_prompts(
        &args.mode,
        &args.dataset,
        &data,
        &args.schema_args,
    )?;
    let done = match std::fs::read_to_string(&args.out) {
        Ok(text) => text.lines().count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.out.display())),
    };
    if done >= data.examples.len() {
        eprintln!(
            "{}: all {} questions already answered",
            args.out.display(),
            done
        );
        return Ok(());
    }
    let lm = load::load_as(&args.model, dtype, &device)
        .with_context(|| format!("loading the model {}", args.model.display()))?;
    let template = args.template.clone().unwrap_or_else(|| lm.chat.clone());
    eprintln!(
        "model {} ({} layers, template {template:?}, {} prompt); {} questions, {done} done",
        lm.name,
        lm.config.num_hidden_layers,
        args.mode.mode,
        data.examples.len()
    );
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("opening {}", args.out.display()))?;
    let mut tokens_out = match &args.tokens_out {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    // (index, example): a question whose database is missing gets a placeholder line, so that
    // lines stay aligned with the dataset (`exspin eval` skips it).
    let todo: Vec<(usize, _)> = data.examples[done..]
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, ex)| (done + i, ex))
        .collect();
    let missing = todo.iter().filter(|(i, _)| !data.is_evaluable(*i)).count();
    if missing > 0 {
        eprintln!(
            "{missing} questions have no database; each gets a placeholder line (`exspin eval` skips them)"
        );
    }
    let started = std::time::Instant::now();
    let mut answered = 0usize;
    let mut prefixes = exspin::model::prefix_cache::PrefixCache::new(args.prefix_cache_mib << 20);
    // The schema of each database the repair turns point into, read once.
    let mut schemas: HashMap<String, (PathBuf, DbInfo)> = HashMap::new();
    let mut repairs = super::repair::RepairStats::default();
    // Questions go in chunks of a few batches (the file grows chunk by chunk, so an interrupted
    // run loses at most one); within a chunk, slots refill continuously and each database's
    // schema prefix is prefilled once (the prefix cache).
    for chunk in todo.chunks(4 * args.batch.max(1)) {
        let evaluable: Vec<&exspin::data::Example> = chunk
            .iter()
            .filter(|(i, _)| data.is_evaluable(*i))
            .map(|(_, ex)| ex)
            .collect();
        let (schema_prompts, ids): (Vec<String>, Vec<Vec<u32>>) = evaluable
            .iter()
            .map(|ex| prompt_ids(&lm, &template, &prompts, ex))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let answers = if ids.is_empty() {
            Vec::new()
        } else {
            super::ask::answer(
                &lm,
                &template,
                ids,
                args.max_new_tokens,
                args.batch.max(1),
                &mut prefixes,
            )?
        };
        let mut repaired: Vec<Option<Answer>> = Vec::new();
        let mut requalified: Vec<bool> = Vec::new();
        if args.repair > 0 && !answers.is_empty() {
            for ex in &evaluable {
                if !schemas.contains_key(&ex.db_id) {
                    let path = data.db_path(&ex.db_id);
                    let info = introspect::load_cached(&args.schema_args.cache, &path, None)
                        .with_context(|| format!("reading the schema of {}", path.display()))?;
                    schemas.insert(ex.db_id.clone(), (path, info));
                }
            }
            let asked: Vec<super::repair::Asked<'_>> = evaluable
                .iter()
                .zip(schema_prompts)
                .map(|(ex, schema_prompt)| {
                    let (db, info) = &schemas[&ex.db_id];
                    super::repair::Asked {
                        schema_prompt,
                        db,
                        info,
                    }
                })
                .collect();
            let done = super::repair::repair(
                &lm,
                &template,
                &asked,
                &answers,
                args.repair,
                args.max_new_tokens,
                args.batch.max(1),
                &mut prefixes,
            )?;
            repairs.turns += done.stats.turns;
            repairs.fixed += done.stats.fixed;
            repairs.requalified += done.stats.requalified;
            repaired = done.last;
            requalified = done.requalified;
        }
        repaired.resize_with(answers.len(), || None);
        requalified.resize(answers.len(), false);
        let mut answers = answers.into_iter().zip(repaired).zip(requalified);
        for (i, _) in chunk {
            let a = if data.is_evaluable(*i) {
                answers.next()
            } else {
                None
            };
            // One query per line: an empty answer still takes its line so lines stay aligned.
            let sql = a.as_ref().map_or("", |((first, last), _)| {
                last.as_ref().unwrap_or(first).sql.as_str()
            });
            writeln!(out, "{}", if sql.is_empty() { "SELECT 1" } else { sql })?;
            if let Some(t) = tokens_out.as_mut() {
                let mut row = serde_json::json!({ "prompt": [], "generated": [] });
                if let Some(((first, last), requalified)) = a {
                    row = serde_json::json!({
                        "prompt": first.prompt_ids, "generated": first.generated, "sql": first.sql
                    });
                    if let Some(last) = last {
                        row["repair"] = serde_json::json!({
                            "prompt": last.prompt_ids, "generated": last.generated, "sql": last.sql,
                            "requalified": requalified
                        });
                    }
                }
                writeln!(t, "{row}")?;
            }
        }
        out.flush()?;
        if let Some(t) = tokens_out.as_mut() {
            t.flush()?;
        }
        answered += chunk.len();
        let reused = prefixes.stats().reused_tokens;
        let repaired = if args.repair > 0 {
            format!(
                ", {} repairs, {} failing answers now run ({} requalified)",
                repairs.turns, repairs.fixed, repairs.requalified
            )
        } else {
            String::new()
        };
        eprintln!(
            "{} / {}  ({:.1} s/question, {reused} prompt tokens from cached prefixes{repaired})",
            done + answered,
            data.examples.len(),
            started.elapsed().as_secs_f64() / answered as f64
        );
    }
    Ok(())
}

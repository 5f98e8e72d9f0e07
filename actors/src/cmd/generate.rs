//! `exspin generate`: predict one SQL query per question of a Spider (or BIRD) split with a model, one line
//! per question in the output file. Resumable: lines already in the file are kept and generation
//! continues after the last one.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use candle_core::Device;
use exspin::data::{DatabaseSchema, TablesFile};
use exspin::model::chat::ChatTemplate;
use exspin::model::generate::{GenerateConfig, extract_sql, generate};
use exspin::model::{load, tokenizer};

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
    pub dataset: crate::cli::DatasetArgs,
    /// Output: one SQL per line, in question order. An existing file is continued.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Prompt template: chatml or plain (default: from the model's metadata).
    #[arg(long)]
    pub template: Option<ChatTemplate>,
    /// Questions generated together.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Token budget per answer.
    #[arg(long, default_value_t = 200)]
    pub max_new_tokens: usize,
}

/// `CREATE TABLE` statements from the declared schema. A stopgap prompt until the schema module's
/// prompt builder (with example rows) is wired in here.
pub(crate) fn schema_ddl(s: &DatabaseSchema) -> String {
    let mut out = String::new();
    for (ti, table) in s.table_names_original.iter().enumerate() {
        let cols: Vec<String> = s
            .column_names_original
            .iter()
            .zip(&s.column_types)
            .filter(|((t, _), _)| *t == ti as i64)
            .map(|((_, c), ty)| format!("  {c} {}", ty.to_uppercase()))
            .collect();
        out.push_str(&format!(
            "CREATE TABLE {table} (\n{}\n);\n",
            cols.join(",\n")
        ));
    }
    out
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let data = super::dataset::load(&args.dataset)?;
    let tables_path = match (&args.dataset.spider, &args.dataset.bird) {
        (Some(dir), _) => dir.join("tables.json"),
        (_, Some(dir)) => dir.join(format!("{}_tables.json", args.dataset.split)),
        _ => {
            anyhow::bail!("generate needs --spider or --bird (their tables.json gives the schema)")
        }
    };
    let tables = TablesFile::load(&tables_path)?;
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
    let lm = load::load(&args.model, &Device::Cpu)
        .with_context(|| format!("loading the model {}", args.model.display()))?;
    let template = args.template.clone().unwrap_or_else(|| lm.chat.clone());
    eprintln!(
        "model {} ({} layers, template {template:?}); {} questions, {done} done",
        lm.name,
        lm.config.num_hidden_layers,
        data.examples.len()
    );
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("opening {}", args.out.display()))?;
    let cfg = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        ..GenerateConfig::default()
    };
    let system = (template == ChatTemplate::ChatMl).then_some(
        "You are a SQLite expert. Answer the question with one SQLite query in a ```sql code block.",
    );
    let todo: Vec<_> = data.examples[done..].to_vec();
    let started = std::time::Instant::now();
    for (bi, chunk) in todo.chunks(args.batch.max(1)).enumerate() {
        let mut prompts = Vec::with_capacity(chunk.len());
        for ex in chunk {
            let schema = tables.get(&ex.db_id).with_context(|| {
                format!("{}: no schema for {}", tables_path.display(), ex.db_id)
            })?;
            let evidence = if ex.evidence.is_empty() {
                String::new()
            } else {
                format!("Evidence: {}\n", ex.evidence)
            };
            let user = format!(
                "{}\nQuestion: {}\n{evidence}Write one SQLite query that answers the question.",
                schema_ddl(schema),
                ex.question
            );
            prompts.push(tokenizer::encode(
                &lm.tokenizer,
                &template.render(system, &user),
            )?);
        }
        let gens = generate(&lm.model, &lm.tokenizer, &lm.special, &prompts, &cfg)?;
        for g in &gens {
            let sql = extract_sql(&g.text);
            // One query per line: an empty answer still takes its line so lines stay aligned.
            writeln!(out, "{}", if sql.is_empty() { "SELECT 1" } else { &sql })?;
        }
        out.flush()?;
        let n = done + (bi + 1) * args.batch.max(1);
        eprintln!(
            "{} / {}  ({:.1} s/question)",
            n.min(data.examples.len()),
            data.examples.len(),
            started.elapsed().as_secs_f64() / ((bi + 1) * chunk.len()) as f64
        );
    }
    Ok(())
}

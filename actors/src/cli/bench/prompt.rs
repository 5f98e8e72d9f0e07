//! `exspin bench prompt`: prompt build latency per question with warm caches (every database is
//! loaded and one prompt built for it first, so only scoring, value search and rendering are
//! timed, not introspection, index building or the embedding scorer's per-database schema
//! embeddings).

use std::time::Instant;

use crate::cli::args::{DatasetArgs, SchemaArgs};

#[derive(clap::Args, Debug)]
pub struct BenchPromptArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// Time the plain full-schema prompt (the ablation) instead of the filtered one.
    #[arg(long)]
    pub full_schema: bool,
    /// Passes over the dataset.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

pub fn run(args: BenchPromptArgs) -> anyhow::Result<()> {
    let dataset = crate::cli::args::dataset::load(&args.dataset)?;
    let mut builder = crate::cli::args::schema::builder(&args.schema, &dataset)?;
    if args.full_schema {
        builder.options_mut().style = exspin::schema::prompt::Style::Plain;
    }
    let examples: Vec<_> = dataset.evaluable_examples().map(|(_, e)| e).collect();
    let mut warm = std::collections::HashSet::new();
    for ex in &examples {
        if warm.insert(ex.db_id.as_str()) {
            builder.build(ex)?;
        }
    }
    let mut micros = Vec::with_capacity(examples.len() * args.repeat);
    let mut bytes = 0usize;
    for _ in 0..args.repeat {
        for ex in &examples {
            let t = Instant::now();
            let built = builder.build(ex)?;
            micros.push(t.elapsed().as_secs_f64() * 1e6);
            bytes += built.prompt.text.len();
        }
    }
    micros.sort_by(f64::total_cmp);
    let pct =
        |p: f64| micros[((micros.len() as f64 * p).ceil() as usize).clamp(1, micros.len()) - 1];
    println!(
        "{}",
        serde_json::json!({
            "scorer": builder.scorer_name(),
            "builds": micros.len(),
            "p50_us": pct(0.50),
            "p99_us": pct(0.99),
            "mean_us": micros.iter().sum::<f64>() / micros.len().max(1) as f64,
            "mean_prompt_bytes": bytes / micros.len().max(1),
            "tokenizer_budget": args.schema.budget,
        })
    );
    Ok(())
}

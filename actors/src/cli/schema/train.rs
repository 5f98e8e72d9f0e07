//! `exspin schema train`: fits the learned schema scorer on Spider train and saves it in the cache.

use std::path::PathBuf;
use std::time::Instant;

use crate::cli::args::{DatasetArgs, SchemaArgs};
use exspin::schema::embedding::EmbeddingScorer;
use exspin::schema::{learned, minilm};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// Where to write the model (default: <cache>/schema-learned.json, where `auto` finds it).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Train without the MiniLM similarities even when the model is installed (then scoring does
    /// not need it).
    #[arg(long)]
    pub no_embedding: bool,
}

pub fn run(mut args: TrainArgs) -> anyhow::Result<()> {
    if args.dataset.split == "dev" && args.dataset.spider.is_some() {
        // Training on dev would leak into every recall figure measured on dev.
        args.dataset.split = "train".into();
    }
    // Features do not depend on the scorer; the lexical one avoids needing a model to train one.
    args.schema.scorer = "lexical".into();
    let start = Instant::now();
    let dataset = crate::cli::args::dataset::load(&args.dataset)?;
    let builder = crate::cli::args::schema::builder(&args.schema, &dataset)?;
    // The similarities are features when the model is installed (scripts/install-minilm.sh).
    let dir = minilm::model_dir(&args.schema.cache);
    let embedding = if args.no_embedding {
        eprintln!("training without MiniLM similarities (--no-embedding)");
        None
    } else if !dir.join("config.json").is_file() {
        eprintln!(
            "training without MiniLM similarities ({} has no model)",
            dir.display()
        );
        None
    } else {
        eprintln!("training with MiniLM similarities from {}", dir.display());
        Some(EmbeddingScorer::load(&args.schema.cache)?)
    };
    let bar = indicatif::ProgressBar::new(dataset.evaluable_count() as u64);
    let set =
        exspin::schema::evaluate::training_set(&builder, &dataset, embedding.as_ref(), &|| {
            bar.inc(1)
        })?;
    bar.finish_and_clear();
    let model = set.fit(&dataset.source.display().to_string());
    let out = args
        .out
        .unwrap_or_else(|| learned::model_path(&args.schema.cache));
    model.save(&out)?;
    eprintln!(
        "relevance threshold p >= {:.4}: keeps the {:.1}% of train gold tables that lexical >= 0.3 keeps",
        model.threshold,
        100.0 * set.lexical_gold_coverage()
    );
    eprintln!(
        "trained on {} examples ({} table rows, {} column rows) in {:.1} s; saved {}",
        set.examples,
        set.table_rows.len(),
        set.column_rows.len(),
        start.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

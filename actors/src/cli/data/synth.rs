//! `exspin data synth`: writes the embedded synthetic dataset in the Spider layout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use exspin::data::synthetic::{self, SynthConfig, SynthSummary};

/// Arguments of `exspin data synth` (its help text is on the subcommand in `cli/data/mod.rs`).
#[derive(clap::Args, Debug)]
#[command(after_help = "The output folder is read like Spider: --spider OUT --split dev|train.")]
pub struct SynthArgs {
    /// Folder to write; must be empty or missing unless --force.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed of every random choice (same seed, same bytes).
    #[arg(long, value_name = "N", default_value_t = SynthConfig::default().seed)]
    pub seed: u64,
    /// Number of train examples (train_spider.json).
    #[arg(long = "train", value_name = "N", default_value_t = SynthConfig::default().train_examples)]
    pub train_examples: usize,
    /// Number of dev examples (dev.json).
    #[arg(long = "dev", value_name = "N", default_value_t = SynthConfig::default().dev_examples)]
    pub dev_examples: usize,
    /// Write into a non-empty folder, replacing the files of the same names.
    #[arg(long)]
    pub force: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    if !args.force && is_non_empty(&args.out)? {
        anyhow::bail!(
            "{} is not empty; choose another --out folder or pass --force to overwrite",
            args.out.display()
        );
    }
    let config = SynthConfig {
        seed: args.seed,
        train_examples: args.train_examples,
        dev_examples: args.dev_examples,
        ..SynthConfig::default()
    };
    eprintln!(
        "generating {} train + {} dev examples (seed {}) into {} ...",
        config.train_examples,
        config.dev_examples,
        config.seed,
        args.out.display()
    );
    let started = Instant::now();
    let summary = synthetic::generate(&config, &args.out)
        .with_context(|| format!("generating the synthetic dataset in {}", args.out.display()))?;
    eprintln!("done in {:.2?}", started.elapsed());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn is_non_empty(dir: &Path) -> anyhow::Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    anyhow::ensure!(dir.is_dir(), "{} exists and is not a folder", dir.display());
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(entries.next().is_some())
}

fn print_summary(summary: &SynthSummary) {
    println!(
        "synthetic dataset in {} (seed {})",
        summary.out.display(),
        summary.seed
    );
    println!("databases:");
    for db in &summary.databases {
        println!(
            "  {:<10} {:<5} {} tables, {} rows",
            db.db_id, db.split, db.tables, db.rows
        );
    }
    for split in &summary.splits {
        println!(
            "{} ({}): {} examples on {}",
            split.split,
            split.file,
            split.examples,
            split.databases.join(", ")
        );
        for (ty, n) in &split.by_type {
            println!("  {ty:<24} {n:>5}");
        }
    }
    println!(
        "template draws discarded (no rows or repeated): {}",
        summary.discarded
    );
}

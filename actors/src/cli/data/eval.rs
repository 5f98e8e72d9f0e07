//! `exspin eval`: execution accuracy of a predictions file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use exspin::eval::{self, EvalOptions, EvalReport};
use exspin::sql::executor::{ExecutorConfig, ExecutorPool};
use exspin::sql::official::Compat;

use crate::cli::args::DatasetArgs;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example (Spider dev, the official numbers):\n  exspin eval --spider ../shared/data/spider --split dev \\\n      --predictions ../shared/data/spider/predictions/DAIL-SQL+GPT-4.txt --json\n\n\
The predictions file has exactly one SQL per line, one line per example in dataset order \
(examples whose database is missing included; they are reported as null). Text after a tab is \
ignored. Semantics are those of the official evaluators: Spider (test-suite-sql-eval, --etype \
exec: multiset of rows, order only when the gold has ORDER BY, columns may be permuted, DISTINCT \
removed) and BIRD (set equality)."
)]
pub struct EvalArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// The predictions file (one SQL per line).
    #[arg(long, value_name = "FILE")]
    pub predictions: PathBuf,
    /// Write a JSON array with one entry per example: true, false, or null (cannot be evaluated).
    #[arg(long, value_name = "OUT.json")]
    pub per_example: Option<PathBuf>,
    /// Keep DISTINCT in both queries (the official script removes it by default).
    #[arg(long)]
    pub keep_distinct: bool,
    /// `official` also reproduces evaluation.py's quirks: the text `value` becomes `1` in every
    /// prediction, and a blank line separates sessions.
    #[arg(long, value_enum, default_value = "default")]
    pub compat: CompatArg,
    /// Time limit per query in seconds (the official script allows 60).
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Executor threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CompatArg {
    Default,
    Official,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.timeout > 0.0 && args.timeout.is_finite(),
        "--timeout must be a positive number of seconds"
    );
    let dataset = crate::cli::args::dataset::load(&args.dataset)?;
    let options = EvalOptions {
        keep_distinct: args.keep_distinct,
        compat: match args.compat {
            CompatArg::Default => Compat::Default,
            CompatArg::Official => Compat::Official,
        },
    };
    let predictions = eval::read_predictions(&args.predictions, dataset.len(), options.compat)?;
    let mut config = ExecutorConfig {
        timeout: Duration::from_secs_f64(args.timeout),
        // The official script has no row cap; keep ours far above any real result.
        max_rows: 10_000_000,
        ..ExecutorConfig::default()
    };
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads > 0, "--threads must be at least 1");
        config.workers = threads;
    }
    let pool = ExecutorPool::new(config);
    let progress = crate::progress::bar(dataset.len() as u64, "evaluating");
    let report = eval::evaluate(&dataset, &predictions, &pool, options, &progress);
    progress.finish_and_clear();
    if let Some(path) = &args.per_example {
        let json = serde_json::to_string(&report.per_example())?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &EvalReport) {
    println!(
        "execution accuracy: {}/{} = {:.2}%  ({} examples, {:.1}s)",
        r.correct,
        r.evaluable,
        100.0 * r.execution_accuracy,
        r.examples,
        r.seconds
    );
    for (db, n) in &r.missing_databases {
        println!("  not evaluable: {n} examples (database {db} missing)");
    }
    if r.gold_failed > 0 {
        println!(
            "  not evaluable: {} examples (gold query failed)",
            r.gold_failed
        );
    }
    for (title, buckets) in [
        ("hardness", &r.by_hardness),
        ("query type", &r.by_query_type),
    ] {
        println!(
            "\n{title:<26} {:>6} {:>8} {:>9}",
            "count", "correct", "accuracy"
        );
        // Hardness levels in their natural order, then anything else (e.g. "unknown").
        let rank = |n: &str| {
            ["easy", "medium", "hard", "extra"]
                .iter()
                .position(|l| *l == n)
        };
        let mut names: Vec<&String> = buckets.keys().collect();
        names.sort_by_key(|n| (rank(n).unwrap_or(usize::MAX), n.to_string()));
        for name in names {
            let b = &buckets[name];
            println!(
                "{name:<26} {:>6} {:>8} {:>8.2}%",
                b.count,
                b.correct,
                100.0 * b.accuracy
            );
        }
    }
    println!("\nprediction outcomes: {:?}", r.prediction_outcomes);
}

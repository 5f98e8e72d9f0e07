//! `exspin bench eval`: evaluation throughput against a plain Python `sqlite3` loop doing the same
//! executions (every gold and predicted query of the evaluable examples), in one command, with
//! the runs interleaved so machine noise hits both alike.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use exspin::eval::{self, EvalOptions};
use exspin::sql::executor::{ExecutorConfig, ExecutorPool};
use exspin::sql::official::Compat;
use serde::Serialize;

use crate::cli::args::DatasetArgs;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin bench eval --spider ../shared/data/spider \\\n      --predictions ../shared/data/spider/predictions/DAIL-SQL+GPT-4.txt --json\n\n\
Needs python3 on PATH (standard library only). The Python baseline keeps one connection per \
database and runs each query with execute + fetchall: the loop the official script runs, \
without its per-query connection setup, so the ratio is conservative."
)]
pub struct BenchEvalArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// The predictions file (one SQL per line).
    #[arg(long, value_name = "FILE")]
    pub predictions: PathBuf,
    /// Executor threads for exspin (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Rounds of (exspin, Python); the median of each is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// The Python interpreter.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct BenchEvalReport {
    examples: usize,
    queries: usize,
    threads: usize,
    exspin_seconds: Vec<f64>,
    python_seconds: Vec<f64>,
    exspin_median_s: f64,
    python_median_s: f64,
    /// Python time / exspin time: above 1 means exspin is faster.
    speedup: f64,
    exspin_queries_per_s: f64,
    python_queries_per_s: f64,
}

const PYTHON_LOOP: &str = r#"
import json, sqlite3, sys, time
items = json.load(open(sys.argv[1]))
limit = float(sys.argv[2])
conns = {}
start = time.perf_counter()
for db, gold, pred in items:
    conn = conns.get(db)
    if conn is None:
        conn = sqlite3.connect("file:" + db + "?mode=ro", uri=True)
        conn.text_factory = lambda b: b.decode(errors="ignore")
        conns[db] = conn
    for sql in (gold, pred):
        deadline = time.perf_counter() + limit
        conn.set_progress_handler(lambda: time.perf_counter() > deadline, 1000)
        try:
            conn.execute(sql).fetchall()
        except Exception:
            pass
print(json.dumps({"seconds": time.perf_counter() - start}))
"#;

pub fn run(args: BenchEvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.repeat > 0, "--repeat must be at least 1");
    let dataset = crate::cli::args::dataset::load(&args.dataset)?;
    let predictions = eval::read_predictions(&args.predictions, dataset.len(), Compat::Default)?;
    let timeout = Duration::from_secs(60);
    let mut config = ExecutorConfig {
        timeout,
        max_rows: 10_000_000,
        ..ExecutorConfig::default()
    };
    if let Some(t) = args.threads {
        anyhow::ensure!(t > 0, "--threads must be at least 1");
        config.workers = t;
    }
    // The exact texts exspin executes (the judge's text steps), for Python to execute too.
    let judge = eval::Judge::for_dataset(dataset.kind, EvalOptions::default());
    let items: Vec<(String, String, String)> = dataset
        .evaluable_examples()
        .map(|(i, ex)| {
            (
                dataset.db_path(&ex.db_id).display().to_string(),
                judge.prepare_gold(&ex.gold_sql),
                judge.prepare_prediction(&predictions[i]),
            )
        })
        .collect();
    let mut items_file = tempfile::NamedTempFile::new()?;
    serde_json::to_writer(&mut items_file, &items)?;
    items_file.flush()?;
    let mut script = tempfile::NamedTempFile::new()?;
    script.write_all(PYTHON_LOOP.as_bytes())?;
    script.flush()?;

    let (mut ours, mut python) = (Vec::new(), Vec::new());
    let hidden = indicatif::ProgressBar::hidden();
    for round in 0..args.repeat {
        eprintln!("round {}/{}: exspin", round + 1, args.repeat);
        // A fresh pool each round: no gold results cached from the previous one.
        let pool = ExecutorPool::new(config.clone());
        let started = Instant::now();
        let report = eval::evaluate(
            &dataset,
            &predictions,
            &pool,
            EvalOptions::default(),
            &hidden,
        );
        ours.push(started.elapsed().as_secs_f64());
        drop(pool);
        eprintln!("  {:.3}s ({} correct); python", ours[round], report.correct);
        let out = Command::new(&args.python)
            .arg(script.path())
            .arg(items_file.path())
            .arg(timeout.as_secs_f64().to_string())
            .output()
            .with_context(|| format!("running {} (is Python installed?)", args.python))?;
        anyhow::ensure!(
            out.status.success(),
            "the Python baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("reading the Python baseline's output")?;
        python.push(v["seconds"].as_f64().context("Python printed no seconds")?);
        eprintln!("  {:.3}s", python[round]);
    }
    let queries = items.len() * 2;
    let (om, pm) = (median(&ours), median(&python));
    let report = BenchEvalReport {
        examples: items.len(),
        queries,
        threads: config.workers,
        exspin_median_s: om,
        python_median_s: pm,
        speedup: pm / om,
        exspin_queries_per_s: queries as f64 / om,
        python_queries_per_s: queries as f64 / pm,
        exspin_seconds: ours,
        python_seconds: python,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} queries: exspin {:.3}s ({:.0} q/s, {} threads), python {:.3}s ({:.0} q/s): {:.2}x",
            queries,
            om,
            report.exspin_queries_per_s,
            report.threads,
            pm,
            report.python_queries_per_s,
            report.speedup
        );
    }
    Ok(())
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

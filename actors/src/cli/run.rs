//! `exspin run CONFIG --run-dir DIR` and `exspin resume RUN_DIR`: the self-play runtime.

use std::path::{Path, PathBuf};

use anyhow::Context;
use exspin_actors::config::JobConfig;
use exspin_actors::runtime::{self, Run, RunEnd};
use exspin_actors::state::summary;

#[derive(clap::Args, Debug)]
#[command(after_help = "Example: exspin run configs/demo.toml --run-dir runs/demo")]
pub struct RunArgs {
    /// The job config (TOML), e.g. configs/demo.toml.
    pub config: PathBuf,
    /// Folder for summary.json, metrics.jsonl, checkpoints/ and a copy of the config.
    #[arg(long, value_name = "DIR")]
    pub run_dir: PathBuf,
    /// Delete an existing run folder first.
    #[arg(long)]
    pub overwrite: bool,
    /// Start from the version 0 (the model after SFT) of another run folder instead of training
    /// it; refused unless that run's data, model, SFT settings and seed are this config's.
    /// `exspin experiment` uses it to train one version 0 for all methods that share it.
    #[arg(long, value_name = "DIR")]
    pub sft_from: Option<PathBuf>,
    #[command(flatten)]
    pub threads: crate::cli::args::compute::ThreadsArgs,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Example: exspin resume runs/demo")]
pub struct ResumeArgs {
    /// A run folder made by `exspin run` holding at least one checkpoint.
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub threads: crate::cli::args::compute::ThreadsArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    args.threads.apply()?;
    let (config, text) = JobConfig::load(&args.config)?;
    if args.run_dir.exists() {
        anyhow::ensure!(
            args.overwrite,
            "{} already exists; choose another --run-dir, resume it with `exspin resume {}`, or pass \
             --overwrite to delete it",
            args.run_dir.display(),
            args.run_dir.display()
        );
        std::fs::remove_dir_all(&args.run_dir)
            .with_context(|| format!("deleting {}", args.run_dir.display()))?;
    }
    std::fs::create_dir_all(&args.run_dir)
        .with_context(|| format!("creating {}", args.run_dir.display()))?;
    std::fs::write(args.run_dir.join("config.toml"), &text)?;
    if let Some(from) = &args.sft_from {
        exspin_actors::runtime::copy_version0(&config, from, &args.run_dir)?;
        eprintln!("version 0 copied from {}", from.display());
    }
    let mut run = Run::new(config, &text, &args.run_dir)?;
    run.show_progress();
    report(
        &args.run_dir,
        block_on(args.threads.threads, run.drive(runtime::stop_signal()))?,
    )
}

pub fn resume(args: ResumeArgs) -> anyhow::Result<()> {
    args.threads.apply()?;
    let mut run = Run::resume(&args.run_dir)?;
    run.show_progress();
    report(
        &args.run_dir,
        block_on(args.threads.threads, run.drive(runtime::stop_signal()))?,
    )
}

/// The actors' async runtime; with `--threads N` its worker threads too are N (the model work
/// runs on rayon's pool, sized by `--threads`, from tokio's blocking threads).
fn block_on<T>(
    threads: Option<usize>,
    f: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        rt.worker_threads(n);
    }
    let rt = rt
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(rt.block_on(f))
}

fn report(run_dir: &Path, end: anyhow::Result<RunEnd>) -> anyhow::Result<()> {
    let end = end?;
    let s: &summary::Summary = &end.summary;
    match end.stopped_at {
        Some(Ok(ckpt)) => {
            eprintln!(
                "stopped at step {} (round {}); checkpoint {}; continue with: exspin resume {}",
                s.steps,
                s.rounds,
                ckpt.display(),
                run_dir.display()
            );
            Ok(())
        }
        Some(Err(e)) => anyhow::bail!("stopped, but the checkpoint failed: {e}"),
        None => {
            anyhow::ensure!(
                s.finished,
                "the run ended before finishing; see the log above"
            );
            // The real model's SFT phase (RUN/sft.json) comes before the rounds.
            if let Some(sft) = std::fs::read(run_dir.join("sft.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            {
                println!(
                    "SFT: {} steps, dev EX {:.3} before, {:.3} after",
                    sft["steps"], sft["dev_ex_before"], sft["dev_ex_after"]
                );
            }
            println!(
                "finished {} rounds: {} pairs trained in {} steps, dev EX per round {:?}, {} restarts; \
                 summary in {}",
                s.rounds,
                s.pairs_trained,
                s.steps,
                s.dev_ex_per_round,
                s.restarts,
                run_dir.join("summary.json").display()
            );
            Ok(())
        }
    }
}

//! `exspin run CONFIG --run-dir DIR` and `exspin resume RUN_DIR`: the self-play runtime.

use std::path::{Path, PathBuf};

use anyhow::Context;
use exspin_actors::config::JobConfig;
use exspin_actors::runtime::{Run, RunEnd, Started, StopFlag};
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
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  exspin resume runs/demo             continue where it stopped\n  \
                        exspin resume runs/demo --rounds 5  give it 5 rounds in all (a finished \
                        run goes on from its last version)"
)]
pub struct ResumeArgs {
    /// A run folder made by `exspin run` holding at least one checkpoint.
    pub run_dir: PathBuf,
    /// Raise `run.rounds` in the run's config.toml to N first (N rounds in all): a finished run
    /// goes on from its last published version with the rounds it has not run, nothing trained
    /// again. Only raising is allowed; the checkpoints made under the config before stay
    /// resumable (RUN/config-lineage.json).
    #[arg(long, value_name = "N")]
    pub rounds: Option<u64>,
    #[command(flatten)]
    pub threads: crate::cli::args::compute::ThreadsArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// The head's side of a fleet (`exspin worker`); the config's `[cluster]` table holds the same
/// settings, and a flag given here wins.
#[derive(clap::Args, Debug)]
pub struct FleetArgs {
    /// Accept fleet workers (`exspin worker --join`) on this address: only nodes with the cookie
    /// get in. A port alone listens on loopback (127.0.0.1:PORT); without --tls-* the link is
    /// not encrypted, so give a loopback or private address.
    #[arg(long, value_name = "[HOST:]PORT", value_parser = listen_addr)]
    pub listen: Option<std::net::SocketAddr>,
    /// A file whose first line is the job's shared secret; workers must give the same one.
    #[arg(long, value_name = "FILE")]
    pub cookie_file: Option<PathBuf>,
    #[command(flatten)]
    pub tls: crate::cli::args::tls::TlsArgs,
}

/// `HOST:PORT`, or a port alone on loopback: the head never listens beyond this machine unless
/// told to.
fn listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s}: give HOST:PORT (e.g. 10.0.0.1:7700) or a port for loopback"))
}

impl FleetArgs {
    /// Starts the head's fleet node when the flags or `[cluster]` ask for one (kept alive by
    /// the caller); refuses a job that leaves work to workers without a fleet to take them.
    fn start(
        &self,
        config: &JobConfig,
        run_dir: &Path,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Option<exspin_actors::fleet::node::Node>> {
        let cluster = &config.cluster;
        let listen = self.listen.or(cluster.listen);
        let cookie_file = self.cookie_file.as_ref().or(cluster.cookie_file.as_ref());
        let (listen, cookie_file) = match (listen, cookie_file) {
            (Some(l), Some(c)) => (l, c),
            (None, None) => {
                anyhow::ensure!(
                    !cluster.needs_workers(config.run.generators),
                    "[cluster] leaves work to fleet workers (local_generators or local_executors \
                     = 0) but there is no fleet: give --listen HOST:PORT --cookie-file F (or \
                     cluster.listen and cluster.cookie_file)"
                );
                return Ok(None);
            }
            (Some(_), None) => anyhow::bail!(
                "a fleet needs the job's shared secret: give --cookie-file F (or cluster.cookie_file)"
            ),
            (None, Some(_)) => anyhow::bail!(
                "a cookie file without an address: give --listen HOST:PORT (or cluster.listen)"
            ),
        };
        let cookie = exspin_actors::fleet::node::read_cookie(cookie_file)?;
        let tls = self
            .tls
            .files()
            .or_else(|| crate::cli::args::tls::from_cluster(cluster));
        let mut node = rt.block_on(exspin_actors::fleet::node::Node::start(
            "exspin-head",
            listen,
            cookie,
            tls.as_ref(),
        ))?;
        // Workers without the run folder copy its published versions from here.
        let run_dir = std::path::absolute(run_dir)
            .with_context(|| format!("resolving {}", run_dir.display()))?;
        rt.block_on(node.serve_weights(run_dir))?;
        let over = if tls.is_some() {
            "mutual TLS"
        } else {
            "plain TCP"
        };
        eprintln!("fleet: accepting workers on {listen} ({over})");
        Ok(Some(node))
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    args.threads.apply()?;
    // The signal handlers first: a SIGTERM during set-up or SFT is caught too.
    let (rt, stop) = runtime_with_stop(args.threads.threads)?;
    let (config, text) = JobConfig::load(&args.config)?;
    // Before the run folder is made: a job that cannot get its workers leaves nothing behind.
    let fleet = args.fleet.start(&config, &args.run_dir, &rt)?;
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
    let started = Run::start(config, &text, &args.run_dir, &stop)?;
    let end = drive(&rt, started, &stop, &args.run_dir);
    drop(fleet);
    leave(rt);
    end
}

pub fn resume(args: ResumeArgs) -> anyhow::Result<()> {
    args.threads.apply()?;
    if let Some(rounds) = args.rounds {
        use exspin_actors::state::extend::{Extension, extend_rounds};
        if let Extension::Raised { from, to } = extend_rounds(&args.run_dir, rounds)? {
            eprintln!(
                "{}: run.rounds raised from {from} to {to}",
                args.run_dir.join("config.toml").display()
            );
        }
    }
    let (rt, stop) = runtime_with_stop(args.threads.threads)?;
    let (config, _) = JobConfig::load(&args.run_dir.join("config.toml"))
        .with_context(|| format!("{} is not a run folder", args.run_dir.display()))?;
    let fleet = args.fleet.start(&config, &args.run_dir, &rt)?;
    let started = Run::resume_start(&args.run_dir, &stop)?;
    let end = drive(&rt, started, &stop, &args.run_dir);
    drop(fleet);
    leave(rt);
    end
}

/// Ends the async runtime without waiting for blocking work still running. After a stop, a dev
/// pass (a quarter of an hour for a real model on a CPU) may still be going: its result is not
/// kept (the resumed run evaluates that version again), and everything else is on disk, so
/// waiting for it would only hold the stop, and a second Ctrl-C, whose handler the shutdown has
/// already dropped, could not cut it short.
fn leave(rt: tokio::runtime::Runtime) {
    rt.shutdown_background();
}

/// The actors' async runtime, with SIGTERM/SIGINT handlers that request a stop; with
/// `--threads N` its worker threads too are N (the model work runs on rayon's pool, sized by
/// `--threads`, from tokio's blocking threads).
fn runtime_with_stop(
    threads: Option<usize>,
) -> anyhow::Result<(tokio::runtime::Runtime, StopFlag)> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        rt.worker_threads(n);
    }
    let rt = rt
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stop = rt.block_on(async { StopFlag::on_signals() })?;
    Ok((rt, stop))
}

fn drive(
    rt: &tokio::runtime::Runtime,
    started: Started,
    stop: &StopFlag,
    run_dir: &Path,
) -> anyhow::Result<()> {
    match started {
        Started::Ready(mut run) => {
            run.show_progress();
            let stop = stop.clone();
            report(
                run_dir,
                rt.block_on(run.drive(async move { stop.requested().await })),
            )
        }
        Started::SftStopped { step, steps } => {
            eprintln!(
                "stopped during SFT after step {step} of {steps}; its checkpoint is in {}; \
                 continue with: exspin resume {}",
                run_dir.join("sft-checkpoint").display(),
                run_dir.display()
            );
            Ok(())
        }
    }
}

/// What a graceful stop says: the checkpoint's step and round (where `exspin resume` continues),
/// and the steps that finished after it was cut, which the resumed run trains again.
fn stop_message(
    steps_done: u64,
    checkpoint_step: u64,
    checkpoint_round: u64,
    checkpoint: &Path,
    run_dir: &Path,
) -> String {
    let redo = steps_done.saturating_sub(checkpoint_step);
    let after = match redo {
        0 => String::new(),
        1 => " (the one step that finished after it will run again)".to_string(),
        n => format!(" (the {n} steps that finished after it will run again)"),
    };
    format!(
        "stopped; checkpoint {} is at step {checkpoint_step} (round {checkpoint_round}){after}; \
         continue with: exspin resume {}",
        checkpoint.display(),
        run_dir.display()
    )
}

fn report(run_dir: &Path, end: anyhow::Result<RunEnd>) -> anyhow::Result<()> {
    let end = end?;
    let s: &summary::Summary = &end.summary;
    match end.stopped_at {
        Some(Ok(ckpt)) => {
            let meta = exspin_actors::state::checkpoint::read(&ckpt).with_context(|| {
                format!("reading the checkpoint just written, {}", ckpt.display())
            })?;
            eprintln!(
                "{}",
                stop_message(s.steps, meta.step, meta.round, &ckpt, run_dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_message_names_the_checkpoints_step_and_the_steps_to_redo() {
        let (ckpt, run) = (Path::new("r/checkpoints/step-00000172"), Path::new("r"));
        let m = stop_message(173, 172, 1, ckpt, run);
        assert!(m.contains("is at step 172 (round 1)"), "{m}");
        assert!(m.contains("the one step that finished after it"), "{m}");
        assert!(m.ends_with("continue with: exspin resume r"), "{m}");
        assert!(stop_message(175, 172, 1, ckpt, run).contains("the 3 steps"));
        let exact = stop_message(172, 172, 1, ckpt, run);
        assert!(!exact.contains("again"), "{exact}");
    }
}

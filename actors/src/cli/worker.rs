//! `exspin worker --join HOST:PORT --cookie-file F [--generators N] [--executors M --databases
//! DIR]`: a fleet node that hosts opponents and SQL executors for a head (`exspin run ...
//! --listen HOST:PORT --cookie-file F`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use exspin::sql::executor::{ExecutorConfig, ExecutorPool};
use exspin_actors::fleet::node::{Node, read_cookie};
use exspin_actors::hosts::executor_host::{ExecutorHost, ExecutorHostArgs};
use exspin_actors::hosts::generator_host::{GeneratorHost, GeneratorHostArgs};
use exspin_actors::runtime::StopFlag;
use ractor::Actor;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example (the head on node A, a worker on node B, a shared filesystem):\n  \
A$ exspin run configs/spider-qwen-0.5b-cpu.toml --run-dir runs/q --listen 10.0.0.1:7700 --cookie-file ~/.exspin-cookie\n  \
B$ exspin worker --join 10.0.0.1:7700 --cookie-file ~/.exspin-cookie --databases ../shared/data/spider/database"
)]
pub struct WorkerArgs {
    /// The head's fleet address (its `exspin run --listen`).
    #[arg(long, value_name = "HOST:PORT")]
    pub join: String,
    /// A file whose first line is the job's shared secret (the head's --cookie-file). A worker
    /// with another cookie is refused.
    #[arg(long, value_name = "FILE")]
    pub cookie_file: PathBuf,
    /// The head's --tls-* files' counterparts: this node's certificate and key, signed by the
    /// same CA as the head's.
    #[command(flatten)]
    pub tls: crate::cli::args::tls::TlsArgs,
    /// This node's copy of the head's database folder (e.g. spider/database): databases are
    /// opened by their path under it and refused when their bytes differ from the head's.
    /// Needed with --executors (not for opponents only).
    #[arg(long, value_name = "DIR")]
    pub databases: Option<PathBuf>,
    /// SQL executor actors to host (each judges one batch at a time).
    #[arg(long, default_value_t = 0)]
    pub executors: usize,
    /// Opponent actors to host (each answers one batch of prompts at a time with the head's
    /// job's model, loading its published versions from the head's run folder, which this node
    /// must then see at the same path, or from its copy with --fetch-weights).
    #[arg(long, default_value_t = 0)]
    pub generators: usize,
    /// The device this worker's opponents run on (cpu, cuda, cuda:N), whatever the job's
    /// model.device says; e.g. GPU workers for a head on a CPU node.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<exspin_actors::config::DeviceSpec>,
    #[command(flatten)]
    pub threads: crate::cli::args::compute::ThreadsArgs,
    /// Seconds a query may run before it is interrupted.
    #[arg(long, default_value_t = 10)]
    pub query_timeout_s: u64,
    /// Where this node listens (port 0: any free port). Loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Seconds to wait for the head to accept this node.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout_s: u64,
    /// Serve this worker's metrics (Prometheus text format) on 127.0.0.1:PORT.
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,
    /// Seconds to keep trying to connect (with back-off) while the head is not there: before it
    /// listens, and each time it goes away (e.g. while it is restarted with `exspin resume`).
    #[arg(long, default_value_t = 60)]
    pub reconnect_s: u64,
    /// Copy the job's published weights from the head over the link into DIR (one folder per
    /// job, each file checked against the head's SHA-256) instead of reading the head's run
    /// folder, for nodes without a shared filesystem.
    #[arg(long, value_name = "DIR")]
    pub fetch_weights: Option<PathBuf>,
    /// Measurement (`exspin bench weights`): copy these folders of the head's run folder into
    /// --fetch-weights, print one JSON line per folder (seconds, bytes) and exit.
    #[arg(long, value_name = "FOLDER", hide = true, requires = "fetch_weights")]
    pub fetch_only: Vec<String>,
    /// Fault injection for tests: SIGKILL this process on receiving the K-th batch, before
    /// answering it.
    #[arg(long, value_name = "K", hide = true)]
    pub fault_abort_on_batch: Option<u64>,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.executors + args.generators > 0 || !args.fetch_only.is_empty(),
        "give --executors or --generators: a worker hosts at least one actor"
    );
    args.threads.apply()?;
    if let Some(d) = args.device {
        d.check_built("--device")?;
    }
    let databases = match (&args.databases, args.executors) {
        (_, 0) => PathBuf::new(),
        (None, _) => anyhow::bail!(
            "--executors needs --databases: this node's copy of the head's database folder"
        ),
        (Some(d), _) => {
            anyhow::ensure!(
                d.is_dir(),
                "--databases {} is not a folder; give this node's copy of the head's database folder",
                d.display()
            );
            d.clone()
        }
    };
    let cookie = read_cookie(&args.cookie_file)?;
    let _metrics = args
        .metrics_port
        .map(exspin_actors::fleet::serve_metrics)
        .transpose()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let stop = StopFlag::on_signals()?;
        let name = format!("exspin-worker-{}", std::process::id());
        let node = Node::start(&name, args.listen, cookie, args.tls.files().as_ref()).await?;
        let connect_timeout = Duration::from_secs(args.connect_timeout_s);
        let within = Duration::from_secs(args.reconnect_s);
        // The head may not listen yet (workers often start first on a cluster): wait for it.
        node.connect_with_retry(&args.join, connect_timeout, within, || stop.is_requested())
            .await?;
        if !args.fetch_only.is_empty() {
            let into = args.fetch_weights.clone().expect("clap requires it");
            for folder in &args.fetch_only {
                let started = std::time::Instant::now();
                let done = exspin_actors::fleet::weights::mirror(folder, &into).await?;
                println!(
                    "{}",
                    serde_json::json!({
                        "folder": folder,
                        "seconds": started.elapsed().as_secs_f64(),
                        "bytes": done.bytes,
                        "files": done.files,
                    })
                );
            }
            node.stop().await;
            return anyhow::Ok(());
        }
        let pool = Arc::new(ExecutorPool::new(ExecutorConfig {
            timeout: Duration::from_secs(args.query_timeout_s),
            workers: args.executors,
            queue_capacity: 4 * args.executors,
            ..Default::default()
        }));
        let mut hosts = Vec::new();
        let mut generators = Vec::new();
        for _ in 0..args.generators {
            generators.push(
                Actor::spawn(
                    None,
                    GeneratorHost,
                    GeneratorHostArgs {
                        fetch_into: args.fetch_weights.clone(),
                        device: args.device,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("starting an opponent: {e}"))?,
            );
        }
        for _ in 0..args.executors {
            let (host, handle) = Actor::spawn(
                None,
                ExecutorHost,
                ExecutorHostArgs {
                    databases: databases.clone(),
                    pool: pool.clone(),
                    abort_on_batch: args.fault_abort_on_batch,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("starting an executor: {e}"))?;
            hosts.push((host, handle));
        }
        metrics::gauge!("exspin_fleet_executors_hosted").set(args.executors as f64);
        metrics::gauge!("exspin_fleet_generators_hosted").set(args.generators as f64);
        eprintln!(
            "worker {name}: joined {} with {} executors over {} and {} opponents",
            args.join,
            args.executors,
            databases.display(),
            args.generators
        );
        // The head may come back (`exspin resume` after a crash): reconnect with back-off, for
        // at most --reconnect-s seconds each time it goes away.
        let mut lost = 0;
        loop {
            tokio::select! {
                _ = node.disconnected(lost) => {}
                _ = stop.requested() => {
                    eprintln!("worker {name}: stop requested");
                    break;
                }
            }
            lost += 1;
            eprintln!(
                "worker {name}: the head went away; reconnecting for up to {} s",
                args.reconnect_s
            );
            let back = match node
                .connect_with_retry(&args.join, connect_timeout, within, || stop.is_requested())
                .await
            {
                Ok(()) => {
                    eprintln!("worker {name}: rejoined {}", args.join);
                    true
                }
                Err(e @ exspin_actors::fleet::node::ConnectError::Refused { .. }) => {
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::debug!("worker {name}: {e}");
                    false
                }
            };
            if !back {
                eprintln!("worker {name}: the head did not come back; stopping");
                break;
            }
        }
        for (host, handle) in hosts {
            host.stop(None);
            let _ = handle.await;
        }
        for (host, handle) in generators {
            host.stop(None);
            let _ = handle.await;
        }
        node.stop().await;
        anyhow::Ok(())
    })
}

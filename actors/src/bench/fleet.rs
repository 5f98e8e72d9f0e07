//! `exspin bench fleet`: the same job with 1, 2, 4, … workers hosting one opponent each, the head
//! in this process and the workers as child processes on loopback. Each run starts once every
//! worker's opponent is visible to the head, so set-up and joining are not timed. Samples/s per
//! worker count, the scaling efficiency `samples_per_s[k] / (k · samples_per_s[1])`, and the
//! head's ceiling: the same job with generation costing nothing, so that the head (prompt
//! building, judging, the replay buffer, the trainer) is all that limits.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::config::{JobConfig, ModelSource};
use crate::fleet::node::Node;

#[derive(Debug, Clone, Serialize)]
pub struct FleetRun {
    pub workers: usize,
    pub wall_s: f64,
    pub samples: u64,
    pub samples_remote: u64,
    pub samples_per_s: f64,
}

/// Kills the workers when dropped (a failed run leaves none behind).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs `config` with `workers` worker processes (`exe worker ...`), each hosting one opponent;
/// the head runs `workers` opponents (at least one), so every worker has a batch in flight.
pub fn run_with_workers(
    config: &JobConfig,
    workers: usize,
    exe: &Path,
) -> anyhow::Result<FleetRun> {
    let mut config = config.clone();
    config.run.generators = workers.max(1);
    config.run.faults.clear();
    config.metrics.prometheus_port = 0;
    config.validate().context("the fleet bench's config")?;
    let tmp = tempfile::tempdir().context("creating a temporary run folder")?;
    let cookie = tmp.path().join("cookie");
    std::fs::write(&cookie, format!("bench-{}\n", std::process::id()))?;
    let text = toml::to_string(&config)?;
    std::fs::write(tmp.path().join("config.toml"), &text)?;
    let ctx = crate::runtime::prepare(config, &text, tmp.path())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let listen = addr.parse()?;
    let node = rt.block_on(Node::start(
        "exspin-bench-head",
        listen,
        format!("bench-{}", std::process::id()),
        None,
    ))?;
    let mut children = Workers(Vec::new());
    for _ in 0..workers {
        children.0.push(
            Command::new(exe)
                .args([
                    "worker",
                    "--join",
                    &addr,
                    "--generators",
                    "1",
                    "--threads",
                    "1",
                ])
                .args(["--reconnect-s", "0", "--cookie-file"])
                .arg(&cookie)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting a worker")?,
        );
    }
    let joined = Instant::now();
    while crate::fleet::remote::remote_generator_count() < workers {
        anyhow::ensure!(
            joined.elapsed() < Duration::from_secs(60),
            "only {} of {workers} workers joined within 60 s",
            crate::fleet::remote::remote_generator_count()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let end = rt.block_on(crate::runtime::drive(ctx, None, std::future::pending()))?;
    let wall = started.elapsed().as_secs_f64();
    drop(children);
    rt.block_on(node.stop());
    rt.shutdown_timeout(Duration::from_secs(5));
    let s = end.summary;
    anyhow::ensure!(s.finished, "the run with {workers} workers did not finish");
    Ok(FleetRun {
        workers,
        wall_s: wall,
        samples: s.samples_generated,
        samples_remote: s.samples_generated_remote,
        samples_per_s: s.samples_generated as f64 / wall,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetBench {
    pub runs: Vec<FleetRun>,
    /// Per run: samples_per_s[k] / (k · samples_per_s[1]).
    pub scaling_efficiency: Vec<f64>,
    /// The same job with generation costing nothing, on the largest worker count: what the head
    /// alone sustains.
    pub head_ceiling_samples_per_s: f64,
    /// The fleet size at which the head saturates for this config's per-worker rate.
    pub head_saturates_at_workers: f64,
}

pub fn bench(config: &JobConfig, workers: &[usize], exe: &Path) -> anyhow::Result<FleetBench> {
    anyhow::ensure!(
        matches!(config.model.source, ModelSource::Fake(_)),
        "the fleet bench runs the fake model (e.g. configs/fleet-fake.toml)"
    );
    anyhow::ensure!(
        workers.first() == Some(&1),
        "--workers must start with 1 (the baseline of the scaling efficiency)"
    );
    let mut runs = Vec::new();
    for &k in workers {
        let r = run_with_workers(config, k, exe)?;
        eprintln!(
            "{k} workers: {:.2} s, {} samples ({} on workers), {:.1} samples/s",
            r.wall_s, r.samples, r.samples_remote, r.samples_per_s
        );
        runs.push(r);
    }
    let one = runs[0].samples_per_s;
    let scaling_efficiency = runs
        .iter()
        .map(|r| r.samples_per_s / (r.workers as f64 * one))
        .collect();
    let mut free = config.clone();
    if let ModelSource::Fake(f) = &mut free.model.source {
        f.generate_ms = 0;
    }
    // Free generation finishes the job in well under a second: ten times the rounds make the
    // ceiling a measurement rather than start-up noise.
    free.run.rounds *= 10;
    let top = *workers.last().expect("not empty");
    let ceiling = run_with_workers(&free, top, exe)?;
    eprintln!(
        "head ceiling ({top} workers, generation free): {:.1} samples/s",
        ceiling.samples_per_s
    );
    Ok(FleetBench {
        head_saturates_at_workers: ceiling.samples_per_s / one,
        head_ceiling_samples_per_s: ceiling.samples_per_s,
        runs,
        scaling_efficiency,
    })
}

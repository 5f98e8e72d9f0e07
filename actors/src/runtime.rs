//! The library's entry point: a [`Run`] is built (data, prompts, the models behind the seams, the
//! executor pool; with a real model, the SFT phase first) or resumed from its newest checkpoint,
//! and driven to the end or to a stop signal, which writes a checkpoint. [`RunEnd`] holds the
//! summary and what the stages processed.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use exspin::data::{Dataset, spider, synthetic};
use exspin::sql::executor::{ExecutorConfig, ExecutorPool};
use parking_lot::{Mutex, RwLock};
use ractor::Actor;
use sha2::{Digest, Sha256};

use crate::config::{DataSource, FakeModel, JobConfig, Mode, ModelSource, Stage};
use crate::logic::buffer::BufferSnapshot;
use crate::logic::prompts::Prompter;
use crate::models::fakes::{FakeDevEvaluator, FakeGenerator, FakeLearner, FakeLearnerState};
use crate::observe::stage_bars::StageBars;
use crate::protocol::seams::WeightsHandle;
use crate::stages::context::Ctx;
use crate::stages::fault::Faults;
use crate::stages::messages::SupervisorMsg;
use crate::stages::supervisor::{Supervisor, SupervisorArgs};
use crate::state::checkpoint::CheckpointMeta;
use crate::state::journal::Journal;
use crate::state::summary::{self, Summary};

pub use crate::models::real::reuse::copy_version0;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A job's data: train (what SFT and self-play learn from), validation (held out of train for
/// the SFT phase's early stopping; empty unless `sft.validation` > 0) and dev.
pub struct Splits {
    pub train: Dataset,
    pub validation: Dataset,
    pub dev: Dataset,
}

/// Loads (or, for the synthetic default, generates into `RUN/data`) the splits.
pub fn load_data(config: &JobConfig, run_dir: &Path) -> anyhow::Result<Splits> {
    let (dir, holdout): (PathBuf, usize) = match &config.data.source {
        DataSource::Synthetic(s) => {
            let dir = run_dir.join("data");
            if !dir.join("dev.json").is_file() {
                let synth = synthetic::SynthConfig {
                    seed: s.seed,
                    train_examples: s.train,
                    dev_examples: s.dev,
                    ..Default::default()
                };
                synthetic::generate(&synth, &dir).with_context(|| {
                    format!("generating the synthetic dataset in {}", dir.display())
                })?;
            }
            (dir, s.holdout)
        }
        DataSource::Spider { path } => (path.clone(), 0),
    };
    let mut train = spider::load(&dir, "train")?;
    let mut dev = spider::load(&dir, "dev")?;
    if holdout > 0 {
        let mut examples = std::mem::take(&mut train.examples);
        let held = examples.split_off(examples.len().saturating_sub(holdout));
        let (kind, source, root) = (
            train.kind,
            train.source.clone(),
            train.database_root.clone(),
        );
        dev = Dataset::new(kind, source.clone(), root.clone(), held);
        train = Dataset::new(kind, source, root, examples);
    }
    if config.data.train_limit > 0 {
        train.truncate(config.data.train_limit);
    }
    if config.data.dev_stratified {
        let picked = exspin::eval::stratified_by_hardness(&dev, config.data.dev_limit);
        dev.retain_indices(&picked);
    } else {
        dev.truncate(config.data.dev_limit);
    }
    let (train, validation) =
        exspin::data::holdout::hold_out(train, config.sft.validation, config.sft_seed());
    Ok(Splits {
        train,
        validation,
        dev,
    })
}

/// Hash of what the run learns from: every example's id, database, question and gold query.
pub fn data_hash(train: &Dataset, dev: &Dataset) -> String {
    let bytes = serde_json::to_vec(&(&train.examples, &dev.examples)).expect("examples serialize");
    sha256_hex(&bytes)
}

/// Everything a run needs: data, prompts, the seams (fake, or the real model after its SFT phase,
/// see `real::setup`), the executor pool.
/// A request to stop, shared by the signal handlers and the run: the SFT phase asks it between
/// steps, the running pipeline waits on it.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<(AtomicBool, tokio::sync::Notify)>);

impl StopFlag {
    pub fn request(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    pub fn is_requested(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    /// Resolves once a stop is requested.
    pub async fn requested(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.is_requested() {
                return;
            }
            notified.await;
        }
    }

    /// A flag that SIGTERM and SIGINT set, from now on. Call inside a tokio runtime (the
    /// handlers are installed before this returns, so a signal during set-up or SFT is caught).
    pub fn on_signals() -> anyhow::Result<StopFlag> {
        use tokio::signal::unix::{SignalKind, signal};
        let flag = StopFlag::default();
        let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let f = flag.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            eprintln!(
                "stop requested: finishing the current step, then writing a checkpoint (a second \
                 Ctrl-C exits at once)"
            );
            f.request();
            // A step can be long (a dev pass, a round's generation). Everything on disk is
            // written atomically, so leaving now costs the work since the last checkpoint and
            // corrupts nothing; `exspin resume` goes on from there.
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            eprintln!(
                "second stop request: exiting now; `exspin resume` continues from the last checkpoint"
            );
            std::process::exit(130);
        });
        Ok(flag)
    }
}

/// A run prepared as far as it got.
pub enum Prepared {
    Ready(Arc<Ctx>),
    /// The SFT phase stopped on a request after `step` of `steps`, its checkpoint written.
    SftStopped {
        step: usize,
        steps: usize,
    },
}

pub(crate) fn prepare(
    config: JobConfig,
    config_text: &str,
    run_dir: &Path,
) -> anyhow::Result<Arc<Ctx>> {
    match prepare_stoppable(config, config_text, run_dir, &StopFlag::default())? {
        Prepared::Ready(ctx) => Ok(ctx),
        Prepared::SftStopped { .. } => unreachable!("nothing requests a stop"),
    }
}

fn prepare_stoppable(
    config: JobConfig,
    config_text: &str,
    run_dir: &Path,
    stop: &StopFlag,
) -> anyhow::Result<Prepared> {
    let Splits {
        train,
        validation,
        dev,
    } = load_data(&config, run_dir)?;
    let order = crate::logic::plan::permutation(&train, config.run.seed);
    anyhow::ensure!(
        config.run.prompts_per_round <= order.len(),
        "run.prompts_per_round = {} but the train split has only {} usable examples; lower it \
         (an example may appear once per round)",
        config.run.prompts_per_round,
        order.len()
    );
    let follow = match &config.run.follow {
        Some(path) => {
            let followed = crate::state::follow::read(run_dir, path)?;
            followed
                .check_plan(
                    &train,
                    &order,
                    config.run.rounds,
                    config.run.prompts_per_round,
                    config.run.samples_per_prompt,
                )
                .with_context(|| {
                    format!(
                        "run.follow = {:?}: the runs do not match",
                        path.display().to_string()
                    )
                })?;
            Some(followed)
        }
        None => None,
    };
    let faults = Faults::new(&config.run.faults).map_err(|e| anyhow::anyhow!("faults: {e}"))?;
    let prompter = Prompter::new(&config.model, &train, &run_dir.join("cache"))?;
    let (generators, learner, evaluator): crate::models::real::setup::Seams =
        match &config.model.source {
            ModelSource::Fake(fake) => fake_seams(&config, fake, &dev, run_dir),
            _ => {
                let stop = || stop.is_requested();
                match crate::models::real::setup::build(
                    &config,
                    run_dir,
                    &train,
                    &validation,
                    &dev,
                    &prompter,
                    &stop,
                )? {
                    crate::models::real::setup::Built::Seams(seams) => seams,
                    crate::models::real::setup::Built::SftStopped { step, steps } => {
                        return Ok(Prepared::SftStopped { step, steps });
                    }
                }
            }
        };
    let pool = ExecutorPool::new(ExecutorConfig {
        timeout: Duration::from_millis(config.run.executor_timeout_ms),
        // Unused when cluster.local_executors = 0 (every batch goes to a worker).
        workers: config
            .cluster
            .local_executors(config.run.executor_workers)
            .max(1),
        queue_capacity: config.run.executor_queue,
        ..Default::default()
    });
    let weights_of: Box<dyn Fn(u64) -> WeightsHandle + Send + Sync> = match config.model.source {
        ModelSource::Fake(_) => Box::new(|version| WeightsHandle {
            version,
            path: None,
        }),
        _ => {
            let run_dir = run_dir.to_path_buf();
            Box::new(move |version| WeightsHandle {
                version,
                path: Some(crate::models::real::weights_dir(&run_dir, version)),
            })
        }
    };
    Ok(Prepared::Ready(Arc::new(Ctx {
        weights_of,
        journal: Arc::new(Mutex::new(Journal::fresh())),
        ledger: Mutex::new(crate::state::ledger::Ledger::new(run_dir)),
        peers: RwLock::new(Default::default()),
        faults,
        generators: generators
            .into_iter()
            .map(|g| Arc::new(Mutex::new(g)))
            .collect(),
        follow,
        learner: Arc::new(Mutex::new(learner)),
        evaluator: Arc::new(Mutex::new(evaluator)),
        pool: Arc::new(pool),
        prompter: Arc::new(prompter),
        data_hash: data_hash(&train, &dev),
        train: Arc::new(train),
        order,
        run_dir: run_dir.to_path_buf(),
        config_hash: crate::state::checkpoint::config_hash(config_text),
        config,
        stats: Default::default(),
        progress: Default::default(),
        gave_up: Mutex::new(None),
        round_clock: Mutex::new(std::time::Instant::now()),
        stop_requested: std::sync::atomic::AtomicBool::new(false),
    })))
}

fn fake_seams(
    config: &JobConfig,
    m: &FakeModel,
    dev: &Dataset,
    run_dir: &Path,
) -> crate::models::real::setup::Seams {
    let fake = |version| FakeGenerator {
        seed: config.run.seed,
        p0: m.p0,
        p_step: m.p_step,
        version,
        delay_per_prompt: Duration::ZERO,
        frozen_reference: config.run.mode == Mode::Dpo,
    };
    let dev_ids = dev
        .evaluable_examples()
        .map(|(_, e)| (e.id.clone(), e.gold_sql.clone()))
        .collect();
    (
        (0..config.generators_here())
            .map(|_| {
                crate::models::opponent::opponent_for(config, Path::new(""), None)
                    .expect("the fake opponent needs no files")
            })
            .collect(),
        Box::new(FakeLearner {
            state: FakeLearnerState::default(),
            step_delay: Duration::from_millis(m.step_ms),
        }),
        Box::new(FakeDevEvaluator {
            generator: fake(0),
            dev_ids,
            run_dir: run_dir.to_path_buf(),
            delay: Duration::from_millis(m.evaluate_ms),
        }),
    )
}

/// Puts a checkpoint back: journal, trainer state, opponent weights. Refuses a checkpoint made
/// with another config or other data.
fn restore(ctx: &Ctx, dir: &Path, meta: CheckpointMeta) -> anyhow::Result<BufferSnapshot> {
    anyhow::ensure!(
        crate::state::extend::is_own_config(&ctx.run_dir, &ctx.config_hash, &meta.config_hash)?,
        "the config in {} differs from the one checkpoint {} was made with; resuming would mix two \
         runs. Restore the original config.toml or start a new run with `exspin run` (to give a \
         run more rounds, `exspin resume RUN --rounds N`)",
        ctx.run_dir.display(),
        dir.display()
    );
    anyhow::ensure!(
        meta.data_hash == ctx.data_hash,
        "the dataset differs from the one checkpoint {} was made with (data hash {} vs {}); restore \
         the original data or start a new run",
        dir.display(),
        &meta.data_hash[..12.min(meta.data_hash.len())],
        &ctx.data_hash[..12.min(ctx.data_hash.len())]
    );
    ctx.learner
        .lock()
        .restore_state(dir)
        .with_context(|| format!("restoring the learner from {}", dir.display()))?;
    let weights = meta.journal.weights.clone().unwrap_or(WeightsHandle {
        version: 0,
        path: None,
    });
    for g in &ctx.generators {
        g.lock().load_version(&weights)?;
    }
    truncate_metrics(&ctx.run_dir.join("metrics.jsonl"), meta.step)?;
    // The round's time goes on from the checkpoint's count: what ran after it is run again.
    *ctx.round_clock.lock() = std::time::Instant::now();
    let mut journal = meta.journal;
    // A finished run given more rounds (`extend`) goes on.
    journal.finished &= journal.round >= ctx.config.run.rounds;
    *ctx.journal.lock() = journal;
    Ok(meta.buffer)
}

/// Drops metrics lines of steps after the checkpoint (they are trained again).
fn truncate_metrics(path: &Path, step: u64) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path, kept)?;
    Ok(())
}

/// A run ready to drive: new, or put back to a checkpoint.
pub struct Run {
    ctx: Arc<Ctx>,
    restore: Option<BufferSnapshot>,
}

impl Run {
    /// A new run of `config` in `run_dir` (`config_text` is what the checkpoints' config hash is
    /// of: the file the caller wrote as `RUN/config.toml`). Loads or generates the data, builds
    /// every prompt, and with a real model runs the SFT phase unless version 0 is there already.
    pub fn new(config: JobConfig, config_text: &str, run_dir: &Path) -> anyhow::Result<Run> {
        Ok(Run {
            ctx: prepare(config, config_text, run_dir)?,
            restore: None,
        })
    }

    /// As [`Run::new`], stopping when `stop` is requested during the SFT phase (its checkpoint
    /// then written: [`Started::SftStopped`]); `exspin run` passes [`StopFlag::on_signals`].
    pub fn start(
        config: JobConfig,
        config_text: &str,
        run_dir: &Path,
        stop: &StopFlag,
    ) -> anyhow::Result<Started> {
        Ok(
            match prepare_stoppable(config, config_text, run_dir, stop)? {
                Prepared::Ready(ctx) => Started::Ready(Run { ctx, restore: None }),
                Prepared::SftStopped { step, steps } => Started::SftStopped { step, steps },
            },
        )
    }

    /// As [`Run::resume`], stopping when `stop` is requested during a resumed SFT phase.
    pub fn resume_start(run_dir: &Path, stop: &StopFlag) -> anyhow::Result<Started> {
        let config_path = run_dir.join("config.toml");
        anyhow::ensure!(
            config_path.is_file(),
            "{} is not a run folder (no config.toml); give the folder passed to `exspin run \
             --run-dir`",
            run_dir.display()
        );
        let (config, text) = JobConfig::load(&config_path)?;
        if crate::state::checkpoint::list(run_dir)?.is_empty()
            && !crate::models::real::weights_dir(run_dir, 0)
                .join("config.json")
                .is_file()
        {
            // Stopped before the rounds began (during set-up or SFT): start them again, SFT from
            // its checkpoint when it has one.
            eprintln!("resuming {} before its rounds", run_dir.display());
            truncate_metrics(&run_dir.join("metrics.jsonl"), 0)?;
            return Run::start(config, &text, run_dir, stop);
        }
        let (dir, meta) = crate::state::checkpoint::read_latest(run_dir)?;
        eprintln!(
            "resuming from {} (step {}, round {})",
            dir.display(),
            meta.step,
            meta.round
        );
        let ctx = match prepare_stoppable(config, &text, run_dir, stop)? {
            Prepared::Ready(ctx) => ctx,
            Prepared::SftStopped { step, steps } => {
                return Ok(Started::SftStopped { step, steps });
            }
        };
        let buffer = restore(&ctx, &dir, meta)?;
        Ok(Started::Ready(Run {
            ctx,
            restore: Some(buffer),
        }))
    }

    /// The run in `run_dir` (made by `exspin run`), put back to its newest checkpoint. Refuses
    /// when its config.toml or its data changed since that checkpoint.
    pub fn resume(run_dir: &Path) -> anyhow::Result<Run> {
        match Run::resume_start(run_dir, &StopFlag::default())? {
            Started::Ready(run) => Ok(run),
            Started::SftStopped { .. } => unreachable!("nothing requests a stop"),
        }
    }

    /// One progress bar per stage on stderr (drawn only when stderr is a terminal), from where
    /// the journal is.
    pub fn show_progress(&mut self) {
        let bars = StageBars::stderr(&self.ctx.config, &self.ctx.journal.lock());
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.progress = bars;
        }
    }

    /// Runs the supervisor tree until the run finishes or `stop` resolves (then: checkpoint,
    /// stop); `exspin run` passes [`StopFlag::requested`] of [`StopFlag::on_signals`].
    pub async fn drive(self, stop: impl Future<Output = ()>) -> anyhow::Result<RunEnd> {
        drive(self.ctx, self.restore, stop).await
    }
}

/// How [`Run::start`] ended: a run to drive, or its SFT phase stopped on request (the SFT
/// checkpoint written in `RUN/sft-checkpoint`; `exspin resume` continues it).
pub enum Started {
    Ready(Run),
    SftStopped { step: usize, steps: usize },
}

/// How a run ended.
#[derive(Debug)]
pub struct RunEnd {
    pub summary: Summary,
    /// The checkpoint written on a stop signal.
    pub stopped_at: Option<Result<PathBuf, String>>,
    /// The journal at the end (what the summary was built from).
    pub journal: Journal,
    /// Items each stage processed (the progress bars' positions).
    pub processed: BTreeMap<Stage, u64>,
}

pub(crate) async fn drive(
    ctx: Arc<Ctx>,
    restore: Option<BufferSnapshot>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<RunEnd> {
    // Kept until the run ends; dropping it closes the port.
    let _endpoint = match ctx.config.metrics.prometheus_port {
        0 => None,
        port => {
            let endpoint = crate::observe::telemetry::serve(port)?;
            eprintln!("Prometheus metrics on http://{}/metrics", endpoint.addr);
            Some(endpoint)
        }
    };
    // Appending resumes after the ids the journal counts (none for a new run; a resume cuts off
    // what was trained after its checkpoint).
    let count = ctx.journal.lock().trained_count;
    ctx.ledger.lock().reset_to(count)?;
    let (sup, mut handle) = Actor::spawn(
        None,
        Supervisor,
        SupervisorArgs {
            ctx: ctx.clone(),
            restore,
        },
    )
    .await
    .context("starting the runtime")?;
    let mut stopped_at = None;
    tokio::select! {
        r = &mut handle => r.context("the supervisor task")?,
        () = stop => {
            let r = ractor::call_t!(sup, SupervisorMsg::Terminate, 180_000)
                .map_err(|e| format!("{e}"))
                .and_then(|r| r);
            stopped_at = Some(r);
            handle.await.context("the supervisor task")?;
        }
    }
    ctx.progress.finish();
    let summary = summary::build(&ctx.journal, &ctx.config, &ctx.run_dir)?;
    summary::write(&ctx.run_dir, &summary)?;
    if let Some(why) = ctx.gave_up.lock().take() {
        anyhow::bail!(why);
    }
    let processed = Stage::ALL
        .into_iter()
        .map(|stage| (stage, ctx.progress.position(stage)))
        .collect();
    Ok(RunEnd {
        summary,
        stopped_at,
        journal: ctx.journal.lock().clone(),
        processed,
    })
}

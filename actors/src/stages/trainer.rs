//! Trainer actor: trains each batch once (pairs already in the journal are skipped, so a re-sent
//! batch is harmless), publishes θt+1 at the round's end, and writes checkpoints every N steps.

use std::io::Write;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;

use crate::config::Stage;
use crate::logic::buffer::{Batch, BufferSnapshot, ReplayBuffer};
use crate::observe::stats::Busy;
use crate::protocol::seams::Pair;
use crate::stages::context::{Ctx, send};
use crate::stages::messages::{ReplayMsg, SupervisorMsg, TrainerMsg};
use crate::state::checkpoint::{self, CheckpointMeta};
use crate::state::journal::Journal;

pub struct TrainerActor;

impl Actor for TrainerActor {
    type Msg = TrainerMsg;
    type State = Arc<Ctx>;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Arc<Ctx>, ActorProcessingErr> {
        Ok(ctx)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        ctx: &mut Arc<Ctx>,
    ) -> Result<(), ActorProcessingErr> {
        ctx.faults.tick(Stage::Trainer);
        match msg {
            TrainerMsg::Batch(batch) => on_batch(ctx, batch).await?,
            TrainerMsg::Checkpoint(reply) => {
                let _ = reply.send(write_checkpoint(ctx).await.map_err(|e| format!("{e:#}")));
            }
        }
        Ok(())
    }
}

async fn on_batch(ctx: &Arc<Ctx>, batch: Batch) -> Result<(), ActorProcessingErr> {
    if stop_requested(ctx) {
        // Neither trained nor acknowledged: the stop's checkpoint holds it in the buffer.
        tracing::debug!("a stop was asked for; batch {} left untrained", batch.id);
        return Ok(());
    }
    let fresh: Vec<Pair> = {
        let j = ctx.journal.lock();
        batch
            .pairs
            .into_iter()
            .filter(|p| !j.is_trained(&p.id))
            .collect()
    };
    if !fresh.is_empty() {
        let learner = ctx.learner.clone();
        let started = std::time::Instant::now();
        let (fresh, metrics) = tokio::task::spawn_blocking(move || {
            let m = learner.lock().train_step(&fresh);
            (fresh, m)
        })
        .await?;
        let m = metrics?;
        let took = started.elapsed();
        ctx.stats.add(Stage::Trainer, took);
        metrics::histogram!("exspin_train_step_seconds").record(took.as_secs_f64());
        metrics::counter!("exspin_pairs_trained_total").increment(fresh.len() as u64);
        metrics::counter!("exspin_train_steps_total").increment(1);
        metrics::gauge!("exspin_loss").set(m.loss);
        metrics::histogram!("exspin_loss_hist").record(m.loss);
        metrics::gauge!("exspin_reward_margin").set(m.reward_margin);
        let (step, round, version, tokens, tokens_per_s) = {
            let mut j = ctx.journal.lock();
            // Staleness: how many versions the generator of each pair lags behind θ now.
            let now = j.version();
            for p in &fresh {
                let lag = now.saturating_sub(p.version);
                metrics::histogram!("exspin_staleness").record(lag as f64);
                j.max_staleness = j.max_staleness.max(lag);
                j.stale_pairs += u64::from(lag > 0);
                *j.pairs_by_ref_version.entry(p.ref_version).or_default() += 1;
            }
            let ids = j.record_trained(fresh.into_iter().map(|p| p.id));
            ctx.progress.inc(Stage::Trainer, ids.len() as u64);
            // Under the journal's lock: a snapshot never counts an id the file lacks.
            ctx.ledger.lock().append(ids.iter().map(String::as_str))?;
            j.step += 1;
            j.loss_sum += m.loss;
            j.margin_sum += m.reward_margin;
            j.last_loss = Some(m.loss);
            j.trained_tokens += m.tokens;
            j.train_step_seconds += took.as_secs_f64();
            (
                j.step,
                j.round,
                j.version(),
                j.generated_tokens,
                j.generated_tokens_per_s(),
            )
        };
        let mut line = json!({"step": step, "round": round, "version": version, "loss": m.loss,
                          "reward_margin": m.reward_margin, "chosen_reward": m.chosen_reward,
                          "pairs": m.pairs,
                          "generated_tokens": tokens, "generated_tokens_per_s": tokens_per_s,
                          "trained_tokens": m.tokens,
                          "elapsed_s": ctx.stats.started.elapsed().as_secs_f64()});
        if let Some(nll) = m.gold_nll {
            line["gold_nll"] = json!(nll);
        }
        append_line(&ctx.run_dir.join("metrics.jsonl"), &line)?;
        let every = ctx.config.run.checkpoint_every;
        // On a stop the checkpoint is written next anyway, by the stop (its replay buffer may be
        // gone by the time this one would ask it).
        if every > 0 && step % every == 0 && !stop_requested(ctx) {
            let started = std::time::Instant::now();
            if let Err(e) = write_checkpoint(ctx).await {
                tracing::warn!("checkpoint at step {step} failed: {e:#}");
            }
            ctx.stats.add(Busy::Checkpoint, started.elapsed());
        }
    }
    send!(ctx, replay, ReplayMsg::Ack(batch.id));
    let publish = batch.end && ctx.journal.lock().round == batch.round;
    if publish {
        let learner = ctx.learner.clone();
        let started = std::time::Instant::now();
        let weights = tokio::task::spawn_blocking(move || {
            let published = learner.lock().publish();
            crate::observe::memory::release_after("publishing the round's version");
            published
        })
        .await??;
        ctx.stats.add(Stage::Trainer, started.elapsed());
        metrics::gauge!("exspin_version").set(weights.version as f64);
        let (pairs_trained, generate_seconds, train_step_seconds, round_seconds) = {
            let mut j = ctx.journal.lock();
            let round_seconds = ctx.count_round_time(&mut j);
            j.next_round();
            j.weights = Some(weights.clone());
            (
                j.trained_count,
                j.generate_seconds,
                j.train_step_seconds,
                round_seconds,
            )
        };
        // One line per closed round (`RUN/rounds.jsonl`): wall clock, pairs so far and the
        // round's peak memory, for the per-round table of a long run. A round closed again after
        // a resume appends a second line; the last one for a round counts.
        let line = json!({"round": batch.round, "version": weights.version,
                          "unix_s": std::time::SystemTime::now()
                              .duration_since(std::time::UNIX_EPOCH)
                              .map_or(0.0, |d| d.as_secs_f64()),
                          "elapsed_s": ctx.stats.started.elapsed().as_secs_f64(),
                          "round_seconds": round_seconds,
                          "pairs_trained": pairs_trained,
                          "generate_seconds": generate_seconds,
                          "train_step_seconds": train_step_seconds,
                          "peak_rss_bytes": crate::observe::memory::peak_rss_bytes()});
        crate::observe::memory::reset_peak();
        append_line(&ctx.run_dir.join("rounds.jsonl"), &line)?;
        send!(
            ctx,
            supervisor,
            SupervisorMsg::RoundTrained {
                round: batch.round,
                weights
            }
        );
    }
    Ok(())
}

/// Appends one JSON line to a log of the run (`metrics.jsonl`, `rounds.jsonl`).
fn append_line(path: &std::path::Path, line: &serde_json::Value) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")
}

fn stop_requested(ctx: &Ctx) -> bool {
    ctx.stop_requested.load(std::sync::atomic::Ordering::SeqCst)
}

/// Takes the cut while the trainer is between steps: the replay buffer and the journal in one
/// replay handler, the trainer seam under its lock.
pub async fn write_checkpoint(ctx: &Arc<Ctx>) -> anyhow::Result<std::path::PathBuf> {
    let replay = ctx
        .peers
        .read()
        .replay
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the replay buffer is not running"))?;
    let (buffer, journal) = ractor::call_t!(replay, ReplayMsg::Snapshot, 10_000)
        .map_err(|e| anyhow::anyhow!("asking the replay buffer for its snapshot: {e}"))?;
    write_cut(ctx, buffer, journal).await
}

/// A checkpoint from the journal alone, once every actor has stopped (the learner is then between
/// steps and the journal agrees with it): the replay buffer as a restart would rebuild it, so a
/// resume re-issues what was not trained or filtered, as after a restart of the replay buffer.
pub async fn write_checkpoint_from_journal(ctx: &Arc<Ctx>) -> anyhow::Result<std::path::PathBuf> {
    let journal = ctx.journal.lock().clone();
    let buffer = ReplayBuffer::new(
        crate::stages::replay::limits(ctx),
        journal.round,
        journal.resolved_round.clone(),
    )
    .snapshot();
    write_cut(ctx, buffer, journal).await
}

async fn write_cut(
    ctx: &Arc<Ctx>,
    buffer: BufferSnapshot,
    mut journal: Journal,
) -> anyhow::Result<std::path::PathBuf> {
    journal.round_seconds = ctx.count_round_time(&mut ctx.journal.lock());
    let meta = CheckpointMeta {
        format: checkpoint::FORMAT,
        written_by: Some(checkpoint::WRITTEN_BY.into()),
        step: journal.step,
        round: journal.round,
        seed: ctx.config.run.seed,
        config_hash: ctx.config_hash.clone(),
        data_hash: ctx.data_hash.clone(),
        buffer,
        journal,
    };
    let ctx2 = ctx.clone();
    let dir = tokio::task::spawn_blocking(move || {
        // Every id the snapshot counts is on disk before the checkpoint that counts it.
        ctx2.ledger.lock().sync()?;
        let learner = ctx2.learner.lock();
        anyhow::Ok(checkpoint::write(
            &ctx2.run_dir,
            &meta,
            &**learner,
            ctx2.config.run.keep_checkpoints,
        )?)
    })
    .await??;
    tracing::info!("checkpoint {}", dir.display());
    Ok(dir)
}

//! SQL-executor stage: judges each generation against the gold result with the real sandboxed
//! `ExecutorPool` (bounded queue, gold results cached per example) and the one judge,
//! `exspin::eval::Judge`: the same verdict `exspin eval` gives. No rows are compared here.

use std::sync::Arc;

use exspin::eval::{EvalOptions, Judge};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::Stage;
use crate::logic::judge::judge_all;
use crate::stages::messages::{ExecutorMsg, ReplayMsg};

use crate::stages::context::{Ctx, send};

pub struct ExecutorStage;

impl Actor for ExecutorStage {
    type Msg = ExecutorMsg;
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
        ctx.faults.tick(Stage::Executor);
        let ExecutorMsg::Judge(items) = msg;
        let pool = ctx.pool.clone();
        let train = ctx.train.clone();
        let judge = Judge::for_dataset(train.kind, EvalOptions::default());
        let started = std::time::Instant::now();
        metrics::gauge!("exspin_executor_inflight").set(items.len() as f64);
        // A worker's executor when the fleet has one; this process's pool when it has none or
        // the remote call fails (the same batch is judged here: nothing is lost or doubled).
        let items = match crate::fleet::remote::next_remote_executor() {
            None => items,
            Some(lease) => {
                let target = &lease.target;
                let timeout = std::time::Duration::from_millis(
                    ctx.config
                        .run
                        .executor_timeout_ms
                        .saturating_mul(items.len() as u64 + 2),
                );
                let tried = match crate::fleet::remote::request_for(&train, items.clone()) {
                    Ok(request) => {
                        crate::fleet::remote::judge_remote(target, &request, timeout).await
                    }
                    Err(e) => Err(e),
                };
                match tried {
                    Ok(judged) => {
                        metrics::counter!("exspin_fleet_remote_batches_total").increment(1);
                        ctx.journal.lock().samples_judged_remote += judged.len() as u64;
                        return finish(ctx, judged, started);
                    }
                    Err(e) => {
                        tracing::warn!("fleet: judging {} items here instead: {e:#}", items.len());
                        metrics::counter!("exspin_fleet_reissued_batches_total").increment(1);
                        items
                    }
                }
            }
        };
        let judged = tokio::task::spawn_blocking(move || {
            let scope = train.source.display().to_string();
            judge_all(&judge, &pool, &scope, |db| train.db_path(db), items)
        })
        .await?;
        finish(ctx, judged, started)
    }
}

/// Records a judged batch and hands it to the replay buffer.
fn finish(
    ctx: &Arc<Ctx>,
    judged: Vec<crate::protocol::seams::Judged>,
    started: std::time::Instant,
) -> Result<(), ActorProcessingErr> {
    let took = started.elapsed();
    ctx.stats.add(Stage::Executor, took);
    metrics::gauge!("exspin_executor_inflight").set(0.0);
    metrics::histogram!("exspin_judge_seconds").record(took.as_secs_f64());
    metrics::counter!("exspin_queries_total").increment(judged.len() as u64);
    ctx.progress.inc(Stage::Executor, judged.len() as u64);
    {
        let mut j = ctx.journal.lock();
        j.samples_judged += judged.len() as u64;
        for x in &judged {
            let name = x.verdict.name();
            metrics::counter!("exspin_verdicts_total", "verdict" => name).increment(1);
            *j.verdicts.entry(name.into()).or_insert(0) += 1;
        }
    }
    send!(ctx, replay, ReplayMsg::Judged(judged));
    Ok(())
}

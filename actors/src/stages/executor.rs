//! SQL-executor stage: judges each generation against the gold result with the real sandboxed
//! `ExecutorPool` (bounded queue, gold results cached per example) and the one judge,
//! `exspin::eval::Judge`: the same verdict `exspin eval` gives. No rows are compared here.

use std::sync::Arc;

use exspin::eval::{EvalOptions, Judge};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::Stage;
use crate::logic::judge::judge_all;
use crate::protocol::seams::{Judged, PromptItem, Sample};
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
        // the remote call fails (the same batch is judged here: nothing is lost or doubled). With
        // no executor here (`cluster.local_executors = 0`), workers only, waiting for one.
        if ctx
            .config
            .cluster
            .local_executors(ctx.config.run.executor_workers)
            == 0
        {
            let judged = judge_on_workers(ctx, &train, &items).await;
            return finish(ctx, judged, started);
        }
        if let Some(judged) = judge_on_a_worker(ctx, &train, &items).await {
            return finish(ctx, judged, started);
        }
        let judged = tokio::task::spawn_blocking(move || {
            let scope = train.source.display().to_string();
            judge_all(&judge, &pool, &scope, |db| train.db_path(db), items)
        })
        .await?;
        finish(ctx, judged, started)
    }
}

/// `items` judged by the least-loaded fleet worker's executor, or None when the fleet has none
/// or the call fails.
async fn judge_on_a_worker(
    ctx: &Ctx,
    train: &exspin::data::Dataset,
    items: &[(PromptItem, Sample)],
) -> Option<Vec<Judged>> {
    let lease = crate::fleet::remote::next_remote_executor()?;
    let timeout = std::time::Duration::from_millis(
        ctx.config
            .run
            .executor_timeout_ms
            .saturating_mul(items.len() as u64 + 2),
    );
    let tried = match crate::fleet::remote::request_for(train, items.to_vec()) {
        Ok(request) => crate::fleet::remote::judge_remote(&lease.target, &request, timeout).await,
        Err(e) => Err(e),
    };
    drop(lease);
    match tried {
        Ok(judged) => {
            metrics::counter!("exspin_fleet_remote_batches_total").increment(1);
            crate::stages::context::show_fleet(ctx, 0, judged.len() as u64);
            Some(judged)
        }
        Err(e) => {
            tracing::warn!("fleet: judging {} items elsewhere: {e:#}", items.len());
            metrics::counter!("exspin_fleet_reissued_batches_total").increment(1);
            crate::fleet::remote::note_reissued();
            crate::stages::context::show_fleet(ctx, 0, 0);
            None
        }
    }
}

/// `items` judged by a fleet worker, with no executor in this process (`cluster.local_executors
/// = 0`): tried again, on whichever worker is least loaded, until one answers.
async fn judge_on_workers(
    ctx: &Ctx,
    train: &exspin::data::Dataset,
    items: &[(PromptItem, Sample)],
) -> Vec<Judged> {
    crate::fleet::remote::until_a_worker_answers(
        || judge_on_a_worker(ctx, train, items),
        || {
            format!(
                "executor: no fleet worker has judged its {} items (cluster.local_executors = 0; \
                 start `exspin worker --executors N --databases DIR`)",
                items.len()
            )
        },
    )
    .await
}

/// Records a judged batch and hands it to the replay buffer.
fn finish(
    ctx: &Arc<Ctx>,
    judged: Vec<Judged>,
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

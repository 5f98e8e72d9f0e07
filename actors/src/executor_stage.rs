//! SQL-executor stage: judges each generation against the gold result with the real sandboxed
//! `ExecutorPool` (bounded queue, gold results cached per example) and `compare::results_match`.

use std::sync::Arc;

use exspin::sql::compare::{ComparisonRule, results_match};
use exspin::sql::executor::{ExecutorPool, Outcome};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::{Ctx, send};
use crate::messages::{ExecutorMsg, ReplayMsg};
use crate::seams::{Judged, PromptItem, Sample, Verdict};
use crate::stats::Stage;

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
        ctx.faults.tick("executor");
        let ExecutorMsg::Judge(items) = msg;
        let pool = ctx.pool.clone();
        let train = ctx.train.clone();
        let started = std::time::Instant::now();
        metrics::gauge!("exspin_executor_inflight").set(items.len() as f64);
        let judged =
            tokio::task::spawn_blocking(move || judge_all(&pool, |db| train.db_path(db), items))
                .await?;
        let took = started.elapsed();
        ctx.stats.add(Stage::Execute, took);
        metrics::gauge!("exspin_executor_inflight").set(0.0);
        metrics::histogram!("exspin_judge_seconds").record(took.as_secs_f64());
        metrics::counter!("exspin_queries_total").increment(judged.len() as u64);
        ctx.progress
            .inc(crate::stage_bars::Bar::Judged, judged.len() as u64);
        {
            let mut j = ctx.journal.lock();
            j.samples_judged += judged.len() as u64;
            for x in &judged {
                let name = verdict_name(&x.verdict);
                metrics::counter!("exspin_verdicts_total", "verdict" => name).increment(1);
                *j.verdicts.entry(name.into()).or_insert(0) += 1;
            }
        }
        send!(ctx, replay, ReplayMsg::Judged(judged));
        Ok(())
    }
}

pub fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Correct => "correct",
        Verdict::WrongResult => "wrong_result",
        Verdict::Error { .. } => "error",
        Verdict::Timeout => "timeout",
        Verdict::GoldFailed => "gold_failed",
    }
}

/// Submits every generation first (the pool runs them in parallel), then collects in order.
pub fn judge_all(
    pool: &ExecutorPool,
    db_path: impl Fn(&str) -> std::path::PathBuf,
    items: Vec<(PromptItem, Sample)>,
) -> Vec<Judged> {
    let tickets: Vec<_> = items
        .iter()
        .map(|(p, s)| pool.submit(&db_path(&p.db_id), &s.sql))
        .collect();
    items
        .into_iter()
        .zip(tickets)
        .map(|((prompt, sample), ticket)| {
            let gold = pool.gold(
                &prompt.example_id,
                &db_path(&prompt.db_id),
                &prompt.gold_sql,
            );
            let pred = ticket.recv().unwrap_or(Outcome::Error {
                message: "executor worker stopped".into(),
            });
            let verdict = verdict(&prompt.gold_sql, &gold, &pred);
            Judged {
                prompt,
                sample,
                verdict,
            }
        })
        .collect()
}

fn verdict(gold_sql: &str, gold: &Outcome, pred: &Outcome) -> Verdict {
    let Some(gold_rows) = gold.rows() else {
        return Verdict::GoldFailed;
    };
    match pred {
        Outcome::Rows { rows, .. } => {
            // The official script compares in order only when the gold query orders.
            let ordered = gold_sql.to_lowercase().contains("order by");
            if results_match(ComparisonRule::Spider, gold_rows, rows, ordered) {
                Verdict::Correct
            } else {
                Verdict::WrongResult
            }
        }
        Outcome::Timeout { .. } => Verdict::Timeout,
        other => Verdict::Error {
            kind: other.kind().to_string(),
        },
    }
}

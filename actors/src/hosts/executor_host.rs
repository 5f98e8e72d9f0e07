//! A worker's SQL executor: judges the head's batches with the one judge against the worker's
//! own copies of the databases (`--databases DIR`: the head's database root as this node sees
//! it), refusing any whose bytes differ from the head's.

use std::path::PathBuf;
use std::sync::Arc;

use exspin::eval::{EvalOptions, Judge};
use exspin::sql::executor::ExecutorPool;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::fleet::db_hash::sha256_of;
use crate::fleet::wire::{self, ExecutorHostMsg, JudgeReply, JudgeRequest};
use crate::logic::judge::judge_all;

pub struct ExecutorHost;

pub struct ExecutorHostArgs {
    pub databases: PathBuf,
    pub pool: Arc<ExecutorPool>,
    /// Fault injection: SIGKILL this process on receiving this batch (1-based, counted over the
    /// process's executors).
    pub abort_on_batch: Option<u64>,
}

static BATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Actor for ExecutorHost {
    type Msg = ExecutorHostMsg;
    type State = ExecutorHostArgs;
    type Arguments = ExecutorHostArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ExecutorHostArgs,
    ) -> Result<ExecutorHostArgs, ActorProcessingErr> {
        ractor::pg::join(
            crate::fleet::EXECUTORS_GROUP.to_string(),
            vec![myself.get_cell()],
        );
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut ExecutorHostArgs,
    ) -> Result<(), ActorProcessingErr> {
        let ExecutorHostMsg::Judge(bytes, reply) = msg;
        let batch = BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if state.abort_on_batch == Some(batch) {
            eprintln!("fault injected: SIGKILL on batch {batch}");
            // SAFETY: sends a signal to this process; no memory is touched.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        let databases = state.databases.clone();
        let pool = state.pool.clone();
        let answer =
            tokio::task::spawn_blocking(move || judge_request(&bytes, &databases, &pool)).await?;
        let _ = reply.send(wire::encode(&answer));
        Ok(())
    }
}

/// The reply to one encoded [`JudgeRequest`].
pub fn judge_request(bytes: &[u8], databases: &std::path::Path, pool: &ExecutorPool) -> JudgeReply {
    let request: JudgeRequest = match wire::decode(bytes) {
        Ok(r) => r,
        Err(e) => return JudgeReply::Refused(e.to_string()),
    };
    if let Some((p, _)) = request
        .items
        .iter()
        .find(|(p, _)| !request.databases.contains_key(&p.db_id))
    {
        return JudgeReply::Refused(format!(
            "the request names no file for database {}",
            p.db_id
        ));
    }
    for (db_id, db) in &request.databases {
        let path = databases.join(&db.relative);
        match sha256_of(&path) {
            Ok(h) if h == db.sha256 => {}
            Ok(_) => {
                return JudgeReply::Refused(format!(
                    "database {db_id}: {} differs from the head's copy (SHA-256)",
                    path.display()
                ));
            }
            Err(e) => {
                return JudgeReply::Refused(format!(
                    "database {db_id}: {}: {e} (is --databases the head's database folder?)",
                    path.display()
                ));
            }
        }
    }
    let judge = Judge::for_dataset(request.dataset, EvalOptions::default());
    let paths = request.databases.clone();
    let judged = judge_all(
        &judge,
        pool,
        &request.scope,
        |db_id| databases.join(&paths[db_id].relative),
        request.items,
    );
    metrics::counter!("exspin_fleet_judged_total").increment(judged.len() as u64);
    JudgeReply::Judged(judged)
}

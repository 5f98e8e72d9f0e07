//! Evaluator actor: dev execution accuracy of each published version, once per version.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::stages::context::{Ctx, send};
use crate::stages::messages::{EvaluatorMsg, SupervisorMsg};

pub struct Evaluator;

impl Actor for Evaluator {
    type Msg = EvaluatorMsg;
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
        ctx.faults.tick(crate::config::Stage::Evaluator);
        let EvaluatorMsg::Evaluate(weights) = msg;
        let version = weights.version;
        if !ctx.journal.lock().dev_ex.contains_key(&version) {
            let evaluator = ctx.evaluator.clone();
            let started = std::time::Instant::now();
            let acc = tokio::task::spawn_blocking(move || {
                let acc = evaluator.lock().evaluate(&weights);
                // The pass's model and caches were freed on this thread: give them back.
                crate::observe::memory::release_after(&format!(
                    "the dev pass of version {version}"
                ));
                acc
            })
            .await??;
            ctx.stats
                .add(crate::config::Stage::Evaluator, started.elapsed());
            metrics::gauge!("exspin_dev_ex").set(acc);
            ctx.journal.lock().dev_ex.insert(version, acc);
            ctx.progress.inc(crate::config::Stage::Evaluator, 1);
        }
        send!(ctx, supervisor, SupervisorMsg::Evaluated { version });
        Ok(())
    }
}

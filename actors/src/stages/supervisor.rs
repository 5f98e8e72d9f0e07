//! The supervisor: spawns every stage linked to itself, restarts a failed one with back-off, and
//! then re-synchronises the pipeline so the work the failed stage held is re-issued by id:
//!
//! 1. every opponent forgets its credits and queued prompts;
//! 2. the replay buffer voids outstanding credits, re-sends its un-acknowledged batches to the
//!    trainer and answers which sample ids of the round it has accounted for;
//! 3. the prompt builder re-issues every prompt with an unaccounted sample;
//! 4. the replay buffer grants credits again; missing dev evaluations are asked again.
//!
//! Duplicates this may create (work that was in flight, not lost) are dropped by sample id in the
//! replay buffer and by pair id in the trainer, so each sample is trained exactly once. The same
//! procedure starts a fresh run and a resumed one. It also drives the rounds (strict barrier).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::config::Stage;
use crate::logic::buffer::BufferSnapshot;
use crate::logic::restart_budget::RestartBudget;
use crate::protocol::seams::WeightsHandle;
use crate::stages::context::{Ctx, send};
use crate::stages::evaluator::Evaluator;
use crate::stages::executor::ExecutorStage;
use crate::stages::messages::*;
use crate::stages::opponent::Opponent;
use crate::stages::prompt_builder::PromptBuilder;
use crate::stages::replay::{Replay, ReplayArgs};
use crate::stages::trainer::TrainerActor;
use crate::state::summary;

/// One supervised actor: its stage and, for opponent-generators, which of `run.generators`
/// it is (0 for the other stages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Child {
    pub stage: Stage,
    pub index: usize,
}

impl Child {
    /// Every child, in start order (consumers before producers), with `generators` opponents.
    pub fn all(generators: usize) -> Vec<Child> {
        let one = |stage| Child { stage, index: 0 };
        let mut all = vec![
            one(Stage::Evaluator),
            one(Stage::Trainer),
            one(Stage::Replay),
            one(Stage::Executor),
        ];
        all.extend((0..generators).map(|index| Child {
            stage: Stage::Opponent,
            index,
        }));
        all.push(one(Stage::PromptBuilder));
        all
    }

    pub fn name(self) -> &'static str {
        self.stage.name()
    }
}

pub struct Supervisor;

pub struct SupervisorArgs {
    pub ctx: Arc<Ctx>,
    /// The checkpointed replay buffer, on resume.
    pub restore: Option<BufferSnapshot>,
}

pub struct State {
    ctx: Arc<Ctx>,
    children: HashMap<ActorId, Child>,
    /// Restarts each child may still take (`run.max_restarts` per `run.restart_window_s`).
    budget: RestartBudget<Child>,
    /// Set once the run is finishing or stopping: children that stop then are not restarted.
    stopping: bool,
}

async fn spawn_child(
    kind: Child,
    ctx: &Arc<Ctx>,
    restore: Option<BufferSnapshot>,
    sup: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let ctx2 = ctx.clone();
    let cell = match kind.stage {
        Stage::PromptBuilder => {
            let (r, _) = Actor::spawn_linked(None, PromptBuilder, ctx2, sup).await?;
            ctx.peers.write().prompt_builder = Some(r.clone());
            r.get_cell()
        }
        Stage::Opponent => {
            let i = kind.index;
            let (r, _) = Actor::spawn_linked(None, Opponent, (ctx2, i), sup).await?;
            let mut peers = ctx.peers.write();
            if peers.opponents.len() <= i {
                peers.opponents.resize(i + 1, None);
            }
            peers.opponents[i] = Some(r.clone());
            r.get_cell()
        }
        Stage::Executor => {
            let (r, _) = Actor::spawn_linked(None, ExecutorStage, ctx2, sup).await?;
            ctx.peers.write().executor = Some(r.clone());
            r.get_cell()
        }
        Stage::Replay => {
            let args = ReplayArgs { ctx: ctx2, restore };
            let (r, _) = Actor::spawn_linked(None, Replay, args, sup).await?;
            ctx.peers.write().replay = Some(r.clone());
            r.get_cell()
        }
        Stage::Trainer => {
            let (r, _) = Actor::spawn_linked(None, TrainerActor, ctx2, sup).await?;
            ctx.peers.write().trainer = Some(r.clone());
            r.get_cell()
        }
        Stage::Evaluator => {
            let (r, _) = Actor::spawn_linked(None, Evaluator, ctx2, sup).await?;
            ctx.peers.write().evaluator = Some(r.clone());
            r.get_cell()
        }
    };
    Ok(cell)
}

/// Steps 1–4 of the module doc. When the replay buffer cannot answer (it failed too), its own
/// restart runs this again, so a failure here is only logged.
async fn resync(ctx: &Arc<Ctx>) {
    ctx.to_opponents(|| OpponentMsg::Resync);
    let Some(replay) = ctx.peers.read().replay.clone() else {
        return;
    };
    let (round, accounted) = match ractor::call_t!(replay, ReplayMsg::Resync, 30_000) {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!("re-sync postponed, the replay buffer did not answer: {e}");
            return;
        }
    };
    send!(
        ctx,
        prompt_builder,
        PromptBuilderMsg::Reissue { round, accounted }
    );
    send!(ctx, replay, ReplayMsg::Grant);
    let missing: Vec<u64> = {
        let j = ctx.journal.lock();
        (1..=j.version())
            .filter(|x| !j.dev_ex.contains_key(x))
            .collect()
    };
    for v in missing {
        let weights = match ctx.journal.lock().weights.clone() {
            Some(w) if w.version == v => w,
            _ => WeightsHandle {
                version: v,
                path: None,
            },
        };
        send!(ctx, evaluator, EvaluatorMsg::Evaluate(weights));
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = State;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<State, ActorProcessingErr> {
        let ctx = args.ctx;
        ctx.peers.write().supervisor = Some(myself.clone());
        let mut children = HashMap::new();
        let mut restore = args.restore;
        for kind in Child::all(ctx.config.run.generators) {
            let r = if kind.stage == Stage::Replay {
                restore.take()
            } else {
                None
            };
            let cell = spawn_child(kind, &ctx, r, myself.get_cell()).await?;
            children.insert(cell.get_id(), kind);
        }
        let budget = RestartBudget::new(
            ctx.config.run.max_restarts,
            Duration::from_secs(ctx.config.run.restart_window_s),
        );
        Ok(State {
            ctx,
            children,
            budget,
            stopping: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        resync(&st.ctx).await;
        check_finished(&myself, st).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        st.stopping = true;
        // A dev pass in progress is dropped, not waited for (a real model's takes a quarter of
        // an hour): its result would reach the journal after the stop's checkpoint anyway, and
        // the resumed run evaluates the version again. Its blocking thread is left to the
        // runtime's shutdown, which does not wait for it either (`exspin run`/`resume`).
        if let Some(evaluator) = st.ctx.peers.read().evaluator.clone() {
            evaluator.kill();
        }
        myself
            .stop_children_and_wait(None, Some(Duration::from_secs(30)))
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        let ctx = st.ctx.clone();
        match msg {
            SupervisorMsg::RoundTrained { round, weights } => {
                tracing::info!(
                    "round {round} trained; published version {}",
                    weights.version
                );
                send!(ctx, evaluator, EvaluatorMsg::Evaluate(weights.clone()));
                let next = ctx.journal.lock().round;
                if next < ctx.config.run.rounds {
                    // Strict barrier: every opponent switches before any prompt of the next round.
                    ctx.to_opponents(|| OpponentMsg::Load(weights.clone()));
                    send!(ctx, replay, ReplayMsg::StartRound(next));
                    send!(ctx, prompt_builder, PromptBuilderMsg::StartRound(next));
                }
                summary::write_from(&ctx.journal, &ctx.config, &ctx.run_dir)?;
            }
            SupervisorMsg::Evaluated { version } => {
                tracing::debug!(version, "dev evaluation of a version done");
                // The version's EX in summary.json now, not at the next round's close an hour
                // later on a real model (what `exspin experiment --report-only` reads).
                summary::write_from(&ctx.journal, &ctx.config, &ctx.run_dir)?;
                check_finished(&myself, st).await
            }
            SupervisorMsg::Terminate(reply) => {
                st.stopping = true;
                ctx.stop_requested
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                let trainer = ctx.peers.read().trainer.clone();
                let result = match trainer {
                    Some(t) => ractor::call_t!(t, TrainerMsg::Checkpoint, 120_000)
                        .map_err(|e| format!("asking the trainer for a checkpoint: {e}"))
                        .and_then(|r| r),
                    None => Err("the trainer is not running".into()),
                };
                summary::write_from(&ctx.journal, &ctx.config, &ctx.run_dir)?;
                let _ = reply.send(result);
                myself.stop(Some("terminated".into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        // The default stops the supervisor when any child exits; we restart instead.
        let (cell, why) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, format!("stopped: {}", reason.unwrap_or_default()))
            }
            _ => return Ok(()),
        };
        let Some(kind) = st.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        if st.stopping {
            return Ok(());
        }
        let (allowed, in_window) = st.budget.allow(kind, Instant::now());
        if !allowed {
            give_up(&myself, st, kind, &why, in_window).await;
            return Ok(());
        }
        let count = {
            let mut j = st.ctx.journal.lock();
            let c = j.restarts.entry(kind.name().to_string()).or_insert(0);
            *c += 1;
            *c
        };
        metrics::counter!("exspin_restarts_total", "actor" => kind.name()).increment(1);
        let backoff = Duration::from_millis(20u64 << (count - 1).min(6));
        tracing::warn!("{} {why}; restart #{count} in {backoff:?}", kind.name());
        tokio::time::sleep(backoff).await;
        let cell = spawn_child(kind, &st.ctx, None, myself.get_cell()).await?;
        st.children.insert(cell.get_id(), kind);
        resync(&st.ctx).await;
        Ok(())
    }
}

/// Past the restart budget: every actor stops (the learner is then between steps), a checkpoint
/// is written from the journal, and the supervisor stops with the reason the run reports.
async fn give_up(
    myself: &ActorRef<SupervisorMsg>,
    st: &mut State,
    kind: Child,
    why: &str,
    failures: usize,
) {
    st.stopping = true;
    let run = &st.ctx.config.run;
    tracing::error!(
        "{} {why}; {failures} failures within {} s is past run.max_restarts = {}: stopping",
        kind.name(),
        run.restart_window_s,
        run.max_restarts
    );
    myself
        .stop_children_and_wait(None, Some(Duration::from_secs(60)))
        .await;
    let checkpoint = match crate::stages::trainer::write_checkpoint_from_journal(&st.ctx).await {
        Ok(dir) => format!(
            "a checkpoint was written ({}); fix the cause, then `exspin resume {}`",
            dir.display(),
            st.ctx.run_dir.display()
        ),
        Err(e) => format!(
            "no checkpoint could be written ({e:#}); `exspin resume {}` starts from the last one",
            st.ctx.run_dir.display()
        ),
    };
    *st.ctx.gave_up.lock() = Some(format!(
        "the {} actor failed {failures} times within {} s (run.max_restarts = {}, \
         run.restart_window_s = {}); the last time it {why}. The run stopped: {checkpoint}",
        kind.name(),
        run.restart_window_s,
        run.max_restarts,
        run.restart_window_s
    ));
    if let Err(e) = summary::write_from(&st.ctx.journal, &st.ctx.config, &st.ctx.run_dir) {
        tracing::error!("writing the summary: {e:#}");
    }
    myself.stop(Some("restart budget exceeded".into()));
}

/// Finished when every round is trained and every published version evaluated. A finished run
/// with checkpoints writes a last one first: the start of the round after its last, where
/// `exspin resume RUN --rounds N` goes on from (`state::extend`) without training anything again.
async fn check_finished(myself: &ActorRef<SupervisorMsg>, st: &mut State) {
    let ctx = &st.ctx;
    let done = {
        let j = ctx.journal.lock();
        j.round >= ctx.config.run.rounds
            && (1..=ctx.config.run.rounds).all(|v| j.dev_ex.contains_key(&v))
    };
    if done && !st.stopping {
        st.stopping = true;
        // `run.checkpoint_every = 0` asks for no checkpoints, this one included.
        if ctx.config.run.checkpoint_every > 0 {
            match crate::stages::trainer::write_checkpoint(ctx).await {
                Ok(dir) => tracing::info!("the finished run's checkpoint: {}", dir.display()),
                Err(e) => tracing::warn!("the finished run's checkpoint failed: {e:#}"),
            }
        }
        ctx.journal.lock().finished = true;
        if let Err(e) = summary::write_from(&ctx.journal, &ctx.config, &ctx.run_dir) {
            tracing::error!("writing the summary: {e:#}");
        }
        myself.stop(Some("finished".into()));
    }
}

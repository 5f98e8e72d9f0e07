//! Prompt-builder actor: turns the data cursor into prompts and hands them to the opponents only
//! as far as each has credits (pull, so their queues stay bounded). Several opponents
//! (`run.generators`) each ask with their own address; asks are served first come, first served.
//!
//! Schedules: `strict` queues one round at a time. `async` queues every released round (the one
//! in progress and up to `staleness` ahead, `RunConfig::released_through`), in round order.
//! `phased` issues the remaining round only all at once (when the credits of all asks together cover
//! all of it), so each opponent generates its whole share before anything of it is executed.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::RoundSchedule;
use crate::config::Stage;
use crate::logic::plan::round_prompts;
use crate::protocol::seams::PromptItem;
use crate::stages::context::Ctx;
use crate::stages::messages::{OpponentMsg, PromptBuilderMsg};

pub struct PromptBuilder;

pub struct State {
    ctx: Arc<Ctx>,
    queue: VecDeque<PromptItem>,
    /// Outstanding asks, oldest first: who asked, for how many prompts.
    wants: VecDeque<(ActorRef<OpponentMsg>, usize)>,
    /// Async schedule: the next round not queued yet.
    next_round: u64,
}

impl Actor for PromptBuilder {
    type Msg = PromptBuilderMsg;
    type State = State;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<State, ActorProcessingErr> {
        // Starts idle: the supervisor sends `Reissue` with what is already accounted for.
        Ok(State {
            ctx,
            queue: VecDeque::new(),
            wants: VecDeque::new(),
            next_round: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        st.ctx.faults.tick(crate::config::Stage::PromptBuilder);
        let asynchronous = st.ctx.config.run.schedule == RoundSchedule::Async;
        match msg {
            PromptBuilderMsg::Want { from, n } => st.wants.push_back((from, n)),
            PromptBuilderMsg::StartRound(round) if asynchronous => {
                // Queue every round released since (round order), each once. `round` (not the
                // journal) because the opponent has been told to load its version just before.
                let through = st.ctx.config.run.released_through(round);
                while st.next_round <= through {
                    let r = st.next_round;
                    st.queue.extend(timed_pending(&st.ctx, r, &HashSet::new()));
                    st.next_round += 1;
                }
            }
            PromptBuilderMsg::StartRound(round) => {
                st.queue = timed_pending(&st.ctx, round, &HashSet::new()).into();
            }
            PromptBuilderMsg::Reissue { round, accounted } if asynchronous => {
                let through = st.ctx.config.run.released_through(round);
                st.queue = (round..=through)
                    .flat_map(|r| timed_pending(&st.ctx, r, &accounted))
                    .collect();
                st.next_round = st.next_round.max(through + 1);
                st.wants.clear();
                count_issued_before(&st.ctx, through + 1, st.queue.len());
            }
            PromptBuilderMsg::Reissue { round, accounted } => {
                st.queue = timed_pending(&st.ctx, round, &accounted).into();
                st.wants.clear();
                count_issued_before(&st.ctx, round + 1, st.queue.len());
            }
        }
        metrics::gauge!("exspin_prompt_queue").set(st.queue.len() as f64);
        let wanted: usize = st.wants.iter().map(|(_, n)| n).sum();
        if st.ctx.config.run.schedule == RoundSchedule::Phased && wanted < st.queue.len() {
            // All of the round's remaining prompts in one go, or none yet.
            return Ok(());
        }
        while !st.queue.is_empty() {
            let Some((to, want)) = st.wants.front_mut() else {
                break;
            };
            let n = (*want).min(st.queue.len());
            *want -= n;
            let to = to.clone();
            if *want == 0 {
                st.wants.pop_front();
            }
            let batch: Vec<PromptItem> = st.queue.drain(..n).collect();
            metrics::counter!("exspin_prompts_issued_total").increment(n as u64);
            st.ctx.progress.inc(Stage::PromptBuilder, n as u64);
            if to.cast(OpponentMsg::Prompts(batch)).is_err() {
                tracing::debug!("an opponent is down; prompts dropped (re-issued after restart)");
            }
        }
        Ok(())
    }
}

/// Sets the "prompts issued" count when the prompts of rounds before `rounds_end` are either
/// done or `pending` (about to be issued again): a resume counts on from what its checkpoint
/// holds, and a restarted builder does not count the re-issued prompts twice.
fn count_issued_before(ctx: &Ctx, rounds_end: u64, pending: usize) {
    let planned = rounds_end.min(ctx.config.run.rounds) * ctx.config.run.prompts_per_round as u64;
    ctx.progress
        .set_position(Stage::PromptBuilder, planned.saturating_sub(pending as u64));
}

/// [`pending_prompts`], counted as prompt-building time.
fn timed_pending(ctx: &Ctx, round: u64, accounted: &HashSet<String>) -> Vec<PromptItem> {
    let started = std::time::Instant::now();
    let out = pending_prompts(ctx, round, accounted);
    let took = started.elapsed();
    ctx.stats.add(Stage::PromptBuilder, took);
    metrics::histogram!("exspin_prompt_build_seconds").record(took.as_secs_f64());
    out
}

/// The prompts of `round` not all of whose samples are accounted for, in plan order; none past
/// the run's last round (a finished run's checkpoint is cut at the start of the round after it).
pub fn pending_prompts(ctx: &Ctx, round: u64, accounted: &HashSet<String>) -> Vec<PromptItem> {
    if round >= ctx.config.run.rounds {
        return Vec::new();
    }
    let n = ctx.config.run.samples_per_prompt;
    round_prompts(
        &ctx.train,
        &ctx.order,
        round,
        ctx.config.run.prompts_per_round,
        &ctx.prompter,
    )
    .into_iter()
    .filter(|p| (0..n).any(|k| !accounted.contains(&p.sample_id(k))))
    .collect()
}

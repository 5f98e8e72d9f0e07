//! Opponent-generator actor: generates against credits only, with the current version θt, and
//! passes each generation with its prompt to the executor stage: batch by batch, or (phased
//! schedule) all of a `Prompts` delivery at once after generating every one of them.
//!
//! There are `run.generators` of them, opponent `i` owning `ctx.generators[i]` (its own seam
//! object, so they generate in parallel) when it may generate in this process
//! (`cluster.local_generators`); the others only hand batches to fleet workers. Each gets its
//! own credits from the replay buffer and asks the prompt builder with its own address; `Load`
//! reaches all of them (one version stream).
//!
//! Continued SFT that follows a finished run (`run.follow`) generates nothing: that run's
//! judgements of the prompts go straight to the replay buffer.

use std::collections::VecDeque;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::RoundSchedule;
use crate::config::Stage;
use crate::protocol::seams::{PromptItem, Sample, WeightsHandle};
use crate::stages::context::{Ctx, send, show_fleet};
use crate::stages::messages::{ExecutorMsg, OpponentMsg, PromptBuilderMsg};

pub struct Opponent;

pub struct State {
    ctx: Arc<Ctx>,
    /// Which opponent: its seam object is `ctx.generators[index]`.
    index: usize,
    myself: ActorRef<OpponentMsg>,
    /// Sample credits not yet turned into prompt requests.
    credits: usize,
    pending: VecDeque<PromptItem>,
    version: u64,
    /// Where version `version` is (what a fleet worker's opponent loads).
    weights: WeightsHandle,
}

/// How long a worker may take to answer one batch of prompts (the real model on a CPU worker
/// takes minutes; a dead worker fails the call at once, through its dropped link).
const REMOTE_GENERATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1800);

impl Actor for Opponent {
    type Msg = OpponentMsg;
    type State = State;
    /// The context and this opponent's index.
    type Arguments = (Arc<Ctx>, usize);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (ctx, index): (Arc<Ctx>, usize),
    ) -> Result<State, ActorProcessingErr> {
        let version = ctx.journal.lock().version();
        let weights = (ctx.weights_of)(version);
        Ok(State {
            ctx,
            index,
            myself,
            credits: 0,
            pending: VecDeque::new(),
            version,
            weights,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        st.ctx.faults.tick(crate::config::Stage::Opponent);
        let n = st.ctx.config.run.samples_per_prompt;
        match msg {
            OpponentMsg::Grant(k) => {
                st.credits += k;
                let prompts = st.credits / n;
                if prompts > 0 {
                    st.credits -= prompts * n;
                    let from = st.myself.clone();
                    send!(
                        st.ctx,
                        prompt_builder,
                        PromptBuilderMsg::Want { from, n: prompts }
                    );
                }
            }
            OpponentMsg::Prompts(items) => {
                st.pending.extend(items);
                {
                    let mut j = st.ctx.journal.lock();
                    j.queue_max.opponent_prompts =
                        j.queue_max.opponent_prompts.max(st.pending.len());
                }
                metrics::gauge!("exspin_opponent_queue").set(st.pending.len() as f64);
                generate_pending(st).await?;
            }
            OpponentMsg::Load(weights) => {
                // An opponent that only hands batches to workers has no weights here: the
                // version travels with each request.
                if let Some(generator) = st.ctx.generators.get(st.index).cloned() {
                    let w = weights.clone();
                    let started = std::time::Instant::now();
                    tokio::task::spawn_blocking(move || {
                        let loaded = generator.lock().load_version(&w);
                        // The previous version's weights and caches were freed here.
                        crate::observe::memory::release_after(&format!(
                            "loading version {}",
                            w.version
                        ));
                        loaded
                    })
                    .await??;
                    st.ctx.stats.add(Stage::Opponent, started.elapsed());
                }
                st.version = weights.version;
                st.weights = weights.clone();
                metrics::gauge!("exspin_opponent_version").set(weights.version as f64);
            }
            OpponentMsg::Resync => {
                st.credits = 0;
                st.pending.clear();
            }
        }
        Ok(())
    }
}

async fn generate_pending(st: &mut State) -> Result<(), ActorProcessingErr> {
    let n = st.ctx.config.run.samples_per_prompt;
    if let Some(followed) = &st.ctx.follow {
        // Continued SFT following a finished run: its judgements, straight to the replay buffer
        // (nothing to generate or execute).
        let batch: Vec<PromptItem> = st.pending.drain(..).collect();
        let judged = followed.judgements(&batch, n, st.version);
        st.ctx.progress.inc(Stage::Opponent, judged.len() as u64);
        st.ctx.progress.inc(Stage::Executor, judged.len() as u64);
        metrics::gauge!("exspin_opponent_queue").set(0.0);
        send!(
            st.ctx,
            replay,
            crate::stages::messages::ReplayMsg::Judged(judged)
        );
        return Ok(());
    }
    let phased = st.ctx.config.run.schedule == RoundSchedule::Phased;
    let mut held: Vec<(PromptItem, Sample)> = Vec::new();
    while !st.pending.is_empty() {
        let take = st.ctx.config.run.generate_batch.min(st.pending.len());
        let batch: Vec<PromptItem> = st.pending.drain(..take).collect();
        let version = st.version;
        let started = std::time::Instant::now();
        let (batch, samples) = match generate_on_worker(st, &batch).await {
            Some(samples) => (batch, Ok(samples)),
            None => match st.ctx.generators.get(st.index).cloned() {
                Some(generator) => {
                    tokio::task::spawn_blocking(move || {
                        let samples = generator.lock().generate(&batch, n, version);
                        (batch, samples)
                    })
                    .await?
                }
                None => {
                    let samples = wait_for_worker(st, &batch).await;
                    (batch, Ok(samples))
                }
            },
        };
        let samples = samples?;
        let took = started.elapsed();
        st.ctx.stats.add(Stage::Opponent, took);
        metrics::histogram!("exspin_generate_seconds").record(took.as_secs_f64());
        metrics::counter!("exspin_samples_generated_total").increment(samples.len() as u64);
        let tokens: u64 = samples.iter().map(|s| u64::from(s.tokens)).sum();
        metrics::counter!("exspin_generated_tokens_total").increment(tokens);
        st.ctx.progress.inc(Stage::Opponent, samples.len() as u64);
        metrics::gauge!("exspin_opponent_queue").set(st.pending.len() as f64);
        {
            let mut j = st.ctx.journal.lock();
            j.samples_generated += samples.len() as u64;
            j.generated_tokens += tokens;
            j.generate_seconds += took.as_secs_f64();
            if let Some(rate) = j.generated_tokens_per_s() {
                metrics::gauge!("exspin_generated_tokens_per_second").set(rate);
            }
            if j.samples_by_opponent.len() <= st.index {
                j.samples_by_opponent.resize(st.index + 1, 0);
            }
            j.samples_by_opponent[st.index] += samples.len() as u64;
        }
        let items = samples
            .into_iter()
            .map(|s| {
                let p = batch
                    .iter()
                    .find(|p| p.example_id == s.example_id)
                    .expect("a sample answers a prompt of its batch")
                    .clone();
                (p, s)
            })
            .collect::<Vec<_>>();
        if phased {
            held.extend(items);
        } else {
            send!(st.ctx, executor, ExecutorMsg::Judge(items));
        }
    }
    if !held.is_empty() {
        // Phased: the barrier between generation and execution.
        send!(st.ctx, executor, ExecutorMsg::Judge(held));
    }
    Ok(())
}

/// The batch's samples from a fleet worker, for an opponent that may not generate here
/// (`cluster.local_generators`): tried again, on whichever worker is least loaded, until one
/// answers. Samples are seeded per (example, round, sample), so a retry draws the same ones.
async fn wait_for_worker(st: &State, batch: &[PromptItem]) -> Vec<Sample> {
    crate::fleet::remote::until_a_worker_answers(
        || generate_on_worker(st, batch),
        || {
            format!(
                "opponent {}: no fleet worker has taken its batch of {} prompts \
                 (cluster.local_generators keeps it off this process; start `exspin worker \
                 --generators N`)",
                st.index,
                batch.len()
            )
        },
    )
    .await
}

/// The batch's samples from a fleet worker's opponent, or None when the fleet has none or the
/// call fails (then this process generates them: samples are seeded per (example, round,
/// sample), so they are the same either way, and none is lost or doubled).
async fn generate_on_worker(st: &State, batch: &[PromptItem]) -> Option<Vec<Sample>> {
    let lease = crate::fleet::remote::next_remote_generator()?;
    let target = &lease.target;
    let run_dir = match std::fs::canonicalize(&st.ctx.run_dir) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("fleet: {}: {e}; generating here", st.ctx.run_dir.display());
            return None;
        }
    };
    // A worker resolves paths on its own: a relative one (a run folder given as `runs/x`) would
    // point elsewhere there.
    let mut weights = st.weights.clone();
    weights.path = weights.path.map(|p| {
        if p.is_relative() {
            std::env::current_dir().map(|cwd| cwd.join(&p)).unwrap_or(p)
        } else {
            p
        }
    });
    let request = crate::fleet::wire::GenerateRequest {
        config_toml: toml::to_string(&st.ctx.config).expect("a job config serializes"),
        run_dir,
        weights,
        batch: batch.to_vec(),
        n_samples: st.ctx.config.run.samples_per_prompt,
    };
    let answer =
        crate::fleet::remote::generate_remote(target, &request, REMOTE_GENERATE_TIMEOUT).await;
    drop(lease);
    match answer {
        Ok((samples, weight_sync_s)) => {
            metrics::counter!("exspin_fleet_remote_generate_batches_total").increment(1);
            if weight_sync_s > 0.0 {
                let mut j = st.ctx.journal.lock();
                j.weight_syncs_remote += 1;
                j.weight_sync_seconds_remote += weight_sync_s;
            }
            show_fleet(&st.ctx, samples.len() as u64, 0);
            Some(samples)
        }
        Err(e) => {
            tracing::warn!("fleet: generating {} prompts elsewhere: {e:#}", batch.len());
            metrics::counter!("exspin_fleet_reissued_generate_batches_total").increment(1);
            crate::fleet::remote::note_reissued();
            show_fleet(&st.ctx, 0, 0);
            None
        }
    }
}

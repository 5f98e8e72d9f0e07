//! Opponent-generator actor: generates against credits only, with the current version θt, and
//! passes each generation with its prompt to the executor stage.

use std::collections::VecDeque;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::{Ctx, send};
use crate::messages::{ExecutorMsg, OpponentMsg, PromptBuilderMsg};
use crate::seams::PromptItem;

pub struct Opponent;

pub struct State {
    ctx: Arc<Ctx>,
    /// Sample credits not yet turned into prompt requests.
    credits: usize,
    pending: VecDeque<PromptItem>,
    version: u64,
}

impl Actor for Opponent {
    type Msg = OpponentMsg;
    type State = State;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<State, ActorProcessingErr> {
        let version = ctx.journal.lock().version();
        Ok(State {
            ctx,
            credits: 0,
            pending: VecDeque::new(),
            version,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        st.ctx.faults.tick("opponent");
        let n = st.ctx.config.run.samples_per_prompt;
        match msg {
            OpponentMsg::Grant(k) => {
                st.credits += k;
                let prompts = st.credits / n;
                if prompts > 0 {
                    st.credits -= prompts * n;
                    send!(st.ctx, prompt_builder, PromptBuilderMsg::Want(prompts));
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
                let generator = st.ctx.generator.clone();
                let w = weights.clone();
                tokio::task::spawn_blocking(move || generator.lock().load_version(&w)).await??;
                st.version = weights.version;
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
    while !st.pending.is_empty() {
        let take = st.ctx.config.run.generate_batch.min(st.pending.len());
        let batch: Vec<PromptItem> = st.pending.drain(..take).collect();
        let generator = st.ctx.generator.clone();
        let version = st.version;
        let started = std::time::Instant::now();
        let (batch, samples) = tokio::task::spawn_blocking(move || {
            let samples = generator.lock().generate(&batch, n, version);
            (batch, samples)
        })
        .await?;
        let samples = samples?;
        metrics::histogram!("exspin_generate_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("exspin_samples_generated_total").increment(samples.len() as u64);
        st.ctx.journal.lock().samples_generated += samples.len() as u64;
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
            .collect();
        send!(st.ctx, executor, ExecutorMsg::Judge(items));
    }
    Ok(())
}

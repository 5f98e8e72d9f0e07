//! Prompt-builder actor: turns the data cursor into prompts and hands them to the opponent only
//! as far as the opponent has credits (pull, so its queue stays bounded).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::{Ctx, send};
use crate::messages::{OpponentMsg, PromptBuilderMsg};
use crate::plan::round_prompts;
use crate::seams::PromptItem;

pub struct PromptBuilder;

pub struct State {
    ctx: Arc<Ctx>,
    queue: VecDeque<PromptItem>,
    want: usize,
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
            want: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        st.ctx.faults.tick("prompt_builder");
        match msg {
            PromptBuilderMsg::Want(n) => st.want += n,
            PromptBuilderMsg::StartRound(round) => {
                st.queue = pending_prompts(&st.ctx, round, &HashSet::new()).into();
            }
            PromptBuilderMsg::Reissue { round, accounted } => {
                st.queue = pending_prompts(&st.ctx, round, &accounted).into();
                st.want = 0;
            }
        }
        let n = st.want.min(st.queue.len());
        if n > 0 {
            st.want -= n;
            let batch: Vec<PromptItem> = st.queue.drain(..n).collect();
            metrics::counter!("exspin_prompts_issued_total").increment(n as u64);
            send!(st.ctx, opponent, OpponentMsg::Prompts(batch));
        }
        Ok(())
    }
}

/// The prompts of `round` not all of whose samples are accounted for, in plan order.
pub fn pending_prompts(ctx: &Ctx, round: u64, accounted: &HashSet<String>) -> Vec<PromptItem> {
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

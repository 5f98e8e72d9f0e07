//! Replay-buffer actor: a thin shell over `buffer::ReplayBuffer`. It records filtered samples in
//! the journal, hands batches to the trainer within its queue bound and grants credits upstream
//! as room frees, split in whole prompts over the opponents (`run.generators`), round robin.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::logic::buffer::{BufferLimits, BufferSnapshot, ReplayBuffer};
use crate::stages::context::{Ctx, send};
use crate::stages::messages::{OpponentMsg, ReplayMsg, TrainerMsg};

pub struct Replay;

pub struct State {
    ctx: Arc<Ctx>,
    buf: ReplayBuffer,
    /// False between a resync and the supervisor's `Grant`, so no credit escapes before the
    /// prompt builder knows what to re-issue.
    granting: bool,
    /// The opponent the next granted prompt goes to (round robin).
    next_opponent: usize,
}

/// Splits `credits` (samples, whole prompts of `per_prompt`) over `opponents`, one prompt at a
/// time starting at `start`. Returns each opponent's credits and the next start.
pub fn split_credits(
    credits: usize,
    per_prompt: usize,
    opponents: usize,
    start: usize,
) -> (Vec<usize>, usize) {
    let mut out = vec![0; opponents];
    let prompts = credits / per_prompt;
    for k in 0..prompts {
        out[(start + k) % opponents] += per_prompt;
    }
    (out, (start + prompts) % opponents)
}

pub fn limits(ctx: &Ctx) -> BufferLimits {
    let r = &ctx.config.run;
    BufferLimits {
        mode: r.mode,
        capacity: r.effective_capacity(),
        train_batch: r.train_batch,
        trainer_queue: r.trainer_queue,
        samples_per_round: r.prompts_per_round * r.samples_per_prompt,
        samples_per_prompt: r.samples_per_prompt,
        schedule: r.schedule,
    }
}

/// Arguments: the context and, on resume, the checkpointed buffer.
pub struct ReplayArgs {
    pub ctx: Arc<Ctx>,
    pub restore: Option<BufferSnapshot>,
}

impl Actor for Replay {
    type Msg = ReplayMsg;
    type State = State;
    type Arguments = ReplayArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ReplayArgs,
    ) -> Result<State, ActorProcessingErr> {
        let ctx = args.ctx;
        let (round, resolved) = {
            let j = ctx.journal.lock();
            (j.round, j.resolved_round.clone())
        };
        let buf = match args.restore {
            Some(snap) if snap.round == round => ReplayBuffer::restore(limits(&ctx), snap),
            // A restart (or a cut taken at a round's end): what is not resolved is re-issued.
            _ => ReplayBuffer::new(limits(&ctx), round, resolved),
        };
        Ok(State {
            ctx,
            buf,
            granting: false,
            next_opponent: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        st.ctx.faults.tick(crate::config::Stage::Replay);
        match msg {
            ReplayMsg::Judged(judged) => {
                let got = st.buf.receive(judged);
                record(&st.ctx, got);
            }
            ReplayMsg::Ack(id) => st.buf.ack(id),
            ReplayMsg::StartRound(round) => {
                let got = st.buf.start_round(round);
                record(&st.ctx, got);
            }
            ReplayMsg::Resync(reply) => {
                st.granting = false;
                for batch in st.buf.resync() {
                    send!(st.ctx, trainer, TrainerMsg::Batch(batch));
                }
                let _ = reply.send((st.buf.round(), st.buf.accounted().clone()));
                return Ok(());
            }
            ReplayMsg::Grant => st.granting = true,
            ReplayMsg::Snapshot(reply) => {
                let journal = st.ctx.journal.lock().clone();
                let _ = reply.send((st.buf.snapshot(), journal));
                return Ok(());
            }
        }
        pump(st);
        Ok(())
    }
}

/// Journal and metrics of one delivery to the buffer.
fn record(ctx: &Ctx, got: crate::logic::buffer::Received) {
    let mut j = ctx.journal.lock();
    j.duplicates_dropped += got.duplicates as u64;
    metrics::counter!("exspin_samples_filtered_total").increment(got.filtered.len() as u64);
    metrics::counter!("exspin_pairs_made_total").increment(got.pairs as u64);
    j.samples_filtered += got.filtered.len() as u64;
    if j.samples_judged > 0 {
        metrics::gauge!("exspin_filter_rate")
            .set(j.samples_filtered as f64 / j.samples_judged as f64);
    }
    j.resolved_round.extend(got.filtered);
}

fn pump(st: &mut State) {
    for batch in st.buf.take_batches() {
        send!(st.ctx, trainer, TrainerMsg::Batch(batch));
    }
    let held = st.buf.held();
    metrics::gauge!("exspin_replay_held").set(held as f64);
    metrics::gauge!("exspin_trainer_queue").set(st.buf.unacked_batches() as f64);
    {
        let mut j = st.ctx.journal.lock();
        j.queue_max.replay_pairs = j.queue_max.replay_pairs.max(held);
        j.queue_max.trainer_batches = j.queue_max.trainer_batches.max(st.buf.unacked_batches());
    }
    if st.granting {
        let credits = st.buf.grant();
        if credits > 0 {
            let r = &st.ctx.config.run;
            let (each, next) = split_credits(
                credits,
                r.samples_per_prompt,
                r.generators,
                st.next_opponent,
            );
            st.next_opponent = next;
            for (i, c) in each.into_iter().enumerate() {
                if c > 0 {
                    st.ctx.to_opponent(i, OpponentMsg::Grant(c));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_credits;

    #[test]
    fn credits_go_round_robin_in_whole_prompts() {
        assert_eq!(split_credits(10, 2, 3, 0), (vec![4, 4, 2], 2));
        assert_eq!(split_credits(4, 2, 3, 2), (vec![2, 0, 2], 1));
        assert_eq!(split_credits(6, 2, 1, 0), (vec![6], 0));
        assert_eq!(split_credits(0, 2, 2, 1), (vec![0, 0], 1));
    }
}

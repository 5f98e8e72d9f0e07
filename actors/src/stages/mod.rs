//! The six stage actors and the supervisor that restarts them. Each actor is a thin shell: it
//! receives a message, hands the work to a seam (`protocol::seams`), the executor pool or the
//! logic of `logic/`, records what it did in the journal (`state::journal`) and passes the result
//! on. What every actor shares (config, journal, seams, peers) is the [`context::Ctx`].

pub mod context;
pub mod evaluator;
pub mod executor;
pub mod fault;
pub mod messages;
pub mod opponent;
pub mod prompt_builder;
pub mod replay;
pub mod supervisor;
pub mod trainer;

//! One file per subcommand; `dispatch` routes to them.

pub mod bench_eval;
pub mod dataset;
pub mod eval;
pub mod run;
pub mod sql;
pub mod synth;

use crate::cli::{BenchCommand, Command, DataCommand};

pub fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Data(DataCommand::Synth(args)) => synth::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(BenchCommand::Eval(args)) => bench_eval::run(args),
        Command::Run(args) => run::run(args),
        Command::Resume(args) => run::resume(args),
    }
}

//! One file per subcommand; `dispatch` routes to them.

pub mod bench_eval;
pub mod dataset;
pub mod eval;
pub mod generate;
pub mod sft;
pub mod sql;
pub mod synth;

use crate::cli::{BenchCommand, Command, DataCommand};

pub fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Data(DataCommand::Synth(args)) => synth::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Sft(args) => sft::run(args),
        Command::Bench(BenchCommand::Eval(args)) => bench_eval::run(args),
    }
}

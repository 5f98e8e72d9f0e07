//! One file per subcommand; `dispatch` routes to them.

pub mod ask;
pub mod bench_eval;
pub mod bench_generate;
pub mod bench_logprob;
pub mod bench_pipeline;
pub mod bench_prompt;
pub mod bench_quant;
pub mod bench_train;
pub mod compute;
pub mod dataset;
pub mod eval;
pub mod experiment;
pub mod generate;
pub mod index;
pub mod model;
pub mod prompt;
pub mod run;
pub mod schema_args;
pub mod schema_recall;
pub mod schema_train;
pub mod sft;
pub mod sql;
pub mod synth;

use crate::cli::{BenchCommand, Command, DataCommand, SchemaCommand};

pub fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Data(DataCommand::Synth(args)) => synth::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Sft(args) => sft::run(args),
        Command::Bench(BenchCommand::Eval(args)) => bench_eval::run(args),
        Command::Bench(BenchCommand::Logprob(args)) => bench_logprob::run(args),
        Command::Bench(BenchCommand::Prompt(args)) => bench_prompt::run(args),
        Command::Bench(BenchCommand::Pipeline(args)) => bench_pipeline::run(args),
        Command::Bench(BenchCommand::Train(args)) => bench_train::run(args),
        Command::Bench(BenchCommand::Generate(args)) => bench_generate::run(args),
        Command::Bench(BenchCommand::QuantAgreement(args)) => bench_quant::run(args),
        Command::Ask(args) => ask::run(args),
        Command::Model(cmd) => model::run(cmd),
        Command::Schema(SchemaCommand::Recall(args)) => schema_recall::run(args),
        Command::Schema(SchemaCommand::Train(args)) => schema_train::run(args),
        Command::Prompt(args) => prompt::run(args),
        Command::Index(args) => index::run(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Run(args) => run::run(args),
        Command::Resume(args) => run::resume(args),
    }
}

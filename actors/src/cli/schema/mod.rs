//! Explicit schema integration's commands: `exspin schema recall|train`, and `exspin prompt` and
//! `exspin index` (one prompt; the value indexes of a dataset).

pub mod index;
pub mod prompt;
pub mod recall;
pub mod train;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// How often the filtered schema keeps every gold table / column, value retrieval recall and
    /// precision, prompt length. Prints one JSON object.
    ///
    /// Example: exspin schema recall --spider data/spider --split dev --k1 4 --k2 10 --json
    Recall(recall::RecallArgs),
    /// Train the learned schema scorer on Spider train (train_spider*.json + tables.json) and save
    /// it in the cache folder, where it becomes the default scorer.
    ///
    /// Example: exspin schema train --spider data/spider
    Train(train::TrainArgs),
}

pub fn run(command: SchemaCommand) -> anyhow::Result<()> {
    match command {
        SchemaCommand::Recall(args) => recall::run(args),
        SchemaCommand::Train(args) => train::run(args),
    }
}

//! `exspin prompt`: prints the schema prompt of one example, in any prompt mode.

use crate::cli::args::{DatasetArgs, SchemaArgs};

#[derive(clap::Args, Debug)]
pub struct PromptArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub mode: crate::cli::args::PromptModeArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// The example, 0-based in dataset order.
    #[arg(long, value_name = "N")]
    pub index: usize,
}

pub fn run(args: PromptArgs) -> anyhow::Result<()> {
    let dataset = crate::cli::args::dataset::load(&args.dataset)?;
    let Some(example) = dataset.examples.get(args.index) else {
        anyhow::bail!(
            "--index {} is out of range: the split has {} examples",
            args.index,
            dataset.len()
        );
    };
    let prompts = crate::cli::args::schema::schema_prompts(
        &args.mode,
        &args.dataset,
        &dataset,
        &args.schema,
    )?;
    let text = prompts.schema_prompt(example)?;
    print!("{text}");
    if let exspin::prompt::SchemaSource::Builder(builder) = &prompts.source
        && let Some(n) = builder.count_tokens(&text)
    {
        eprintln!("{n} tokens ({} scorer)", builder.scorer_name());
    }
    Ok(())
}

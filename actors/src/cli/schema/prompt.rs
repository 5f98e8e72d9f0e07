//! `exspin prompt`: prints the prompt of one example.

use crate::cli::args::{DatasetArgs, SchemaArgs};

#[derive(clap::Args, Debug)]
pub struct PromptArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
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
    let builder = crate::cli::args::schema::builder(&args.schema, &dataset)?;
    let built = builder.build(example)?;
    print!("{}", built.prompt.text);
    if let Some(n) = builder.count_tokens(&built.prompt.text) {
        eprintln!("{n} tokens ({} scorer)", builder.scorer_name());
    }
    Ok(())
}

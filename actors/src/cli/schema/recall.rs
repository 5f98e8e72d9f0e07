//! `exspin schema recall`: how much of the gold schema the filter keeps, value retrieval, prompt
//! length; one JSON object on stdout.

use crate::cli::args::{DatasetArgs, SchemaArgs};

#[derive(clap::Args, Debug)]
pub struct RecallArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// Measure the plain full-schema prompt (every table kept: the ablation without explicit
    /// schema integration) instead of the filtered one.
    #[arg(long)]
    pub full_schema: bool,
    /// Print JSON (the only output format; accepted for symmetry with other commands).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RecallArgs) -> anyhow::Result<()> {
    let dataset = crate::cli::args::dataset::load(&args.dataset)?;
    let mut builder = crate::cli::args::schema::builder(&args.schema, &dataset)?;
    if args.full_schema {
        builder.options_mut().style = exspin::schema::prompt::Style::Plain;
    }
    let bar = indicatif::ProgressBar::new(dataset.evaluable_count() as u64);
    let report = exspin::schema::evaluate::recall(&builder, &dataset, &|| bar.inc(1))?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

//! `exspin index`: builds the value index (and the introspection cache) of every database under
//! the dataset's database folder.

use std::time::Instant;

use crate::cli::args::{DatasetArgs, SchemaArgs};

#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

pub fn run(mut args: IndexArgs) -> anyhow::Result<()> {
    args.schema.scorer = "lexical".into();
    let dataset = crate::cli::args::dataset::load(&args.dataset)?;
    let builder = crate::cli::args::schema::builder(&args.schema, &dataset)?;
    // Every database in the folder, not only those of one split: train and dev share the cache.
    let mut dbs: Vec<String> = std::fs::read_dir(&dataset.database_root)?
        .filter_map(Result::ok)
        .filter(|e| {
            e.path()
                .join(format!("{}.sqlite", e.file_name().to_string_lossy()))
                .is_file()
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dbs.sort();
    let bar = indicatif::ProgressBar::new(dbs.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")?,
    );
    let start = Instant::now();
    let (mut built, mut values, mut failed) = (0, 0, 0);
    for db in &dbs {
        bar.set_message(db.clone());
        match builder.load(db) {
            Ok((loaded, fresh)) => {
                built += usize::from(fresh);
                values += loaded.values.len();
            }
            Err(e) => {
                failed += 1;
                bar.println(format!("warning: {db}: {e}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "{}",
        serde_json::json!({
            "databases": dbs.len(),
            "built": built,
            "already_cached": dbs.len() - built - failed,
            "failed": failed,
            "values": values,
            "seconds": start.elapsed().as_secs_f64(),
            "cache": args.schema.cache,
        })
    );
    Ok(())
}

//! The dataset arguments every dataset-reading command shares, and the `Dataset` they load.

use std::path::PathBuf;

use clap::Args;
use exspin::data::{self, Dataset};

/// Where a dataset comes from: exactly one of --spider, --bird, --jsonl.
#[derive(Args, Debug, Clone)]
pub struct DatasetArgs {
    /// A Spider-layout folder (dev.json, tables.json, database/).
    #[arg(long, value_name = "DIR", group = "dataset")]
    pub spider: Option<PathBuf>,
    /// A BIRD-layout folder (dev.json, dev_tables.json, dev_databases/ or database/).
    #[arg(long, value_name = "DIR", group = "dataset")]
    pub bird: Option<PathBuf>,
    /// A JSONL file of {"id","db_id","question","evidence","sql"} records.
    #[arg(long, value_name = "FILE", group = "dataset")]
    pub jsonl: Option<PathBuf>,
    /// With --jsonl: the folder holding <db_id>/<db_id>.sqlite (default: database/ beside the file).
    #[arg(long, value_name = "DIR", requires = "jsonl")]
    pub db_dir: Option<PathBuf>,
    /// Which split to read (Spider: dev, train; BIRD: dev, mini_dev).
    #[arg(long, default_value = "dev")]
    pub split: String,
    /// Only the first N examples.
    #[arg(long, value_name = "N", conflicts_with = "stratified")]
    pub limit: Option<usize>,
    /// A fixed subset of N evaluable examples, stratified by the official hardness level (the
    /// same N picks the same questions in `generate` and `eval`; output stays in dataset order).
    #[arg(long, value_name = "N")]
    pub stratified: Option<usize>,
}

pub fn load(args: &DatasetArgs) -> anyhow::Result<Dataset> {
    let mut dataset = if let Some(dir) = &args.spider {
        data::spider::load(dir, &args.split)?
    } else if let Some(dir) = &args.bird {
        data::bird::load(dir, &args.split)?
    } else if let Some(file) = &args.jsonl {
        data::jsonl::load(file, args.db_dir.as_deref())?
    } else {
        anyhow::bail!("name a dataset: --spider DIR, --bird DIR or --jsonl FILE");
    };
    if let Some(n) = args.limit {
        dataset.truncate(n);
    }
    if let Some(n) = args.stratified {
        let picked = exspin::eval::stratified_by_hardness(&dataset, n);
        dataset.retain_indices(&picked);
    }
    // Missing databases are reported by the loader (a warning naming each one and its count).
    Ok(dataset)
}

//! Turns the shared dataset arguments into a loaded `Dataset`.

use exspin::data::{self, Dataset};

use crate::cli::DatasetArgs;

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

//! Turns the shared dataset arguments into a loaded `Dataset`.

use exspin::data::{self, Dataset};

use crate::cli::DatasetArgs;

// Used by `eval` and `bench eval`, still stubs on this branch.
#[allow(dead_code)]
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
    let missing = dataset.missing_databases();
    if !missing.is_empty() {
        let skipped: usize = missing.values().sum();
        eprintln!(
            "note: {skipped} of {} examples cannot be evaluated: missing database(s) {}",
            dataset.len(),
            missing.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(dataset)
}

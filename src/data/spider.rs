//! Spider (Yu et al., 2018) in its official layout:
//! `DIR/dev.json`, `DIR/train_spider.json` (or the trimmed `train_spider_min.json`),
//! `DIR/train_others.json` (optional), `DIR/tables.json`, `DIR/database/<db>/<db>.sqlite`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{DataError, Dataset, DatasetKind, Example, read_json};

/// The splits we know, in the file names Spider uses.
pub const SPLITS: &str = "dev, train";

/// Loads a split of a Spider-layout folder.
pub fn load(dir: &Path, split: &str) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            hint: "pass the Spider folder that holds dev.json, tables.json and database/".into(),
        });
    }
    let files: Vec<PathBuf> = match split {
        "dev" => vec![dir.join("dev.json")],
        "train" => {
            let full = dir.join("train_spider.json");
            let min = dir.join("train_spider_min.json");
            let mut files = vec![if full.is_file() { full } else { min }];
            let others = dir.join("train_others.json");
            if others.is_file() {
                files.push(others);
            }
            files
        }
        other => {
            return Err(DataError::UnknownSplit {
                kind: "Spider",
                split: other.to_string(),
                expected: SPLITS,
            });
        }
    };
    let mut examples = Vec::new();
    for file in &files {
        if !file.is_file() {
            return Err(DataError::Missing {
                path: file.clone(),
                hint: format!("a Spider folder needs it for the '{split}' split"),
            });
        }
        let records: Vec<Value> = read_json(file)?;
        for (i, record) in records.iter().enumerate() {
            let index = examples.len();
            examples.push(Example {
                id: format!("spider-{split}-{index:05}"),
                db_id: string_field(file, i, record, "db_id")?,
                question: string_field(file, i, record, "question")?,
                evidence: String::new(),
                gold_sql: string_field(file, i, record, "query")?,
            });
        }
    }
    Ok(Dataset::new(
        DatasetKind::Spider,
        files[0].clone(),
        dir.join("database"),
        examples,
    ))
}

/// A required string field of a JSON record, or an error naming file, record and field.
pub(crate) fn string_field(
    path: &Path,
    record: usize,
    value: &Value,
    field: &'static str,
) -> Result<String, DataError> {
    let problem = match value.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => return Ok(s.clone()),
        Some(Value::String(_)) => "is empty".to_string(),
        Some(other) => format!("must be a string, found {}", json_kind(other)),
        None if !value.is_object() => format!("record is {}, not an object", json_kind(value)),
        None => "is missing".to_string(),
    };
    Err(DataError::Field {
        path: path.to_path_buf(),
        record,
        field,
        problem,
    })
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

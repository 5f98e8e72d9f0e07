//! BIRD (Li et al., 2023): `DIR/dev.json` (fields `question_id`, `db_id`, `question`, `evidence`,
//! `SQL`), `DIR/dev_tables.json`, databases in `DIR/dev_databases/<db>/<db>.sqlite` (the official
//! layout) or `DIR/database/<db>/<db>.sqlite`. The Mini-Dev split reads `mini_dev_sqlite.json`.

use std::path::Path;

use serde_json::Value;

use super::spider::{json_kind, string_field};
use super::{DataError, Dataset, DatasetKind, Example, read_json};

pub const SPLITS: &str = "dev, mini_dev";

/// Loads a split of a BIRD-layout folder.
pub fn load(dir: &Path, split: &str) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            hint: "pass the BIRD folder that holds dev.json and dev_tables.json".into(),
        });
    }
    let file = match split {
        "dev" => dir.join("dev.json"),
        "mini_dev" | "mini-dev" => dir.join("mini_dev_sqlite.json"),
        other => {
            return Err(DataError::UnknownSplit {
                kind: "BIRD",
                split: other.to_string(),
                expected: SPLITS,
            });
        }
    };
    if !file.is_file() {
        return Err(DataError::Missing {
            path: file,
            hint: format!("a BIRD folder needs it for the '{split}' split"),
        });
    }
    let records: Vec<Value> = read_json(&file)?;
    let mut examples = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let id = match record.get("question_id") {
            Some(Value::Number(n)) => format!("bird-{split}-{n}"),
            Some(Value::String(s)) => format!("bird-{split}-{s}"),
            None => format!("bird-{split}-{i}"),
            Some(other) => {
                return Err(DataError::Field {
                    path: file.clone(),
                    record: i,
                    field: "question_id",
                    problem: format!("must be a number or string, found {}", json_kind(other)),
                });
            }
        };
        let evidence = match record.get("evidence") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(DataError::Field {
                    path: file.clone(),
                    record: i,
                    field: "evidence",
                    problem: format!("must be a string, found {}", json_kind(other)),
                });
            }
        };
        examples.push(Example {
            id,
            db_id: string_field(&file, i, record, "db_id")?,
            question: string_field(&file, i, record, "question")?,
            evidence,
            gold_sql: string_field(&file, i, record, "SQL")?,
        });
    }
    let official = dir.join("dev_databases");
    let database_root = if official.is_dir() {
        official
    } else {
        dir.join("database")
    };
    Ok(Dataset::new(
        DatasetKind::Bird,
        file,
        database_root,
        examples,
    ))
}

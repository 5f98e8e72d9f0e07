//! Our own plain format: one JSON object per line,
//! `{"id": "...", "db_id": "...", "question": "...", "evidence": "...", "sql": "..."}`
//! (`id` and `evidence` optional; `query` is accepted for `sql`). Databases live in
//! `<db_root>/<db_id>/<db_id>.sqlite`; by default `<db_root>` is `database/` beside the file.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::spider::{json_kind, string_field};
use super::{DataError, Dataset, DatasetKind, Example};

/// Loads a JSONL file. Blank lines are skipped; every other line must be a valid record.
pub fn load(file: &Path, db_root: Option<&Path>) -> Result<Dataset, DataError> {
    let text = std::fs::read_to_string(file).map_err(|source| DataError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let mut examples = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(line).map_err(|e| DataError::Json {
            path: file.to_path_buf(),
            line: line_no,
            column: e.column(),
            message: e.to_string(),
        })?;
        let id = match record.get("id") {
            None | Some(Value::Null) => format!("line-{line_no}"),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(DataError::Field {
                    path: file.to_path_buf(),
                    record: line_no,
                    field: "id",
                    problem: format!("must be a string or number, found {}", json_kind(other)),
                });
            }
        };
        if !seen.insert(id.clone()) {
            return Err(DataError::Field {
                path: file.to_path_buf(),
                record: line_no,
                field: "id",
                problem: format!("'{id}' is used by an earlier line; ids must be unique"),
            });
        }
        let sql_field = if record.get("sql").is_none() && record.get("query").is_some() {
            "query"
        } else {
            "sql"
        };
        let evidence = match record.get("evidence") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(DataError::Field {
                    path: file.to_path_buf(),
                    record: line_no,
                    field: "evidence",
                    problem: format!("must be a string, found {}", json_kind(other)),
                });
            }
        };
        examples.push(Example {
            id,
            db_id: string_field(file, line_no, &record, "db_id")?,
            question: string_field(file, line_no, &record, "question")?,
            evidence,
            gold_sql: string_field(file, line_no, &record, sql_field)?,
        });
    }
    let root: PathBuf = match db_root {
        Some(root) => root.to_path_buf(),
        None => file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("database"),
    };
    Ok(Dataset::new(
        DatasetKind::Jsonl,
        file.to_path_buf(),
        root,
        examples,
    ))
}

/// Writes examples in this format (the inverse of [`load`]).
pub fn write(path: &Path, examples: &[Example]) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for ex in examples {
        let record = serde_json::json!({
            "id": ex.id, "db_id": ex.db_id, "question": ex.question,
            "evidence": ex.evidence, "sql": ex.gold_sql,
        });
        writeln!(out, "{record}").map_err(io)?;
    }
    out.flush().map_err(io)
}

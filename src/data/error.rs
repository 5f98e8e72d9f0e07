use std::path::PathBuf;

/// Everything that can go wrong reading a dataset. Each variant names the file and, where there is
/// one, the record and the field, so the person reading it can go and fix that line.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not valid JSON for this format: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: record {record}: field `{field}`: {problem}", path.display())]
    Field {
        path: PathBuf,
        /// 0-based record index in a JSON array, or 1-based line number in a JSONL file.
        record: usize,
        field: &'static str,
        problem: String,
    },
    #[error("{}: no such dataset folder or file ({hint})", path.display())]
    Missing { path: PathBuf, hint: String },
    #[error("unknown split '{split}' for {kind} (expected one of: {expected})")]
    UnknownSplit {
        kind: &'static str,
        split: String,
        expected: &'static str,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

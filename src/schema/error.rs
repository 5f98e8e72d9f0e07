use std::path::PathBuf;

/// Everything that can go wrong integrating a schema. Each variant names the file and says what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("database file {} does not exist (check the dataset folder and the db_id)", path.display())]
    MissingDatabase { path: PathBuf },
    #[error("cannot read the schema of {}: {source} (is it an SQLite file? run `sqlite3 FILE .schema` to check)", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{}: tables.json declares table '{table}' but the SQLite file has no such table \
         (fix tables.json or the database; tables in the file: {present})",
        path.display()
    )]
    TableMissing {
        path: PathBuf,
        table: String,
        present: String,
    },
    #[error("{}: the database has no tables (nothing to build a prompt from; check the file)", path.display())]
    EmptyDatabase { path: PathBuf },
    #[error("cache {}: {source} (make the cache folder writable, or pass --cache DIR)", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("value index {}: {message} (delete the folder and run `exspin index` again)", path.display())]
    Index { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    #[error("tokenizer {}: {message} (pass a tokenizer.json file, e.g. /work/shared/models/qwen2.5-tokenizer.json)", path.display())]
    Tokenizer { path: PathBuf, message: String },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

//! What a database holds, read from the SQLite file and merged with its `tables.json` entry.
//!
//! The file is the authority on what exists (a prompt must never name a column a query cannot
//! use); `tables.json` adds natural names, its table order and keys the file does not declare
//! (Spider's files often lack FOREIGN KEY clauses). BIRD's `database_description/<table>.csv`
//! adds column descriptions when the folder exists.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SchemaError;
use super::text::truncate_chars;
use crate::data::DatabaseSchema;

/// How many representative values per column, and how long each may be.
pub const REPRESENTATIVE_VALUES: usize = 3;
pub const VALUE_CHARS: usize = 40;
/// How many example rows per table the cache keeps (a prompt shows up to this many).
pub const EXAMPLE_ROWS: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Name as in the SQLite file.
    pub name: String,
    /// Natural name (tables.json), or the name with `_` as spaces.
    pub natural: String,
    /// Declared type (the file's, else tables.json's), upper-case; may be empty.
    pub ty: String,
    pub primary_key: bool,
    /// BIRD's column description, when there is one.
    pub description: Option<String>,
    /// The most frequent distinct non-null values, most frequent first, truncated.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub natural: String,
    pub columns: Vec<Column>,
    pub rows: u64,
    /// The first [`EXAMPLE_ROWS`] rows in file order, a value per column (None for NULL and
    /// blobs), each truncated to [`VALUE_CHARS`].
    pub examples: Vec<Vec<Option<String>>>,
}

/// `from_table.from_column` references `to_table.to_column` (indices into [`DbInfo::tables`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ForeignKey {
    pub from_table: usize,
    pub from_column: usize,
    pub to_table: usize,
    pub to_column: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbInfo {
    pub db_id: String,
    /// SHA-256 of the file's bytes (hex): the key of every cache derived from this database.
    pub content_hash: String,
    pub tables: Vec<Table>,
    pub foreign_keys: Vec<ForeignKey>,
}

impl DbInfo {
    /// Index of the table named `name` (case-insensitive, as SQLite resolves names).
    pub fn table_index(&self, name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Index of column `name` in table `t` (case-insensitive).
    pub fn column_index(&self, t: usize, name: &str) -> Option<usize> {
        self.tables[t]
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn column_count(&self) -> usize {
        self.tables.iter().map(|t| t.columns.len()).sum()
    }

    /// Is column `(t, c)` one end of a foreign key?
    pub fn is_foreign_key(&self, t: usize, c: usize) -> bool {
        self.foreign_keys.iter().any(|fk| {
            (fk.from_table == t && fk.from_column == c) || (fk.to_table == t && fk.to_column == c)
        })
    }
}

/// SHA-256 of a file's bytes, hex.
pub fn content_hash(path: &Path) -> Result<String, SchemaError> {
    let mut file = std::fs::File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => SchemaError::MissingDatabase {
            path: path.to_path_buf(),
        },
        _ => SchemaError::Cache {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|source| SchemaError::Cache {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Opens a database read-only. The dataset folder may be read-only, so nothing is ever written.
pub fn open_read_only(path: &Path) -> Result<Connection, SchemaError> {
    if !path.is_file() {
        return Err(SchemaError::MissingDatabase {
            path: path.to_path_buf(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).map_err(|source| SchemaError::Sqlite {
        path: path.to_path_buf(),
        source,
    })
}

/// Quotes an identifier for SQLite.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Renders a value as text for a prompt or an index: non-UTF-8 bytes are replaced, not fatal.
pub fn value_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(b) => Some(String::from_utf8_lossy(b).into_owned()),
        ValueRef::Blob(_) => None,
    }
}

/// Reads `path` and merges `declared` (its tables.json entry) into it. Not cached; see
/// [`load_cached`].
pub fn introspect(path: &Path, declared: Option<&DatabaseSchema>) -> Result<DbInfo, SchemaError> {
    let content_hash = content_hash(path)?;
    let conn = open_read_only(path)?;
    let sql_err = |source| SchemaError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let file_tables: Vec<String> = {
        let mut stmt = conn
            .prepare(
                // Internal tables are read too: Spider's tables.json declares sqlite_sequence.
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([], |r| {
                r.get_ref(0).map(|v| value_text(v).unwrap_or_default())
            })
            .map_err(sql_err)?;
        rows.collect::<Result<_, _>>().map_err(sql_err)?
    };
    if file_tables.iter().all(|t| t.starts_with("sqlite_")) {
        return Err(SchemaError::EmptyDatabase {
            path: path.to_path_buf(),
        });
    }

    // Table order: tables.json's when given (it is what gold SQL and people refer to), then any
    // table only the file has.
    let mut order: Vec<(String, String)> = Vec::new(); // (file name, natural name)
    if let Some(schema) = declared {
        for (i, orig) in schema.table_names_original.iter().enumerate() {
            let Some(found) = file_tables.iter().find(|t| t.eq_ignore_ascii_case(orig)) else {
                return Err(SchemaError::TableMissing {
                    path: path.to_path_buf(),
                    table: orig.clone(),
                    present: file_tables.join(", "),
                });
            };
            let natural = schema
                .table_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| orig.replace('_', " "));
            order.push((found.clone(), natural));
        }
    }
    for t in file_tables.iter().filter(|t| !t.starts_with("sqlite_")) {
        if !order.iter().any(|(n, _)| n.eq_ignore_ascii_case(t)) {
            order.push((t.clone(), t.replace('_', " ")));
        }
    }

    let descriptions = path.parent().map(|dir| dir.join("database_description"));
    let mut tables = Vec::with_capacity(order.len());
    let mut file_fks: Vec<(usize, String, String, String)> = Vec::new();
    for (ti, (name, natural)) in order.iter().enumerate() {
        let mut columns = read_columns(&conn, name).map_err(sql_err)?;
        if let Some(schema) = declared {
            merge_declared(schema, name, &mut columns);
        }
        if let Some(dir) = descriptions.as_deref().filter(|d| d.is_dir()) {
            merge_descriptions(&dir.join(format!("{name}.csv")), &mut columns);
        }
        for c in &mut columns {
            c.values = representative_values(&conn, name, &c.name).unwrap_or_default();
        }
        let rows = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM {}", quote_ident(name)),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(sql_err)? as u64;
        let examples = example_rows(&conn, name, &columns).map_err(sql_err)?;
        for (from, to_table, to_col) in read_foreign_keys(&conn, name).map_err(sql_err)? {
            file_fks.push((ti, from, to_table, to_col));
        }
        tables.push(Table {
            name: name.clone(),
            natural: natural.clone(),
            columns,
            rows,
            examples,
        });
    }

    let mut info = DbInfo {
        db_id: declared.map(|d| d.db_id.clone()).unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        content_hash,
        tables,
        foreign_keys: Vec::new(),
    };
    let mut fks = BTreeSet::new();
    for (ft, from, to_table, to_col) in file_fks {
        let Some(tt) = info.table_index(&to_table) else {
            continue;
        };
        let Some(fc) = info.column_index(ft, &from) else {
            continue;
        };
        // `REFERENCES t` without a column means t's primary key.
        let tc = if to_col.is_empty() {
            info.tables[tt].columns.iter().position(|c| c.primary_key)
        } else {
            info.column_index(tt, &to_col)
        };
        if let Some(tc) = tc {
            fks.insert(ForeignKey {
                from_table: ft,
                from_column: fc,
                to_table: tt,
                to_column: tc,
            });
        }
    }
    if let Some(schema) = declared {
        for &(a, b) in &schema.foreign_keys {
            if let (Some((ft, fc)), Some((tt, tc))) = (
                resolve_declared(&info, schema, a),
                resolve_declared(&info, schema, b),
            ) {
                fks.insert(ForeignKey {
                    from_table: ft,
                    from_column: fc,
                    to_table: tt,
                    to_column: tc,
                });
            }
        }
    }
    info.foreign_keys = fks.into_iter().collect();
    Ok(info)
}

/// A tables.json column index as (table, column) indices of `info`.
fn resolve_declared(info: &DbInfo, schema: &DatabaseSchema, col: usize) -> Option<(usize, usize)> {
    let (t, name) = schema.column_names_original.get(col)?;
    let tname = schema.table_names_original.get(usize::try_from(*t).ok()?)?;
    let ti = info.table_index(tname)?;
    Some((ti, info.column_index(ti, name)?))
}

fn read_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote_ident(table)))?;
    let rows = stmt.query_map([], |r| {
        let name = value_text(r.get_ref(1)?).unwrap_or_default();
        Ok(Column {
            natural: name.replace('_', " "),
            name,
            ty: value_text(r.get_ref(2)?).unwrap_or_default().to_uppercase(),
            primary_key: r.get::<_, i64>(5)? > 0,
            description: None,
            values: Vec::new(),
        })
    })?;
    rows.collect()
}

/// Natural names, missing types and declared primary keys from tables.json.
fn merge_declared(schema: &DatabaseSchema, table: &str, columns: &mut [Column]) {
    let Some(ti) = schema
        .table_names_original
        .iter()
        .position(|t| t.eq_ignore_ascii_case(table))
    else {
        return;
    };
    let pks: BTreeSet<usize> = schema
        .primary_keys
        .iter()
        .flat_map(|k| k.columns().iter().copied())
        .collect();
    for (ci, (t, orig)) in schema.column_names_original.iter().enumerate() {
        if *t != ti as i64 {
            continue;
        }
        if let Some(c) = columns
            .iter_mut()
            .find(|c| c.name.eq_ignore_ascii_case(orig))
        {
            if let Some((_, natural)) = schema.column_names.get(ci) {
                c.natural = natural.clone();
            }
            if c.ty.is_empty() {
                c.ty = schema
                    .column_types
                    .get(ci)
                    .cloned()
                    .unwrap_or_default()
                    .to_uppercase();
            }
            c.primary_key |= pks.contains(&ci);
        }
    }
}

/// `(from column, referenced table, referenced column)`; the column is empty when the clause
/// names none.
fn read_foreign_keys(
    conn: &Connection,
    table: &str,
) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare(&format!("PRAGMA foreign_key_list({})", quote_ident(table)))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            value_text(r.get_ref(3)?).unwrap_or_default(),
            value_text(r.get_ref(2)?).unwrap_or_default(),
            value_text(r.get_ref(4)?).unwrap_or_default(),
        ))
    })?;
    rows.collect()
}

/// The most frequent distinct values of a column. A column whose values cannot be read (a view
/// gone wrong, a collation missing) just gets none: values are a hint, not a requirement.
fn representative_values(
    conn: &Connection,
    table: &str,
    column: &str,
) -> rusqlite::Result<Vec<String>> {
    let (t, c) = (quote_ident(table), quote_ident(column));
    let sql = format!(
        "SELECT {c} FROM {t} WHERE {c} IS NOT NULL AND typeof({c}) <> 'blob' \
         GROUP BY {c} ORDER BY COUNT(*) DESC, {c} LIMIT {REPRESENTATIVE_VALUES}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| Ok(value_text(r.get_ref(0)?)))?;
    let mut out = Vec::new();
    for v in rows {
        if let Some(v) = v? {
            let v = v.replace(['\n', '\r'], " ");
            if !v.trim().is_empty() {
                out.push(truncate_chars(&v, VALUE_CHARS));
            }
        }
    }
    Ok(out)
}

/// BIRD's `database_description/<table>.csv`: `original_column_name, column_name,
/// column_description, data_format, value_description`. A missing or odd file is skipped.
fn merge_descriptions(csv: &Path, columns: &mut [Column]) {
    let Ok(bytes) = std::fs::read(csv) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    for record in parse_csv(&text).into_iter().skip(1) {
        let get = |i: usize| record.get(i).map(|s| s.trim()).unwrap_or("");
        let Some(c) = columns
            .iter_mut()
            .find(|c| c.name.eq_ignore_ascii_case(get(0)))
        else {
            continue;
        };
        let mut parts: Vec<&str> = Vec::new();
        for i in [2, 4] {
            if !get(i).is_empty() {
                parts.push(get(i));
            }
        }
        if !parts.is_empty() {
            c.description = Some(truncate_chars(
                &parts.join("; ").replace(['\n', '\r'], " "),
                200,
            ));
        }
        if !get(1).is_empty() {
            c.natural = get(1).to_string();
        }
    }
}

/// A small RFC 4180 reader (quoted fields, doubled quotes, newlines inside quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let text = text.trim_start_matches('\u{feff}');
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// The first rows of `table`, by its columns in order.
fn example_rows(
    conn: &Connection,
    table: &str,
    columns: &[Column],
) -> rusqlite::Result<Vec<Vec<Option<String>>>> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM {} LIMIT {EXAMPLE_ROWS}",
        list.join(", "),
        quote_ident(table)
    ))?;
    let rows = stmt.query_map([], |r| {
        (0..columns.len())
            .map(|i| {
                r.get_ref(i)
                    .map(|v| value_text(v).map(|t| truncate_chars(&t, VALUE_CHARS)))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
    })?;
    rows.collect()
}

/// The version of the cached introspection's layout: a cache written before a field existed
/// is not read back with that field empty.
const CACHE_LAYOUT: u32 = 2;

/// Where the introspection of `db_id` with this content is cached.
fn cache_file(cache: &Path, db_id: &str, hash: &str) -> PathBuf {
    cache
        .join("schema")
        .join(format!("{db_id}-{}-v{CACHE_LAYOUT}.json", &hash[..16]))
}

/// [`introspect`] through a JSON cache keyed by the file's content hash (a changed database gets
/// a new entry). A cache that cannot be written is only a warning: the result is still right.
pub fn load_cached(
    cache: &Path,
    path: &Path,
    declared: Option<&DatabaseSchema>,
) -> Result<DbInfo, SchemaError> {
    let hash = content_hash(path)?;
    let db_id = declared.map(|d| d.db_id.clone()).unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let file = cache_file(cache, &db_id, &hash);
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(info) = serde_json::from_str::<DbInfo>(&text)
    {
        return Ok(info);
    }
    let info = introspect(path, declared)?;
    let write = || -> std::io::Result<()> {
        let json = serde_json::to_vec(&info).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomically(&file, &json)
    };
    if let Err(e) = write() {
        tracing::warn!("cannot write schema cache {}: {e}", file.display());
    }
    Ok(info)
}

/// Tables by name, for callers that resolve SQL identifiers.
pub fn table_map(info: &DbInfo) -> BTreeMap<String, usize> {
    info.tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.to_lowercase(), i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_newlines() {
        let rows = parse_csv("a,b\n\"x, y\",\"he said \"\"hi\"\"\nok\"\n");
        assert_eq!(
            rows[1],
            vec!["x, y".to_string(), "he said \"hi\"\nok".to_string()]
        );
    }
}

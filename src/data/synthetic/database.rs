//! One synthetic database: rows drawn from a [`Domain`], written to a SQLite file byte for byte
//! the same for the same seed, and described in the `tables.json` format.

use std::path::Path;

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;

use super::SynthError;
use super::domains::{Domain, Kind, TableDef};
use super::words::{CITIES, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES};
use crate::data::tables::{DatabaseSchema, KeyColumns};

/// A cell value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Int(i64),
    Real(f64),
    Text(String),
}

impl Val {
    /// The value as a SQL literal.
    pub fn sql(&self) -> String {
        match self {
            Val::Int(i) => i.to_string(),
            Val::Real(r) => format!("{r:.2}"),
            Val::Text(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }

    /// The value as written in a question.
    pub fn spoken(&self) -> String {
        match self {
            Val::Int(i) => i.to_string(),
            Val::Real(r) => format!("{r:.2}"),
            Val::Text(s) => s.clone(),
        }
    }
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match self {
            Val::Int(i) => (*i).into(),
            Val::Real(r) => (*r).into(),
            Val::Text(s) => s.as_str().into(),
        })
    }
}

/// A generated database: its domain and every table's rows (in table order).
#[derive(Debug)]
pub struct SynthDb {
    pub domain: &'static Domain,
    pub rows: Vec<Vec<Vec<Val>>>,
}

/// A foreign key: `child.column` references the primary key (column 0) of `parent`.
#[derive(Debug, Clone, Copy)]
pub struct ForeignKey {
    pub child: usize,
    pub column: usize,
    pub parent: usize,
}

impl SynthDb {
    /// Draws every table's rows; foreign keys point at existing parent rows.
    pub fn generate(domain: &'static Domain, rng: &mut ChaCha8Rng) -> SynthDb {
        let mut rows: Vec<Vec<Vec<Val>>> = Vec::with_capacity(domain.tables.len());
        for table in domain.tables {
            let count = rng.random_range(table.rows.0..=table.rows.1);
            let mut table_rows = Vec::with_capacity(count);
            for id in 1..=count {
                let mut row: Vec<Val> = Vec::with_capacity(table.columns.len());
                for col in table.columns {
                    let value = match col.kind {
                        Kind::Id => Val::Int(id as i64),
                        Kind::Fk(parent) => {
                            let n = rows[table_index(domain, parent)].len() as i64;
                            Val::Int(rng.random_range(1..=n))
                        }
                        Kind::Person => Val::Text(format!(
                            "{} {}",
                            pick(rng, FIRST_NAMES),
                            pick(rng, LAST_NAMES)
                        )),
                        Kind::Email => {
                            let person = row.iter().find_map(|v| match v {
                                Val::Text(s) if s.contains(' ') => Some(s.clone()),
                                _ => None,
                            });
                            let local = person
                                .unwrap_or_else(|| "user".into())
                                .to_lowercase()
                                .replace(' ', ".");
                            Val::Text(format!("{local}{id}@{}", pick(rng, EMAIL_DOMAINS)))
                        }
                        Kind::City => Val::Text(pick(rng, CITIES).into()),
                        Kind::Choice(words) => Val::Text(pick(rng, words).into()),
                        Kind::Compose(a, b) => {
                            Val::Text(format!("{} {}", pick(rng, a), pick(rng, b)))
                        }
                        Kind::Int(lo, hi) | Kind::Year(lo, hi) => {
                            Val::Int(rng.random_range(lo..=hi))
                        }
                        Kind::Real(lo, hi) => {
                            Val::Real(rng.random_range(lo * 100..=hi * 100) as f64 / 100.0)
                        }
                        Kind::Date(lo, hi) => Val::Text(format!(
                            "{:04}-{:02}-{:02}",
                            rng.random_range(lo..=hi),
                            rng.random_range(1..=12),
                            rng.random_range(1..=28)
                        )),
                    };
                    row.push(value);
                }
                table_rows.push(row);
            }
            rows.push(table_rows);
        }
        SynthDb { domain, rows }
    }

    pub fn db_id(&self) -> &'static str {
        self.domain.db_id
    }

    pub fn table(&self, t: usize) -> &'static TableDef {
        &self.domain.tables[t]
    }

    pub fn table_count(&self) -> usize {
        self.domain.tables.len()
    }

    /// Every foreign key of the database.
    pub fn foreign_keys(&self) -> Vec<ForeignKey> {
        let mut fks = Vec::new();
        for (child, table) in self.domain.tables.iter().enumerate() {
            for (column, col) in table.columns.iter().enumerate() {
                if let Kind::Fk(parent) = col.kind {
                    fks.push(ForeignKey {
                        child,
                        column,
                        parent: table_index(self.domain, parent),
                    });
                }
            }
        }
        fks
    }

    /// Total number of rows over all tables.
    pub fn row_count(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
    }

    /// Writes the SQLite file at `path` (via a temporary name, so a reader never sees half a
    /// file). No journal, no WAL, one transaction: the bytes depend on the rows only.
    pub fn write_sqlite(&self, path: &Path) -> Result<(), SynthError> {
        let wrap = |source| SynthError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let io = |source| SynthError::Io {
            path: path.to_path_buf(),
            source,
        };
        let staged = crate::fsutil::Staged::file(path).map_err(io)?;
        let mut conn = Connection::open(staged.path()).map_err(wrap)?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA page_size = 4096;",
        )
        .map_err(wrap)?;
        let tx = conn.transaction().map_err(wrap)?;
        for (t, table) in self.domain.tables.iter().enumerate() {
            tx.execute_batch(&create_table(table)).map_err(wrap)?;
            let placeholders = vec!["?"; table.columns.len()].join(", ");
            let mut insert = tx
                .prepare(&format!(
                    "INSERT INTO {} VALUES ({placeholders})",
                    table.name
                ))
                .map_err(wrap)?;
            for row in &self.rows[t] {
                insert
                    .execute(rusqlite::params_from_iter(row.iter()))
                    .map_err(wrap)?;
            }
        }
        tx.commit().map_err(wrap)?;
        conn.close().map_err(|(_, source)| wrap(source))?;
        staged.commit().map_err(io)
    }

    /// The database's entry of `tables.json`.
    pub fn schema(&self) -> DatabaseSchema {
        let mut schema = DatabaseSchema {
            db_id: self.db_id().to_string(),
            table_names: Vec::new(),
            table_names_original: Vec::new(),
            column_names: vec![(-1, "*".to_string())],
            column_names_original: vec![(-1, "*".to_string())],
            column_types: vec!["text".to_string()],
            primary_keys: Vec::new(),
            foreign_keys: Vec::new(),
        };
        // Index of each table's first column in the flat column list, for key references.
        let mut first_column = Vec::new();
        for (t, table) in self.domain.tables.iter().enumerate() {
            schema.table_names.push(table.singular());
            schema.table_names_original.push(table.name.to_string());
            first_column.push(schema.column_names.len());
            for (c, col) in table.columns.iter().enumerate() {
                if matches!(col.kind, Kind::Id) {
                    schema
                        .primary_keys
                        .push(KeyColumns::One(schema.column_names.len()));
                }
                schema.column_names.push((t as i64, table.natural(c)));
                schema
                    .column_names_original
                    .push((t as i64, col.name.to_string()));
                schema.column_types.push(col.kind.spider_type().to_string());
            }
        }
        for fk in self.foreign_keys() {
            schema
                .foreign_keys
                .push((first_column[fk.child] + fk.column, first_column[fk.parent]));
        }
        schema
    }
}

fn create_table(table: &TableDef) -> String {
    let mut parts: Vec<String> = table
        .columns
        .iter()
        .map(|col| {
            let extra = if matches!(col.kind, Kind::Id) {
                " PRIMARY KEY"
            } else {
                " NOT NULL"
            };
            format!("{} {}{extra}", col.name, col.kind.sql_type())
        })
        .collect();
    for col in table.columns {
        if let Kind::Fk(parent) = col.kind {
            parts.push(format!(
                "FOREIGN KEY ({}) REFERENCES {parent} ({parent}_id)",
                col.name
            ));
        }
    }
    format!(
        "CREATE TABLE {} (\n  {}\n);",
        table.name,
        parts.join(",\n  ")
    )
}

fn table_index(domain: &Domain, name: &str) -> usize {
    domain
        .tables
        .iter()
        .position(|t| t.name == name)
        .unwrap_or_else(|| panic!("domain {}: no table {name}", domain.db_id))
}

fn pick<'a>(rng: &mut ChaCha8Rng, words: &[&'a str]) -> &'a str {
    words.choose(rng).copied().unwrap_or("")
}

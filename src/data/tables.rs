//! `tables.json` (Spider) / `dev_tables.json` (BIRD): the declared schema of every database, with
//! original names (as in the SQLite file) and natural names (as a person would say them).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DataError, read_json};
use crate::sql::classify::KeyInfo;

/// One database's declared schema. Column 0 is Spider's `*` pseudo-column (table index -1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSchema {
    pub db_id: String,
    pub table_names: Vec<String>,
    pub table_names_original: Vec<String>,
    /// `(table index, natural name)`; table index -1 is the `*` column.
    pub column_names: Vec<(i64, String)>,
    pub column_names_original: Vec<(i64, String)>,
    pub column_types: Vec<String>,
    /// Column indices; BIRD writes a composite key as a nested list.
    #[serde(default)]
    pub primary_keys: Vec<KeyColumns>,
    /// `(column, referenced column)` pairs.
    #[serde(default)]
    pub foreign_keys: Vec<(usize, usize)>,
}

impl DatabaseSchema {
    /// The declared primary keys (original names), as the query-type classifier reads them. It
    /// lives here, not in `sql::classify`, because datasets build on SQL and not the other way.
    pub fn key_info(&self) -> KeyInfo {
        let mut info = KeyInfo::new();
        for key in &self.primary_keys {
            for &col in key.columns() {
                let Some((table, name)) = self.column_names_original.get(col) else {
                    continue;
                };
                let Some(table) = usize::try_from(*table)
                    .ok()
                    .and_then(|t| self.table_names_original.get(t))
                else {
                    continue;
                };
                info.insert(table, name);
            }
        }
        info
    }
}

/// A primary key: one column index, or several for a composite key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyColumns {
    One(usize),
    Composite(Vec<usize>),
}

impl KeyColumns {
    pub fn columns(&self) -> &[usize] {
        match self {
            KeyColumns::One(c) => std::slice::from_ref(c),
            KeyColumns::Composite(cs) => cs,
        }
    }
}

/// All schemas of a `tables.json`, by database id.
#[derive(Debug, Clone, Default)]
pub struct TablesFile {
    pub databases: BTreeMap<String, DatabaseSchema>,
}

impl TablesFile {
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let list: Vec<DatabaseSchema> = read_json(path)?;
        let mut databases = BTreeMap::new();
        for (i, schema) in list.into_iter().enumerate() {
            if schema.column_names.len() != schema.column_names_original.len()
                || schema.column_names.len() != schema.column_types.len()
            {
                return Err(DataError::Field {
                    path: path.to_path_buf(),
                    record: i,
                    field: "column_names",
                    problem: format!(
                        "database '{}': column_names, column_names_original and column_types must \
                         have the same length ({}, {}, {})",
                        schema.db_id,
                        schema.column_names.len(),
                        schema.column_names_original.len(),
                        schema.column_types.len()
                    ),
                });
            }
            databases.insert(schema.db_id.clone(), schema);
        }
        Ok(TablesFile { databases })
    }

    pub fn get(&self, db_id: &str) -> Option<&DatabaseSchema> {
        self.databases.get(db_id)
    }
}

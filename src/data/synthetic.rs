//! The embedded default dataset: small SQLite databases from eight everyday domains (school,
//! library, shop, hospital, airline, music, football, company) with template questions covering
//! the paper's six query types, written in the Spider layout so every Spider tool reads it:
//!
//! ```text
//! OUT/tables.json            official format (natural and original names, keys)
//! OUT/train_spider.json      {db_id, question, query, query_type} records
//! OUT/dev.json               the same, on other databases than train
//! OUT/train_gold.sql, OUT/dev_gold.sql   `SQL<TAB>db_id` per example, as Spider ships them
//!                            (a predictions file for `exspin eval` reads the first field)
//! OUT/database/<db>/<db>.sqlite
//! ```
//!
//! Generation is seeded: the same [`SynthConfig`] gives byte-identical files (the SQLite files
//! are built in one transaction without a journal, and hold no timestamp), another seed other
//! data. Each database and each split draws from its own ChaCha stream, so asking for more train
//! examples leaves the databases and the dev split unchanged. Every gold query is executed while
//! generating and kept only if it returns at least one row; `query_type` is the type the template
//! was written for, which [`crate::sql::classify::classify`] recovers from the SQL.

mod database;
mod domains;
mod questions;
mod words;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::sql::classify::QueryType;
use database::SynthDb;
use domains::DOMAINS;

/// What to generate. Read from TOML/JSON with unknown fields refused, so a typo is an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Seed of every random choice; the same seed gives the same bytes.
    pub seed: u64,
    /// Examples in `train_spider.json`.
    pub train_examples: usize,
    /// Examples in `dev.json`.
    pub dev_examples: usize,
    /// How many of the eight databases the dev split gets (the last ones); train gets the rest.
    pub dev_databases: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 42,
            train_examples: 1500,
            dev_examples: 400,
            dev_databases: 3,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthSummary {
    pub seed: u64,
    pub out: PathBuf,
    pub databases: Vec<DatabaseSummary>,
    /// `train` then `dev`.
    pub splits: Vec<SplitSummary>,
    /// Template instances drawn and discarded (no row returned, or a repeated question).
    pub discarded: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatabaseSummary {
    pub db_id: String,
    pub split: &'static str,
    pub tables: usize,
    pub rows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitSummary {
    pub split: &'static str,
    /// File name inside the output folder.
    pub file: &'static str,
    pub examples: usize,
    pub databases: Vec<String>,
    /// Examples per query type name.
    pub by_type: BTreeMap<String, usize>,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: SQLite: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("invalid synthetic config: {0}")]
    Config(String),
    #[error(
        "{split}: could not find a new {query_type} question after {attempts} draws ({made} examples \
         made); the databases cannot hold that many distinct questions, ask for fewer examples"
    )]
    Exhausted {
        split: &'static str,
        query_type: QueryType,
        attempts: usize,
        made: usize,
    },
    #[error("{}: generated gold query fails ({source}); this is a bug in a template: {sql}", path.display())]
    BadGold {
        path: PathBuf,
        sql: String,
        source: rusqlite::Error,
    },
}

/// One record of `train_spider.json` / `dev.json`.
#[derive(Debug, Clone, Serialize)]
struct Record<'a> {
    db_id: &'a str,
    question: String,
    query: String,
    query_type: QueryType,
}

/// Draws per example before giving up on its type.
const ATTEMPTS: usize = 400;

/// Writes the synthetic dataset into `out` (created if needed; files of the same names are
/// replaced, other files are left alone).
pub fn generate(config: &SynthConfig, out: &Path) -> Result<SynthSummary, SynthError> {
    if config.dev_databases == 0 || config.dev_databases >= DOMAINS.len() {
        return Err(SynthError::Config(format!(
            "dev_databases must be between 1 and {} (there are {} databases and train needs at \
             least one), got {}",
            DOMAINS.len() - 1,
            DOMAINS.len(),
            config.dev_databases
        )));
    }
    let db_root = out.join("database");
    let mut dbs = Vec::with_capacity(DOMAINS.len());
    for (i, domain) in DOMAINS.iter().enumerate() {
        let db = SynthDb::generate(domain, &mut stream(config.seed, i as u64));
        let dir = db_root.join(domain.db_id);
        create_dir(&dir)?;
        db.write_sqlite(&crate::data::database_path(&db_root, domain.db_id))?;
        dbs.push(db);
    }
    let schemas: Vec<_> = dbs.iter().map(SynthDb::schema).collect();
    write_json(&out.join("tables.json"), &schemas)?;

    let n_train = DOMAINS.len() - config.dev_databases;
    let mut summary = SynthSummary {
        seed: config.seed,
        out: out.to_path_buf(),
        databases: Vec::new(),
        splits: Vec::new(),
        discarded: 0,
    };
    let splits = [
        (
            "train",
            "train_spider.json",
            &dbs[..n_train],
            config.train_examples,
        ),
        ("dev", "dev.json", &dbs[n_train..], config.dev_examples),
    ];
    let gold_files = ["train_gold.sql", "dev_gold.sql"];
    for (index, (split, file, split_dbs, count)) in splits.into_iter().enumerate() {
        for db in split_dbs {
            summary.databases.push(DatabaseSummary {
                db_id: db.db_id().to_string(),
                split,
                tables: db.table_count(),
                rows: db.row_count(),
            });
        }
        let mut rng = stream(config.seed, 1_000 + index as u64);
        let (records, discarded) = questions_for(split, split_dbs, &db_root, count, &mut rng)?;
        summary.discarded += discarded;
        let mut by_type = BTreeMap::new();
        for r in &records {
            *by_type.entry(r.query_type.name().to_string()).or_insert(0) += 1;
        }
        write_json(&out.join(file), &records)?;
        let gold: String = records
            .iter()
            .map(|r| format!("{}\t{}\n", r.query, r.db_id))
            .collect();
        write_atomically(&out.join(gold_files[index]), gold.as_bytes())?;
        summary.splits.push(SplitSummary {
            split,
            file,
            examples: records.len(),
            databases: split_dbs.iter().map(|d| d.db_id().to_string()).collect(),
            by_type,
        });
    }
    Ok(summary)
}

/// `count` examples cycling through the six types and, within a type, through the databases.
fn questions_for<'a>(
    split: &'static str,
    dbs: &'a [SynthDb],
    db_root: &Path,
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<Record<'a>>, usize), SynthError> {
    let mut conns = Vec::with_capacity(dbs.len());
    for db in dbs {
        let path = crate::data::database_path(db_root, db.db_id());
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&path, flags).map_err(|source| SynthError::Sqlite {
                path: path.clone(),
                source,
            })?;
        conns.push((conn, path));
    }
    let mut seen = BTreeSet::new();
    let mut records = Vec::with_capacity(count);
    let mut discarded = 0;
    for i in 0..count {
        let ty = QueryType::SIX[i % QueryType::SIX.len()];
        let first = (i / QueryType::SIX.len()) % dbs.len();
        let mut made = false;
        for attempt in 0..ATTEMPTS {
            // Move on to the next database when one seems exhausted for this type.
            let d = (first + attempt * dbs.len() / ATTEMPTS) % dbs.len();
            let Some(instance) = questions::instantiate(ty, &dbs[d], rng) else {
                continue;
            };
            let key = (d, instance.question.clone());
            if seen.contains(&key) {
                discarded += 1;
                continue;
            }
            let (conn, path) = &conns[d];
            if !returns_rows(conn, &instance.sql).map_err(|source| SynthError::BadGold {
                path: path.clone(),
                sql: instance.sql.clone(),
                source,
            })? {
                discarded += 1;
                continue;
            }
            seen.insert(key);
            records.push(Record {
                db_id: dbs[d].db_id(),
                question: instance.question,
                query: instance.sql,
                query_type: ty,
            });
            made = true;
            break;
        }
        if !made {
            return Err(SynthError::Exhausted {
                split,
                query_type: ty,
                attempts: ATTEMPTS,
                made: records.len(),
            });
        }
    }
    Ok((records, discarded))
}

fn returns_rows(conn: &Connection, sql: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([])?;
    Ok(rows.next()?.is_some())
}

/// An independent random stream per database and per split.
fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn create_dir(dir: &Path) -> Result<(), SynthError> {
    std::fs::create_dir_all(dir).map_err(|source| SynthError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Pretty JSON with a final newline, written via a temporary name.
fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), SynthError> {
    let io = |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| io(e.into()))?;
    bytes.push(b'\n');
    write_atomically(path, &bytes)
}

/// Writes `bytes` to a temporary name beside `path`, then renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    crate::fsutil::write_atomically(path, bytes).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    })
}

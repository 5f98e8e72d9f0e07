//! The sandboxed SQL executor.
//!
//! A query is untrusted text written by a model. [`Sandbox`] runs one statement against one
//! SQLite file and returns a typed [`Outcome`]; nothing it runs can change or attach a database,
//! load an extension, or touch a file other than the one it was opened on. Defences, each enough
//! on its own for writes and layered on purpose:
//!
//! 1. the file is opened `SQLITE_OPEN_READ_ONLY` and `PRAGMA query_only = ON`;
//! 2. an authorizer denies writes, ATTACH/DETACH, pragmas other than a read-only list, and the
//!    functions that reach outside the database (`load_extension`, `fts3_tokenizer`, …);
//!    `SQLITE_LIMIT_ATTACHED` is 0 and defensive mode is on;
//! 3. after preparing, `sqlite3_stmt_readonly` must hold;
//! 4. only one statement is accepted (checked on the tokens, before SQLite sees the text).
//!
//! The time limit is enforced inside SQLite by a progress handler that reads a per-connection
//! deadline, so a runaway cross join or recursive CTE stops on time and the connection stays
//! usable. A row cap bounds memory. [`ExecutorPool`] runs many queries on worker threads, each
//! caching one connection per database, and caches gold results by key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use parking_lot::Mutex;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::lexer;
use super::value::{ResultSet, Value};

/// Limits applied to every query.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutorConfig {
    /// Wall-clock limit per query, enforced inside SQLite.
    pub timeout: Duration,
    /// More rows than this is [`Outcome::TooManyRows`].
    pub max_rows: usize,
    /// Longest string or blob a query may build (`SQLITE_LIMIT_LENGTH`).
    pub max_value_bytes: usize,
    /// Worker threads in an [`ExecutorPool`].
    pub workers: usize,
    /// Jobs that may wait for a worker before `submit` blocks (back-pressure).
    pub queue_capacity: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            timeout: Duration::from_secs(5),
            max_rows: 100_000,
            max_value_bytes: 16 << 20,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_capacity: 256,
        }
    }
}

/// Why a query was refused before it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, VACUUM, transactions, …
    Write,
    /// More than one statement in the text.
    MultipleStatements,
    /// No statement at all (empty, or only comments).
    Empty,
    /// ATTACH or DETACH.
    Attach,
    /// A PRAGMA outside the read-only list, or any PRAGMA that sets a value.
    Pragma,
    /// `load_extension` and other functions that reach outside the database.
    Extension,
}

/// What running one query produced. Serialized as `{"outcome": "rows"|"error"|"timeout"|
/// "too_many_rows"|"rejected", ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Rows {
        columns: Vec<String>,
        rows: ResultSet,
    },
    Rejected {
        reason: RejectReason,
        message: String,
    },
    Error {
        message: String,
    },
    Timeout {
        limit_ms: u64,
    },
    TooManyRows {
        limit: usize,
    },
}

impl Outcome {
    /// The rows, when the query succeeded.
    pub fn rows(&self) -> Option<&ResultSet> {
        match self {
            Outcome::Rows { rows, .. } => Some(rows),
            _ => None,
        }
    }

    /// Short name of the outcome kind, as in the JSON `outcome` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Rows { .. } => "rows",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Error { .. } => "error",
            Outcome::Timeout { .. } => "timeout",
            Outcome::TooManyRows { .. } => "too_many_rows",
        }
    }
}

/// Errors opening a database (running a query never fails: it has an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("database file {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("cannot open database {} read-only: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// Pragmas that only read. Anything else, or any pragma with `= value`, is refused.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
];

/// Functions that could reach outside the database file.
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "load_extension",
    "fts3_tokenizer",
    "readfile",
    "writefile",
    "edit",
    "zipfile",
];

/// A deadline shared between a connection's progress handler and whoever runs the query.
/// Stored as nanoseconds since `epoch`; 0 means "no query running".
struct Deadline {
    epoch: Instant,
    nanos: AtomicU64,
}

impl Deadline {
    fn expired(&self) -> bool {
        let d = self.nanos.load(Ordering::Relaxed);
        d != 0 && self.epoch.elapsed().as_nanos() as u64 > d
    }
}

/// One read-only connection with its guards installed.
pub struct Sandbox {
    conn: Connection,
    deadline: Arc<Deadline>,
    /// What the authorizer refused during the last prepare, if anything.
    refused: Arc<Mutex<Option<(RejectReason, String)>>>,
    path: PathBuf,
}

impl Sandbox {
    /// Opens `path` read-only with every guard in place.
    pub fn open(path: &Path) -> Result<Sandbox, OpenError> {
        if !path.is_file() {
            return Err(OpenError::Missing {
                path: path.to_path_buf(),
            });
        }
        let wrap = |source| OpenError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(wrap)?;
        conn.pragma_update(None, "query_only", true).map_err(wrap)?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(wrap)?;
        use rusqlite::config::DbConfig;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(wrap)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
            .map_err(wrap)?;
        // Spider's gold SQL writes string literals in double quotes, as Python's sqlite3 accepts.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, true)
            .map_err(wrap)?;
        let deadline = Arc::new(Deadline {
            epoch: Instant::now(),
            nanos: AtomicU64::new(0),
        });
        let watch = Arc::clone(&deadline);
        conn.progress_handler(1_000, Some(move || watch.expired()))
            .map_err(wrap)?;
        let refused = Arc::new(Mutex::new(None));
        let record = Arc::clone(&refused);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            let verdict = authorize(&ctx.action);
            if let Some(reason) = verdict {
                record.lock().get_or_insert((reason, describe(&ctx.action)));
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }))
        .map_err(wrap)?;
        Ok(Sandbox {
            conn,
            deadline,
            refused,
            path: path.to_path_buf(),
        })
    }

    /// The database file this sandbox reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the per-query length limit (strings and blobs a query may build).
    pub fn set_max_value_bytes(&self, bytes: usize) {
        let _ = self.conn.set_limit(
            Limit::SQLITE_LIMIT_LENGTH,
            bytes.min(i32::MAX as usize) as i32,
        );
    }

    /// Runs one statement under the limits and returns its typed outcome.
    pub fn run(&self, sql: &str, config: &ExecutorConfig) -> Outcome {
        match lexer::statement_count(sql) {
            0 => {
                return Outcome::Rejected {
                    reason: RejectReason::Empty,
                    message: "no SQL statement".into(),
                };
            }
            1 => {}
            n => {
                return Outcome::Rejected {
                    reason: RejectReason::MultipleStatements,
                    message: format!("{n} statements; only one is allowed"),
                };
            }
        }
        *self.refused.lock() = None;
        let started = Instant::now();
        let limit_ns = self.deadline.epoch.elapsed() + config.timeout;
        self.deadline
            .nanos
            .store(limit_ns.as_nanos().max(1) as u64, Ordering::Relaxed);
        let outcome = self.run_prepared(sql, config);
        self.deadline.nanos.store(0, Ordering::Relaxed);
        // An interrupt can surface as a generic error; the clock decides.
        match outcome {
            Outcome::Error { .. } if started.elapsed() >= config.timeout => Outcome::Timeout {
                limit_ms: config.timeout.as_millis() as u64,
            },
            other => other,
        }
    }

    fn run_prepared(&self, sql: &str, config: &ExecutorConfig) -> Outcome {
        let mut stmt = match self.conn.prepare(sql) {
            Ok(stmt) => stmt,
            Err(err) => return self.classify_error(err, config),
        };
        if !stmt.readonly() {
            return Outcome::Rejected {
                reason: RejectReason::Write,
                message: "the statement would write".into(),
            };
        }
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let width = columns.len();
        let mut rows = match stmt.query([]) {
            Ok(rows) => rows,
            Err(err) => return self.classify_error(err, config),
        };
        let mut out: ResultSet = Vec::new();
        loop {
            match rows.next() {
                Ok(Some(row)) => {
                    if out.len() == config.max_rows {
                        return Outcome::TooManyRows {
                            limit: config.max_rows,
                        };
                    }
                    let mut cells = Vec::with_capacity(width);
                    for i in 0..width {
                        use rusqlite::types::ValueRef;
                        cells.push(match row.get_ref(i) {
                            Ok(ValueRef::Null) | Err(_) => Value::Null,
                            Ok(ValueRef::Integer(v)) => Value::Integer(v),
                            Ok(ValueRef::Real(v)) => Value::Real(v),
                            Ok(ValueRef::Text(t)) => Value::text_from_bytes(t),
                            Ok(ValueRef::Blob(b)) => Value::Blob(b.to_vec()),
                        });
                    }
                    out.push(cells);
                }
                Ok(None) => break,
                Err(err) => return self.classify_error(err, config),
            }
        }
        Outcome::Rows { columns, rows: out }
    }

    fn classify_error(&self, err: rusqlite::Error, config: &ExecutorConfig) -> Outcome {
        if let Some((reason, message)) = self.refused.lock().take() {
            return Outcome::Rejected { reason, message };
        }
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::OperationInterrupted) => Outcome::Timeout {
                limit_ms: config.timeout.as_millis() as u64,
            },
            Some(rusqlite::ErrorCode::ReadOnly) => Outcome::Rejected {
                reason: RejectReason::Write,
                message: err.to_string(),
            },
            _ => Outcome::Error {
                message: err.to_string(),
            },
        }
    }
}

/// The authorizer's rule: `Some(reason)` refuses the action.
fn authorize(action: &AuthAction<'_>) -> Option<RejectReason> {
    use AuthAction::*;
    match action {
        Select | Read { .. } | Recursive => None,
        Function { function_name } => FORBIDDEN_FUNCTIONS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(function_name))
            .then_some(RejectReason::Extension),
        Pragma {
            pragma_name,
            pragma_value,
        } => {
            let listed = READ_ONLY_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name));
            // table_info(t) passes the table as the value; that reads. `x = v` forms of the
            // listed pragmas do not exist, so a listed name is safe with any argument.
            (!listed || (pragma_value.is_some() && !takes_table_argument(pragma_name)))
                .then_some(RejectReason::Pragma)
        }
        Attach { .. } | Detach { .. } => Some(RejectReason::Attach),
        _ => Some(RejectReason::Write),
    }
}

fn takes_table_argument(pragma: &str) -> bool {
    READ_ONLY_PRAGMAS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(pragma) && *p != "collation_list")
}

fn describe(action: &AuthAction<'_>) -> String {
    match action {
        AuthAction::Function { function_name } => {
            format!("function {function_name}() is not allowed")
        }
        AuthAction::Pragma { pragma_name, .. } => format!("PRAGMA {pragma_name} is not allowed"),
        AuthAction::Attach { .. } => "ATTACH is not allowed".into(),
        AuthAction::Detach { .. } => "DETACH is not allowed".into(),
        other => format!("{other:?} is not allowed: the database is read-only"),
    }
}

/// A job for the pool.
struct Job {
    db: Arc<Path>,
    sql: String,
    reply: Sender<Outcome>,
}

/// Worker threads running queries, each with a cache of open sandboxes per database.
///
/// The job queue is bounded (`queue_capacity`): `submit` blocks when the workers fall behind,
/// which is the back-pressure the streaming runtime relies on.
pub struct ExecutorPool {
    config: ExecutorConfig,
    jobs: Option<Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    gold: Mutex<HashMap<String, Arc<Outcome>>>,
}

/// Most databases a worker keeps open at once; the least recently used is closed past this.
const OPEN_DATABASES_PER_WORKER: usize = 64;

impl ExecutorPool {
    pub fn new(config: ExecutorConfig) -> ExecutorPool {
        let (tx, rx) = bounded::<Job>(config.queue_capacity.max(1));
        let workers = (0..config.workers.max(1))
            .map(|i| {
                let rx = rx.clone();
                let config = config.clone();
                std::thread::Builder::new()
                    .name(format!("sql-exec-{i}"))
                    .spawn(move || worker_loop(rx, config))
                    .expect("spawning an executor thread")
            })
            .collect();
        ExecutorPool {
            config,
            jobs: Some(tx),
            workers,
            gold: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Queues a query; the receiver yields its outcome. Blocks while the queue is full.
    pub fn submit(&self, db: &Path, sql: &str) -> Receiver<Outcome> {
        let (reply, rx) = bounded(1);
        let job = Job {
            db: Arc::from(db),
            sql: sql.to_owned(),
            reply,
        };
        self.jobs
            .as_ref()
            .expect("pool is running")
            .send(job)
            .expect("executor workers are alive");
        rx
    }

    /// Runs one query and waits for its outcome.
    pub fn execute(&self, db: &Path, sql: &str) -> Outcome {
        receive(self.submit(db, sql))
    }

    /// Runs many queries in parallel; outcomes come back in input order.
    pub fn execute_many<'a>(
        &self,
        queries: impl IntoIterator<Item = (&'a Path, &'a str)>,
    ) -> Vec<Outcome> {
        // Submit from a helper thread so a batch larger than the queue cannot deadlock us.
        let queries: Vec<(PathBuf, String)> = queries
            .into_iter()
            .map(|(p, s)| (p.to_path_buf(), s.to_owned()))
            .collect();
        std::thread::scope(|scope| {
            let (tickets_tx, tickets_rx) = bounded(self.config.queue_capacity.max(1));
            scope.spawn(move || {
                for (db, sql) in &queries {
                    if tickets_tx.send(self.submit(db, sql)).is_err() {
                        break;
                    }
                }
            });
            tickets_rx.iter().map(receive).collect()
        })
    }

    /// The outcome of a gold query, computed once per `key` and cached.
    pub fn gold(&self, key: &str, db: &Path, sql: &str) -> Arc<Outcome> {
        if let Some(hit) = self.gold.lock().get(key) {
            return Arc::clone(hit);
        }
        let outcome = Arc::new(self.execute(db, sql));
        self.gold
            .lock()
            .entry(key.to_owned())
            .or_insert(outcome)
            .clone()
    }

    /// Number of cached gold results.
    pub fn gold_cached(&self) -> usize {
        self.gold.lock().len()
    }
}

fn receive(rx: Receiver<Outcome>) -> Outcome {
    rx.recv().unwrap_or_else(|_| Outcome::Error {
        message: "executor worker stopped before answering".into(),
    })
}

impl Drop for ExecutorPool {
    fn drop(&mut self) {
        self.jobs.take(); // closing the queue ends the workers
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker_loop(rx: Receiver<Job>, config: ExecutorConfig) {
    let mut open: Vec<(Arc<Path>, Sandbox)> = Vec::new(); // most recently used last
    for job in rx {
        let pos = open.iter().position(|(p, _)| **p == *job.db);
        let sandbox = match pos {
            Some(i) => {
                let entry = open.remove(i);
                open.push(entry);
                Ok(())
            }
            None => Sandbox::open(&job.db).map(|sb| {
                sb.set_max_value_bytes(config.max_value_bytes);
                if open.len() == OPEN_DATABASES_PER_WORKER {
                    open.remove(0);
                }
                open.push((Arc::clone(&job.db), sb));
            }),
        };
        let outcome = match sandbox {
            Ok(()) => {
                let (_, sb) = open.last().expect("just pushed");
                // A panic inside SQLite glue must not take the worker down with it.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sb.run(&job.sql, &config)))
                    .unwrap_or_else(|_| Outcome::Error {
                        message: "internal error while running the query".into(),
                    })
            }
            Err(e) => Outcome::Error {
                message: e.to_string(),
            },
        };
        let _ = job.reply.send(outcome);
    }
}

//! `exspin sql`: one query through the sandboxed executor.

use std::path::PathBuf;
use std::time::Duration;

use exspin::sql::executor::{ExecutorConfig, Outcome, Sandbox};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin sql --db ../shared/data/spider/database/concert_singer/concert_singer.sqlite \\\n      \"SELECT count(*) FROM singer\" --json\n\n\
The database is opened read-only; writes, ATTACH, writing PRAGMAs and extensions are refused \
(outcome \"rejected\"). Exit status: 0 when the query returned rows, 1 otherwise."
)]
pub struct SqlArgs {
    /// The SQLite file to query.
    #[arg(long, value_name = "FILE.sqlite")]
    pub db: PathBuf,
    /// One SQL statement.
    pub sql: String,
    /// Time limit in seconds, enforced inside SQLite.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Most rows to return before answering "too_many_rows".
    #[arg(long, default_value_t = 100_000)]
    pub max_rows: usize,
    /// Print the outcome as one JSON object ({"outcome": "rows"|"error"|"timeout"|"too_many_rows"|"rejected", ...}).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SqlArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.timeout > 0.0 && args.timeout.is_finite(),
        "--timeout must be a positive number of seconds"
    );
    let config = ExecutorConfig {
        timeout: Duration::from_secs_f64(args.timeout),
        max_rows: args.max_rows,
        ..ExecutorConfig::default()
    };
    let sandbox = Sandbox::open(&args.db)?;
    sandbox.set_max_value_bytes(config.max_value_bytes);
    let outcome = sandbox.run(&args.sql, &config);
    if args.json {
        println!("{}", serde_json::to_string(&outcome)?);
    } else {
        print_table(&outcome);
    }
    match outcome {
        Outcome::Rows { .. } => Ok(()),
        other => anyhow::bail!("query did not return rows (outcome: {})", other.kind()),
    }
}

fn print_table(outcome: &Outcome) {
    match outcome {
        Outcome::Rows { columns, rows } => {
            println!("{}", columns.join("\t"));
            for row in rows {
                let cells: Vec<String> = row
                    .iter()
                    .map(|v| serde_json::to_string(v).unwrap_or_default())
                    .collect();
                println!("{}", cells.join("\t"));
            }
            eprintln!("({} rows)", rows.len());
        }
        other => println!(
            "{}",
            serde_json::to_string_pretty(other).unwrap_or_default()
        ),
    }
}

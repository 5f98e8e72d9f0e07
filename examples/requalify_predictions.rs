//! Applies the last step of `exspin generate`'s repairs (`exspin::prompt::requalify`) to a
//! predictions file recorded before that step existed: each query that fails to run and names a
//! column through the wrong table of its joins is rewritten until it runs. Greedy decoding is
//! deterministic, so this is what `exspin generate --repair N` now writes for the same answers.
//!
//! cargo run --release --example requalify_predictions -- SPIDER_DIR PRED.sql OUT.sql
//! (SPIDER_DIR holds dev.json and database/<db_id>/<db_id>.sqlite; one query per line of PRED.sql,
//! in dev.json's order.)

use std::io::Write;
use std::path::PathBuf;

use exspin::prompt::repair::failure;
use exspin::prompt::requalify::until_it_runs;
use exspin::schema::introspect::introspect;
use exspin::sql::executor::{ExecutorConfig, Sandbox};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [spider, predictions, out] = args.as_slice() else {
        return Err("usage: requalify_predictions SPIDER_DIR PRED.sql OUT.sql".into());
    };
    let spider = PathBuf::from(spider);
    let dev: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(spider.join("dev.json"))?)?;
    let lines: Vec<String> = std::fs::read_to_string(predictions)?
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect();
    if lines.len() != dev.len() {
        return Err(format!(
            "{predictions}: {} lines for {} questions",
            lines.len(),
            dev.len()
        )
        .into());
    }
    let config = ExecutorConfig::default();
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let (mut failing, mut requalified) = (0, 0);
    for (ex, sql) in dev.iter().zip(&lines) {
        let db_id = ex["db_id"]
            .as_str()
            .ok_or("dev.json: an example without db_id")?;
        let path = spider
            .join("database")
            .join(db_id)
            .join(format!("{db_id}.sqlite"));
        let sandbox = Sandbox::open(&path)?;
        let mut answer = sql.clone();
        if let Some(error) = failure(&sandbox, sql, &config) {
            failing += 1;
            let info = introspect(&path, None)?;
            if let Some(fixed) = until_it_runs(&sandbox, &info, sql, error, &config) {
                requalified += 1;
                answer = fixed;
            }
        }
        writeln!(file, "{answer}")?;
    }
    file.flush()?;
    eprintln!(
        "{} queries, {failing} failing, {requalified} of them requalified into {out}",
        lines.len()
    );
    Ok(())
}

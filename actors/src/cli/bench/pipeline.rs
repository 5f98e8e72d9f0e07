//! `exspin bench pipeline CONFIG`: streaming vs phased on the same job (see
//! `exspin_actors::bench::pipeline` for what is measured and the hidden-share formula).

use std::path::PathBuf;

use exspin_actors::bench::pipeline as pipeline_bench;
use exspin_actors::config::JobConfig;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: exspin bench pipeline configs/pipeline-fake.toml --json\n\n\
Busy time = time a stage spent working (prompt building, generation, SQL execution, training, \
checkpoints, dev evaluation), measured in the actors. The share of SQL execution hidden by overlap is\n  \
hidden = clamp(1 - max(0, wall - busy(all stages but execute)) / busy(execute), 0, 1)\n\
i.e. the wall time beyond the other stages' serial sum counts as exposed execution (a lower \
bound; a phased run scores about 0)."
)]
pub struct BenchPipelineArgs {
    /// The job config (TOML), the same as for `exspin run`. Its schedule is the streaming side
    /// (strict when it says phased); the other side is the same config with schedule = "phased".
    pub config: PathBuf,
    /// Runs of each side, alternating; each side keeps its fastest.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchPipelineArgs) -> anyhow::Result<()> {
    let (config, _) = JobConfig::load(&args.config)?;
    let b = pipeline_bench::bench(&config, args.repeat)?;
    if args.json {
        let mut v = serde_json::to_value(&b)?;
        v["config"] = serde_json::Value::String(args.config.display().to_string());
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for r in [&b.streaming, &b.phased] {
        println!(
            "{:<8} wall {:7.2} s  pairs/s {:7.1}  queries/s {:7.1}  exec hidden {}, overlapped {}",
            format!("{:?}", r.schedule).to_lowercase(),
            r.wall_s,
            r.pairs_per_s,
            r.queries_per_s,
            r.exec_hidden_share
                .map_or("n/a".into(), |h| format!("{:.0}%", h * 100.0)),
            r.exec_overlapped_share
                .map_or("n/a".into(), |h| format!("{:.0}%", h * 100.0))
        );
        let rate = |x: Option<f64>| x.map_or("n/a".into(), |x| format!("{x:.0}"));
        println!(
            "         tokens/s: generation {} ({} tokens), training {} ({} tokens)",
            rate(r.generated_tokens_per_s),
            r.generated_tokens,
            rate(r.trained_tokens_per_s),
            r.trained_tokens
        );
        let busy: Vec<String> = r
            .busy_s
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}s"))
            .collect();
        println!("         busy: {}", busy.join(", "));
    }
    println!(
        "streaming / phased wall = {:.3} (speedup {:.2}x); same pairs trained: {}",
        b.wall_ratio_streaming_over_phased, b.speedup, b.same_pairs
    );
    Ok(())
}

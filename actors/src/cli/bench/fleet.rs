//! `exspin bench fleet CONFIG --workers 1,2,4`: samples/s per worker count on loopback, the
//! scaling efficiency, and the head's ceiling (see `exspin_actors::bench::fleet`).

use std::path::PathBuf;

use exspin_actors::bench::fleet as fleet_bench;
use exspin_actors::config::JobConfig;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: exspin bench fleet configs/fleet-fake.toml --workers 1,2,4 --json\n\n\
Each worker is a child process hosting one opponent of the fake model (generation costs \
model.fake_generate_ms per prompt); the head runs in this process. scaling_efficiency[k] = \
samples_per_s[k] / (k * samples_per_s[1]); the head's ceiling is the same job with generation \
free."
)]
pub struct BenchFleetArgs {
    /// A job config with the fake model (e.g. configs/fleet-fake.toml).
    pub config: PathBuf,
    /// Worker counts to run, starting with 1.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub workers: Vec<usize>,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchFleetArgs) -> anyhow::Result<()> {
    let (config, _) = JobConfig::load(&args.config)?;
    let exe = std::env::current_exe()?;
    let b = fleet_bench::bench(&config, &args.workers, &exe)?;
    let mut v = serde_json::to_value(&b)?;
    v["config"] = serde_json::Value::String(args.config.display().to_string());
    if args.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

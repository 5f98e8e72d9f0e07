//! `exspin bench logprob`: the fused log-prob kernels against the plain candle composition,
//! forward and forward+backward, time and peak memory, in one process (exspin_kernels::bench), on
//! the CPU (default) or a CUDA device (`--device cuda`, binaries built with feature `cuda`).

use anyhow::Context as _;
use exspin_actors::config::{DeviceSpec, WeightDType};
use exspin_kernels::bench::{BenchConfig, BenchReport, ImplReport, Measure, run_bench};
use exspin_kernels::roofline::Roofline;
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin bench logprob --rows 4096 --vocab 151936 --json\n  \
exspin bench logprob --rows 1024 --vocab 151936 --hidden 896 --fused-only --json\n  \
exspin bench logprob --rows 4096 --vocab 151936 --device cuda --json"
)]
pub struct BenchLogprobArgs {
    /// Tokens (rows of the logits).
    #[arg(long, default_value_t = 4096)]
    pub rows: usize,
    /// Vocabulary size (Qwen2.5: 151936).
    #[arg(long, default_value_t = 151_936)]
    pub vocab: usize,
    /// Benchmark the fused linear op instead: hidden [rows, H] and weight [vocab, H].
    #[arg(long, value_name = "H")]
    pub hidden: Option<usize>,
    /// Rows per chunk of the fused linear op.
    #[arg(long, default_value_t = exspin_kernels::DEFAULT_CHUNK_ROWS)]
    pub chunk_rows: usize,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Timed repetitions of each measurement; the median time is reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Skip the composition (its [rows, vocab] tensors may not fit in memory).
    #[arg(long)]
    pub fused_only: bool,
    /// Run only the composition's forward (its backward holds ~9 [rows, vocab] f32 tensors:
    /// ~22 GB at 4096 x 151936).
    #[arg(long, conflicts_with = "fused_only")]
    pub composition_forward_only: bool,
    /// Print one JSON object on stdout (otherwise a short table).
    #[arg(long)]
    pub json: bool,
    /// cpu, cuda or cuda:N (needs a build with `--features cuda`). On CUDA, peak memory is the
    /// memory pool's high watermark and the report adds the fused forward's roofline (token op
    /// only).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// The logits' dtype: f32 only (the fused log-prob ops read f32 logits; bf16 models upcast
    /// their logits before them). Accepted for symmetry with the other commands.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: WeightDType,
}

pub fn run(args: BenchLogprobArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.dtype == WeightDType::F32,
        "--dtype {:?}: the log-prob kernels read f32 logits; use --dtype f32",
        args.dtype
    );
    let cfg = BenchConfig {
        rows: args.rows,
        vocab: args.vocab,
        hidden: args.hidden,
        chunk_rows: args.chunk_rows,
        reps: args.reps,
        fused_only: args.fused_only,
        composition_forward_only: args.composition_forward_only,
        device: args.device.open("--device")?,
    };
    let report = run_bench(&cfg, args.threads).context("running the log-prob benchmark")?;
    if args.json {
        println!("{}", to_json(&report));
    } else {
        print_table(&report);
    }
    Ok(())
}

fn measure(m: &Measure) -> Value {
    json!({ "seconds": m.seconds, "peak_bytes": m.peak_bytes, "peak_rss_bytes": m.peak_rss_bytes })
}

fn implementation(r: &ImplReport) -> Value {
    json!({
        "forward": measure(&r.forward),
        "forward_backward": r.forward_backward.as_ref().map(measure),
    })
}

fn roofline(r: &Roofline) -> Value {
    json!({
        "bytes": r.bytes,
        "fused_forward_seconds": r.fused_forward_seconds,
        "copy_seconds": r.copy_seconds,
        "fused_bytes_per_second": r.fused_bytes_per_second,
        "copy_bytes_per_second": r.copy_bytes_per_second,
        "ratio": r.ratio,
        "note": "fused: N*V*dtype bytes read once / time; copy: device-to-device copy of the same \
                 bytes, counted as read + write (2*bytes / time)",
    })
}

fn to_json(r: &BenchReport) -> Value {
    let mut v = base_json(r);
    // CPU output stays exactly as before; the CUDA keys are added only on CUDA.
    if r.config.device.is_cuda() {
        v["device"] = json!("cuda:0");
        v["peak_source"] = json!(r.peak_source);
        v["roofline"] = r.roofline.as_ref().map_or(Value::Null, roofline);
    }
    v
}

fn base_json(r: &BenchReport) -> Value {
    let c = &r.config;
    json!({
        "op": if c.hidden.is_some() { "linear_token_logprobs" } else { "token_logprobs" },
        "rows": c.rows,
        "vocab": c.vocab,
        "hidden": c.hidden,
        "chunk_rows": c.hidden.map(|_| c.chunk_rows),
        "threads": r.threads,
        "reps": c.reps,
        "peak_measured": r.peak_measured,
        "fused": implementation(&r.fused),
        "composition": r.composition.as_ref().map(implementation),
        "max_abs_diff_forward": r.max_abs_diff,
        "ratios_composition_over_fused": r.ratios().map(|[tf, tfb, mf, mfb, mfbr]| json!({
            "forward_time": tf,
            "forward_backward_time": tfb,
            "forward_peak": mf,
            "forward_backward_peak": mfb,
            "forward_backward_peak_rss": mfbr,
        })),
    })
}

fn print_table(r: &BenchReport) {
    let mb = |b: usize| b as f64 / (1024.0 * 1024.0);
    let show = |m: &Option<Measure>| match m {
        Some(m) => format!("{:>8.3} s {:>9.1} MiB", m.seconds, mb(m.peak_bytes)),
        None => "not run".to_string(),
    };
    let row = |name: &str, i: &ImplReport| {
        println!(
            "{name:<12} fwd {}   fwd+bwd {}",
            show(&Some(i.forward)),
            show(&i.forward_backward)
        )
    };
    row("fused", &r.fused);
    if let Some(c) = &r.composition {
        row("composition", c);
    }
    if let Some(rf) = &r.roofline {
        println!(
            "roofline: fused fwd {:.1} GB/s, device copy {:.1} GB/s, ratio {:.2}",
            rf.fused_bytes_per_second / 1e9,
            rf.copy_bytes_per_second / 1e9,
            rf.ratio
        );
    }
    if let Some(ratios) = r.ratios() {
        let names = [
            "fwd time",
            "fwd+bwd time",
            "fwd peak",
            "fwd+bwd peak",
            "fwd+bwd RSS",
        ];
        for (name, x) in names.iter().zip(ratios) {
            if let Some(x) = x {
                println!("composition/fused {name}: {x:.2}x");
            }
        }
    }
}

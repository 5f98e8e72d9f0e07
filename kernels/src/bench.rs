//! Fused vs composition, forward and forward+backward, interleaved in one process so both see the
//! same machine state. Peak memory comes from [`crate::alloc`] and is reported as bytes above what
//! was live before the measured call (the inputs are excluded; the returned gradient is included).

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::{alloc, reference};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub rows: usize,
    pub vocab: usize,
    /// `Some(H)`: the fused linear op (hidden [rows, H], weight [vocab, H]); `None`: token log-prob
    /// from logits [rows, vocab].
    pub hidden: Option<usize>,
    /// Rows per chunk of the fused linear op.
    pub chunk_rows: usize,
    /// Timed repetitions of each of the four measurements (the median is reported).
    pub reps: usize,
    /// Skip the composition (when its [rows, vocab] tensors would not fit).
    pub fused_only: bool,
}

/// Median time and peak extra bytes of one measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measure {
    pub seconds: f64,
    pub peak_bytes: usize,
}

/// Forward and forward+backward of one implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImplReport {
    pub forward: Measure,
    pub forward_backward: Measure,
}

/// Both implementations, plus the largest |difference| between their forward outputs as a sanity
/// check that the two computed the same thing.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub config: BenchConfig,
    pub threads: usize,
    pub fused: ImplReport,
    pub composition: Option<ImplReport>,
    pub max_abs_diff: Option<f32>,
    pub peak_measured: bool,
}

impl BenchReport {
    /// composition / fused, for time and for peak memory (> 1 means the fused op wins).
    pub fn ratios(&self) -> Option<[f64; 4]> {
        let c = self.composition?;
        let f = self.fused;
        let r = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        Some([
            r(c.forward.seconds, f.forward.seconds),
            r(c.forward_backward.seconds, f.forward_backward.seconds),
            r(c.forward.peak_bytes as f64, f.forward.peak_bytes as f64),
            r(c.forward_backward.peak_bytes as f64, f.forward_backward.peak_bytes as f64),
        ])
    }
}

/// Random inputs on the CPU: logits (or hidden + weight) and targets, with 1 row in 16 masked so
/// the masked path is part of what is timed.
struct Inputs {
    params: Vec<Var>,
    targets: Tensor,
    mask: Tensor,
}

fn inputs(cfg: &BenchConfig) -> Result<Inputs> {
    let dev = Device::Cpu;
    let params = match cfg.hidden {
        None => vec![Var::from_tensor(&Tensor::randn(0f32, 2.0, (cfg.rows, cfg.vocab), &dev)?)?],
        Some(h) => vec![
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (cfg.rows, h), &dev)?)?,
            Var::from_tensor(&Tensor::randn(0f32, 0.05, (cfg.vocab, h), &dev)?)?,
        ],
    };
    let targets = (Tensor::rand(0f32, 1.0, cfg.rows, &dev)? * (cfg.vocab as f64 - 1.0))?
        .floor()?
        .to_dtype(DType::U32)?;
    let mask: Vec<u8> = (0..cfg.rows).map(|i| u8::from(i % 16 != 15)).collect();
    let mask = Tensor::from_vec(mask, cfg.rows, &dev)?;
    Ok(Inputs { params, targets, mask })
}

fn run(cfg: &BenchConfig, x: &Inputs, fused: bool) -> Result<Tensor> {
    let p: Vec<&Tensor> = x.params.iter().map(|v| v.as_tensor()).collect();
    let m = Some(&x.mask);
    match (cfg.hidden.is_some(), fused) {
        (false, true) => crate::token_logprobs(p[0], &x.targets, m),
        (false, false) => reference::token_logprobs(p[0], &x.targets, m),
        (true, true) => crate::linear_token_logprobs(p[0], p[1], &x.targets, m, cfg.chunk_rows),
        (true, false) => reference::linear_token_logprobs(p[0], p[1], &x.targets, m),
    }
}

/// One timed call; `backward` adds `sum().backward()` and keeps the gradients alive until the
/// clock stops, as a trainer would.
fn once(cfg: &BenchConfig, x: &Inputs, fused: bool, backward: bool) -> Result<(Measure, Tensor)> {
    alloc::reset_peak();
    let base = alloc::current_bytes();
    let t0 = Instant::now();
    let out = run(cfg, x, fused)?;
    let grads = if backward { Some(out.sum_all()?.backward()?) } else { None };
    let seconds = t0.elapsed().as_secs_f64();
    let peak_bytes = alloc::peak_bytes().saturating_sub(base);
    drop(grads);
    Ok((Measure { seconds, peak_bytes }, out.detach()))
}

fn median(mut ms: Vec<Measure>) -> Measure {
    ms.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let peak = ms.iter().map(|m| m.peak_bytes).max().unwrap_or(0);
    Measure { seconds: ms[ms.len() / 2].seconds, peak_bytes: peak }
}

/// Runs the benchmark on `threads` rayon threads (None: rayon's default).
pub fn run_bench(cfg: &BenchConfig, threads: Option<usize>) -> Result<BenchReport> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        builder = builder.num_threads(t);
    }
    let pool = builder.build().map_err(candle_core::Error::wrap)?;
    pool.install(|| bench_in_pool(cfg, pool.current_num_threads()))
}

fn bench_in_pool(cfg: &BenchConfig, threads: usize) -> Result<BenchReport> {
    let x = inputs(cfg)?;
    let reps = cfg.reps.max(1);
    let mut f = [Vec::new(), Vec::new()];
    let mut c = [Vec::new(), Vec::new()];
    let mut diff = None;
    for _ in 0..reps {
        // Interleaved: each repetition runs all four, so drift in machine load hits both sides.
        for (k, backward) in [false, true].into_iter().enumerate() {
            let (m, fused_out) = once(cfg, &x, true, backward)?;
            f[k].push(m);
            if !cfg.fused_only {
                let (m, comp_out) = once(cfg, &x, false, backward)?;
                c[k].push(m);
                let d = (fused_out - comp_out)?.abs()?.max_all()?.to_scalar::<f32>()?;
                diff = Some(diff.map_or(d, |old: f32| old.max(d)));
            }
        }
    }
    let [f0, f1] = f;
    let [c0, c1] = c;
    Ok(BenchReport {
        config: cfg.clone(),
        threads,
        fused: ImplReport { forward: median(f0), forward_backward: median(f1) },
        composition: (!cfg.fused_only)
            .then(|| ImplReport { forward: median(c0), forward_backward: median(c1) }),
        max_abs_diff: diff,
        peak_measured: alloc::is_installed(),
    })
}

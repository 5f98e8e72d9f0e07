//! Fused vs composition, forward and forward+backward, interleaved in one process so both see the
//! same machine state, on the CPU or a CUDA device. Peak memory is reported as bytes above what was
//! live before the measured call (the inputs are excluded; the returned gradient is included): on
//! the CPU from [`crate::alloc`], on CUDA from the memory pool's high watermark (see `devmem.rs`).
//! On CUDA the device is synchronized before the clock starts and before it is read, and one
//! untimed warm-up pass loads the kernels first; the report adds the fused forward's roofline.

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::devmem::Bracket;
use crate::roofline::{self, Roofline};
use crate::{devmem, reference};

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
    /// Run the composition's forward only (its backward holds ~9 [rows, vocab] tensors: at
    /// 4,096 × 151,936 that is ~22 GB).
    pub composition_forward_only: bool,
    /// Where inputs live and everything runs.
    pub device: Device,
}

/// Median time and peak extra bytes of one measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measure {
    pub seconds: f64,
    /// Heap bytes requested above the baseline (counting allocator): includes calloc'd buffers
    /// never written, such as the zeros candle's autograd allocates to accumulate each gradient.
    pub peak_bytes: usize,
    /// Resident-set growth above the baseline (Linux `VmHWM` after `clear_refs`), when available:
    /// what the machine actually had to hold.
    pub peak_rss_bytes: Option<usize>,
}

/// Forward and forward+backward of one implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImplReport {
    pub forward: Measure,
    /// None when not run (see [`BenchConfig::composition_forward_only`]).
    pub forward_backward: Option<Measure>,
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
    /// What the peak-memory figures count.
    pub peak_source: &'static str,
    /// CUDA token op only: the fused forward's bandwidth against a device copy.
    pub roofline: Option<Roofline>,
}

impl BenchReport {
    /// composition / fused (> 1 means the fused op wins): forward time, forward+backward time,
    /// forward peak, forward+backward peak, forward+backward peak RSS; None where not measured.
    pub fn ratios(&self) -> Option<[Option<f64>; 5]> {
        let c = self.composition?;
        let f = self.fused;
        let r = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        let fb = c.forward_backward.zip(f.forward_backward);
        Some([
            r(c.forward.seconds, f.forward.seconds),
            fb.and_then(|(c, f)| r(c.seconds, f.seconds)),
            r(c.forward.peak_bytes as f64, f.forward.peak_bytes as f64),
            fb.and_then(|(c, f)| r(c.peak_bytes as f64, f.peak_bytes as f64)),
            fb.and_then(|(c, f)| r(c.peak_rss_bytes? as f64, f.peak_rss_bytes? as f64)),
        ])
    }
}

/// Random inputs on the benchmark's device: logits (or hidden + weight) and targets, with 1 row in 16 masked so
/// the masked path is part of what is timed.
struct Inputs {
    params: Vec<Var>,
    targets: Tensor,
    mask: Tensor,
}

fn inputs(cfg: &BenchConfig) -> Result<Inputs> {
    let dev = &cfg.device;
    let params = match cfg.hidden {
        None => vec![Var::from_tensor(&Tensor::randn(
            0f32,
            2.0,
            (cfg.rows, cfg.vocab),
            dev,
        )?)?],
        Some(h) => vec![
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (cfg.rows, h), dev)?)?,
            Var::from_tensor(&Tensor::randn(0f32, 0.05, (cfg.vocab, h), dev)?)?,
        ],
    };
    let targets = (Tensor::rand(0f32, 1.0, cfg.rows, dev)? * (cfg.vocab as f64 - 1.0))?
        .floor()?
        .to_dtype(DType::U32)?;
    let mask: Vec<u8> = (0..cfg.rows).map(|i| u8::from(i % 16 != 15)).collect();
    let mask = Tensor::from_vec(mask, cfg.rows, dev)?;
    Ok(Inputs {
        params,
        targets,
        mask,
    })
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
/// clock stops, as a trainer would. The device is idle when the clock starts and when it is read
/// (a no-op on the CPU; on CUDA, launches return before the work is done).
fn once(cfg: &BenchConfig, x: &Inputs, fused: bool, backward: bool) -> Result<(Measure, Tensor)> {
    let dev = &cfg.device;
    dev.synchronize()?;
    let bracket = Bracket::start(dev);
    let t0 = Instant::now();
    let out = run(cfg, x, fused)?;
    let grads = if backward {
        Some(out.sum_all()?.backward()?)
    } else {
        None
    };
    dev.synchronize()?;
    let seconds = t0.elapsed().as_secs_f64();
    let peak = bracket.finish();
    drop(grads);
    Ok((
        Measure {
            seconds,
            peak_bytes: peak.bytes.unwrap_or(0),
            peak_rss_bytes: peak.rss_bytes,
        },
        out.detach(),
    ))
}

fn median(mut ms: Vec<Measure>) -> Option<Measure> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let peak_bytes = ms.iter().map(|m| m.peak_bytes).max().unwrap_or(0);
    let peak_rss_bytes = ms.iter().map(|m| m.peak_rss_bytes).max().flatten();
    Some(Measure {
        seconds: ms[ms.len() / 2].seconds,
        peak_bytes,
        peak_rss_bytes,
    })
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
    if cfg.device.is_cuda() {
        // Untimed: NVRTC compiles our kernels and the driver loads candle's on first use.
        once(cfg, &x, true, true)?;
        if !cfg.fused_only {
            once(cfg, &x, false, !cfg.composition_forward_only)?;
        }
    }
    let mut f = [Vec::new(), Vec::new()];
    let mut c = [Vec::new(), Vec::new()];
    let mut diff = None;
    for _ in 0..reps {
        // Interleaved: each repetition runs all four, so drift in machine load hits both sides.
        for (k, backward) in [false, true].into_iter().enumerate() {
            let (m, fused_out) = once(cfg, &x, true, backward)?;
            f[k].push(m);
            let skip = cfg.fused_only || (backward && cfg.composition_forward_only);
            if !skip {
                let (m, comp_out) = once(cfg, &x, false, backward)?;
                c[k].push(m);
                let d = (fused_out - comp_out)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                diff = Some(diff.map_or(d, |old: f32| old.max(d)));
            }
        }
    }
    let [f0, f1] = f;
    let [c0, c1] = c;
    Ok(BenchReport {
        config: cfg.clone(),
        threads,
        fused: ImplReport {
            forward: median(f0).unwrap_or_default(),
            forward_backward: median(f1),
        },
        composition: median(c0).map(|forward| ImplReport {
            forward,
            forward_backward: median(c1),
        }),
        max_abs_diff: diff,
        peak_measured: devmem::is_measured(&cfg.device),
        peak_source: devmem::source(&cfg.device),
        roofline: match cfg.hidden {
            None => roofline::measure(x.params[0].as_tensor(), &x.targets, ROOFLINE_REPS)?,
            Some(_) => None,
        },
    })
}

/// Back-to-back calls averaged for the roofline (each is a few milliseconds at 4096 × 151,936).
const ROOFLINE_REPS: usize = 20;

//! The fused ops against a float64 reference (forward) and against candle autograd of the plain
//! composition `log_softmax → gather` (gradients), on fresh random inputs every run.
//!
//! Every body takes a `&Device`; `test_device!` runs it on the CPU and, with feature `cuda`, on
//! GPU 0 when one is present (skipped with a note otherwise).

use candle_core::{DType, Device, Result, Tensor, Var};
use exspin_kernels::{
    IGNORE, linear_sequence_logprobs, linear_token_logprobs, reference, sequence_log_ratios,
    sequence_logprobs, token_logprobs,
};

macro_rules! test_device {
    ($body:ident, $cpu:ident, $cuda:ident) => {
        #[test]
        fn $cpu() -> Result<()> {
            $body(&Device::Cpu)
        }

        #[cfg(feature = "cuda")]
        #[test]
        fn $cuda() -> Result<()> {
            match Device::new_cuda(0) {
                Ok(dev) => $body(&dev),
                Err(e) => {
                    eprintln!("skipped {}: no CUDA device ({e})", stringify!($cuda));
                    Ok(())
                }
            }
        }
    };
}

/// Forward tolerance against float64 (the bar).
const FWD_TOL: f64 = 1e-4;
/// Gradient tolerance against candle autograd of the composition.
const GRAD_TOL: f32 = 1e-5;

fn host(t: &Tensor) -> Result<Vec<f32>> {
    t.to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()
}

/// Uniform random targets in [0, v).
fn random_targets(n: usize, v: usize) -> Result<Vec<u32>> {
    let r = Tensor::rand(0f32, 1.0, n, &Device::Cpu)?.to_vec1::<f32>()?;
    Ok(r.iter()
        .map(|&x| ((x * v as f32) as u32).min(v as u32 - 1))
        .collect())
}

/// Random keep/skip pattern with at least one of each when n ≥ 2.
fn random_mask(n: usize) -> Result<Vec<u8>> {
    let r = Tensor::rand(0f32, 1.0, n, &Device::Cpu)?.to_vec1::<f32>()?;
    let mut m: Vec<u8> = r.iter().map(|&x| u8::from(x > 0.3)).collect();
    if n >= 2 {
        m[0] = 1;
        m[n - 1] = 0;
    }
    Ok(m)
}

/// float64 log p(target) per row; `None` rows are skipped (0).
fn reference_f64(x: &[f32], v: usize, targets: &[Option<u32>]) -> Vec<f64> {
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let Some(t) = t else { return 0.0 };
            let row = &x[i * v..(i + 1) * v];
            let m = row.iter().fold(f64::NEG_INFINITY, |m, &a| m.max(a as f64));
            let s: f64 = row.iter().map(|&a| (a as f64 - m).exp()).sum();
            row[*t as usize] as f64 - m - s.ln()
        })
        .collect()
}

/// d(Σ_i w_i · log p_i)/d logits in f64: `w_i · (onehot − softmax)` on kept rows, 0 elsewhere.
fn grad_reference_f64(x: &[f32], v: usize, targets: &[Option<u32>], w: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (i, t) in targets.iter().enumerate() {
        let Some(t) = t else { continue };
        let row = &x[i * v..(i + 1) * v];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &a| m.max(a as f64));
        let s: f64 = row.iter().map(|&a| (a as f64 - m).exp()).sum();
        for (j, &a) in row.iter().enumerate() {
            let onehot = if j == *t as usize { 1.0 } else { 0.0 };
            out[i * v + j] = (w[i] as f64 * (onehot - (a as f64 - m).exp() / s)) as f32;
        }
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Checks forward (vs f64) and gradient (vs autograd of the composition) for given logits, with
/// random per-row upstream gradients so rows are weighted differently, and a random mask plus one
/// IGNORE target.
fn check_token(dev: &Device, logits: Tensor) -> Result<()> {
    let (n, v) = logits.dims2()?;
    let mut targets = random_targets(n, v)?;
    let mask = random_mask(n)?;
    if n >= 3 {
        targets[1] = IGNORE;
    }
    let kept: Vec<Option<u32>> = targets
        .iter()
        .zip(&mask)
        .map(|(&t, &m)| (m == 1 && t != IGNORE).then_some(t))
        .collect();
    let t = Tensor::from_vec(targets.clone(), n, dev)?;
    let m = Tensor::from_vec(mask.clone(), n, dev)?;

    let x = Var::from_tensor(&logits)?;
    let lp = token_logprobs(x.as_tensor(), &t, Some(&m))?;
    assert_eq!(lp.dims(), [n]);
    // Callers matmul it (a masked sum); candle's CUDA matmul refuses strided operands.
    assert!(lp.is_contiguous());
    assert_eq!(lp.dtype(), DType::F32);
    let got = host(&lp)?;
    let want = reference_f64(&host(&logits)?, v, &kept);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        // 1e-4, plus the rounding of the result itself to f32: a log-prob near -1e4 (a row spread
        // over ±1e4) is only representable to ~5e-4.
        let tol = FWD_TOL + 2.0 * w.abs() * f32::EPSILON as f64;
        assert!(
            (*g as f64 - w).abs() <= tol,
            "row {i}: fused {g} vs f64 {w} (V = {v})"
        );
        if kept[i].is_none() {
            assert_eq!(*g, 0.0, "skipped row {i} must give 0");
        }
    }

    let w = Tensor::randn(0f32, 1.0, n, dev)?;
    let grads = (lp * &w)?.sum_all()?.backward()?;
    let fused = host(
        grads
            .get(x.as_tensor())
            .expect("fused op gives a logits gradient"),
    )?;

    let y = Var::from_tensor(&logits)?;
    let lp_ref = reference::token_logprobs(y.as_tensor(), &t, Some(&m))?;
    let grads_ref = (lp_ref * &w)?.sum_all()?.backward()?;
    let composed = host(
        grads_ref
            .get(y.as_tensor())
            .expect("composition gives a gradient"),
    )?;
    // Against an f64 reference the fused gradient must be within GRAD_TOL. Against f32 autograd
    // of the composition, within GRAD_TOL plus autograd's own error: over 151,936 columns that
    // error alone can exceed 1e-5, and a test must not fail on the reference's rounding.
    let exact = grad_reference_f64(&host(&logits)?, v, &kept, &host(&w)?);
    let fused_err = max_abs_diff(&fused, &exact);
    let autograd_err = max_abs_diff(&composed, &exact);
    assert!(
        fused_err <= GRAD_TOL,
        "gradient differs from the f64 reference by {fused_err} (V = {v})"
    );
    let diff = max_abs_diff(&fused, &composed);
    assert!(
        diff <= GRAD_TOL + autograd_err,
        "gradient differs from autograd by {diff}, autograd from f64 by {autograd_err} (V = {v})"
    );
    for (i, k) in kept.iter().enumerate() {
        if k.is_none() {
            assert!(
                fused[i * v..(i + 1) * v].iter().all(|&g| g == 0.0),
                "row {i} must get 0 grad"
            );
        }
    }
    Ok(())
}

fn random_logits(dev: &Device) -> Result<()> {
    // Widths below, at, and across the CPU block (2048), the SIMD width (8) and the CUDA block
    // (256 threads), N odd; 257 rows is one more than a CUDA block's thread count.
    for (n, v) in [(37, 1000), (5, 2053), (13, 4096), (3, 7), (257, 300)] {
        check_token(dev, Tensor::randn(0f32, 3.0, (n, v), dev)?)?;
    }
    Ok(())
}
test_device!(random_logits, random_logits_cpu, random_logits_cuda);

fn huge_logits(dev: &Device) -> Result<()> {
    // Rows spread over ±1e4, and rows clustered near +1e4 and near −1e4 (a non-degenerate softmax
    // where x − max must be formed before anything is rounded at magnitude 1e4).
    let (n, v) = (9, 3001);
    let spread = (Tensor::rand(-1f32, 1.0, (3, v), dev)? * 1e4)?;
    let high = (Tensor::randn(0f32, 2.0, (3, v), dev)? + 1e4)?;
    let low = (Tensor::randn(0f32, 2.0, (3, v), dev)? - 1e4)?;
    let logits = Tensor::cat(&[spread, high, low], 0)?;
    assert_eq!(logits.dims(), [n, v]);
    check_token(dev, logits)
}
test_device!(huge_logits, huge_logits_cpu, huge_logits_cuda);

fn qwen_vocab(dev: &Device) -> Result<()> {
    check_token(dev, Tensor::randn(0f32, 4.0, (5, 151_936), dev)?)
}
test_device!(qwen_vocab, qwen_vocab_cpu, qwen_vocab_cuda);

fn fully_masked(dev: &Device) -> Result<()> {
    let (n, v) = (6, 513);
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, v), dev)?)?;
    let t = Tensor::from_vec(random_targets(n, v)?, n, dev)?;
    let m = Tensor::zeros(n, DType::F32, dev)?;
    let lp = token_logprobs(x.as_tensor(), &t, Some(&m))?;
    assert!(host(&lp)?.iter().all(|&a| a == 0.0));
    let g = lp.sum_all()?.backward()?;
    assert!(
        host(g.get(x.as_tensor()).unwrap())?
            .iter()
            .all(|&a| a == 0.0)
    );
    // All targets IGNORE, no mask: the same.
    let t = Tensor::full(IGNORE, n, dev)?;
    assert!(
        host(&token_logprobs(x.as_tensor(), &t, None)?)?
            .iter()
            .all(|&a| a == 0.0)
    );
    Ok(())
}
test_device!(fully_masked, fully_masked_cpu, fully_masked_cuda);

fn bf16_logits(dev: &Device) -> Result<()> {
    let (n, v) = (11, 3000);
    let x32 = Tensor::randn(0f32, 3.0, (n, v), dev)?;
    let x16 = x32.to_dtype(DType::BF16)?;
    let targets = random_targets(n, v)?;
    let t = Tensor::from_vec(targets.clone(), n, dev)?;
    let x = Var::from_tensor(&x16)?;
    let lp = token_logprobs(x.as_tensor(), &t, None)?;
    // Forward: exact to f32 on the bf16 values.
    let kept: Vec<Option<u32>> = targets.iter().map(|&t| Some(t)).collect();
    let want = reference_f64(&host(&x16)?, v, &kept);
    for (g, w) in host(&lp)?.iter().zip(&want) {
        assert!((*g as f64 - w).abs() <= FWD_TOL, "bf16 forward {g} vs {w}");
    }
    // Gradient: in bf16, so within bf16 rounding of the f32 gradient of the same values.
    let g = lp.sum_all()?.backward()?;
    let got = g.get(x.as_tensor()).unwrap();
    assert_eq!(got.dtype(), DType::BF16);
    let y = Var::from_tensor(&x16.to_dtype(DType::F32)?)?;
    let gy = reference::token_logprobs(y.as_tensor(), &t, None)?
        .sum_all()?
        .backward()?;
    let diff = max_abs_diff(&host(got)?, &host(gy.get(y.as_tensor()).unwrap())?);
    assert!(diff <= 4e-3, "bf16 gradient off by {diff}");
    Ok(())
}
test_device!(bf16_logits, bf16_logits_cpu, bf16_logits_cuda);

/// Linear op vs the composition (matmul → log_softmax → gather): forward vs f64, gradients of
/// hidden and weight vs autograd. V spans several backward vocabulary blocks and N several chunks.
fn linear(dev: &Device) -> Result<()> {
    let (n, h, v, chunk) = (41, 16, 35_000, 16);
    let hidden = Tensor::randn(0f32, 1.0, (n, h), dev)?;
    let weight = Tensor::randn(0f32, 0.5, (v, h), dev)?;
    let mut targets = random_targets(n, v)?;
    targets[2] = IGNORE;
    let mask = random_mask(n)?;
    let t = Tensor::from_vec(targets.clone(), n, dev)?;
    let m = Tensor::from_vec(mask.clone(), n, dev)?;
    let w_up = Tensor::randn(0f32, 1.0, n, dev)?;

    let (hv, wv) = (Var::from_tensor(&hidden)?, Var::from_tensor(&weight)?);
    let lp = linear_token_logprobs(hv.as_tensor(), wv.as_tensor(), &t, Some(&m), chunk)?;
    assert!(lp.is_contiguous());

    // f64 forward reference from f64 logits.
    let (hh, wh) = (host(&hidden)?, host(&weight)?);
    for (i, got) in host(&lp)?.iter().enumerate() {
        if mask[i] == 0 || targets[i] == IGNORE {
            assert_eq!(*got, 0.0);
            continue;
        }
        let logit = |j: usize| -> f64 {
            (0..h)
                .map(|k| hh[i * h + k] as f64 * wh[j * h + k] as f64)
                .sum()
        };
        let row: Vec<f64> = (0..v).map(logit).collect();
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + row.iter().map(|&a| (a - mx).exp()).sum::<f64>().ln();
        let want = row[targets[i] as usize] - lse;
        // The f32 matmul itself is ~1e-6 relative off the f64 logits; the tolerance is the issue's.
        assert!(
            (*got as f64 - want).abs() <= FWD_TOL,
            "row {i}: {got} vs {want}"
        );
    }

    let g = (lp * &w_up)?.sum_all()?.backward()?;
    let (gh, gw) = (
        host(g.get(hv.as_tensor()).unwrap())?,
        host(g.get(wv.as_tensor()).unwrap())?,
    );

    let (hr, wr) = (Var::from_tensor(&hidden)?, Var::from_tensor(&weight)?);
    let lr = reference::linear_token_logprobs(hr.as_tensor(), wr.as_tensor(), &t, Some(&m))?;
    let gr = (lr * &w_up)?.sum_all()?.backward()?;
    let (ah, aw) = (
        host(gr.get(hr.as_tensor()).unwrap())?,
        host(gr.get(wr.as_tensor()).unwrap())?,
    );
    // f64 reference gradients: c_ij = w_i (onehot − softmax) on kept rows; dh = c·W, dW = cᵀ·H.
    let up = host(&w_up)?;
    let (mut eh, mut ew) = (vec![0f64; n * h], vec![0f64; v * h]);
    for i in 0..n {
        if mask[i] == 0 || targets[i] == IGNORE {
            continue;
        }
        let row: Vec<f64> = (0..v)
            .map(|j| {
                (0..h)
                    .map(|k| hh[i * h + k] as f64 * wh[j * h + k] as f64)
                    .sum()
            })
            .collect();
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|&a| (a - mx).exp()).sum();
        for (j, &a) in row.iter().enumerate() {
            let onehot = if j == targets[i] as usize { 1.0 } else { 0.0 };
            let c = up[i] as f64 * (onehot - (a - mx).exp() / s);
            for k in 0..h {
                eh[i * h + k] += c * wh[j * h + k] as f64;
                ew[j * h + k] += c * hh[i * h + k] as f64;
            }
        }
    }
    let (eh, ew): (Vec<f32>, Vec<f32>) = (
        eh.iter().map(|&x| x as f32).collect(),
        ew.iter().map(|&x| x as f32).collect(),
    );
    // Within GRAD_TOL of the f64 reference; within GRAD_TOL plus autograd's own f32 error of
    // autograd (its sums over 35,000 columns can be off by more than 1e-5 themselves).
    for (name, fused, auto, exact) in [("hidden", &gh, &ah, &eh), ("weight", &gw, &aw, &ew)] {
        let fused_err = max_abs_diff(fused, exact);
        let auto_err = max_abs_diff(auto, exact);
        assert!(
            fused_err <= GRAD_TOL,
            "{name} gradient off the f64 reference by {fused_err}"
        );
        let diff = max_abs_diff(fused, auto);
        assert!(
            diff <= GRAD_TOL + auto_err,
            "{name} gradient off autograd by {diff} (autograd off f64 by {auto_err})"
        );
    }
    Ok(())
}
test_device!(linear, linear_cpu, linear_cuda);

fn sequences(dev: &Device) -> Result<()> {
    let (b, t, v, h) = (3, 7, 300, 8);
    let logits = Tensor::randn(0f32, 2.0, (b, t, v), dev)?;
    let targets = Tensor::from_vec(random_targets(b * t, v)?, (b, t), dev)?;
    let mask = Tensor::from_vec(random_mask(b * t)?, (b, t), dev)?;
    let seq = sequence_logprobs(&logits, &targets, Some(&mask))?;
    let rows = reference::token_logprobs(
        &logits.reshape((b * t, v))?,
        &targets.flatten_all()?,
        Some(&mask.flatten_all()?),
    )?;
    let want = rows.reshape((b, t))?.sum(1)?;
    assert!(max_abs_diff(&host(&seq)?, &host(&want)?) <= 1e-4);

    let reference_lp = Tensor::randn(0f32, 1.0, b, dev)?;
    let ratio = sequence_log_ratios(&logits, &targets, Some(&mask), &reference_lp)?;
    assert!(max_abs_diff(&host(&ratio)?, &host(&(want - &reference_lp)?)?) <= 1e-4);

    let hidden = Tensor::randn(0f32, 1.0, (b, t, h), dev)?;
    let weight = Tensor::randn(0f32, 0.3, (v, h), dev)?;
    let lin = linear_sequence_logprobs(&hidden, &weight, &targets, Some(&mask), 4)?;
    let logits = hidden
        .reshape((b * t, h))?
        .matmul(&weight.t()?)?
        .reshape((b, t, v))?;
    let want = sequence_logprobs(&logits, &targets, Some(&mask))?;
    assert!(max_abs_diff(&host(&lin)?, &host(&want)?) <= 1e-4);
    Ok(())
}
test_device!(sequences, sequences_cpu, sequences_cuda);

#[test]
fn out_of_range_target_is_an_error() -> Result<()> {
    let x = Tensor::randn(0f32, 1.0, (2, 10), &Device::Cpu)?;
    let t = Tensor::from_vec(vec![3u32, 10], 2, &Device::Cpu)?;
    let err = token_logprobs(&x, &t, None).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
    Ok(())
}

//! Vectorizable `exp` and row reductions for the CPU path.
//!
//! `f32::exp` calls libm one element at a time, which leaves AVX2 idle; with ~150k exponentials per
//! row this is the whole cost of a log-prob. The polynomial below (Cephes `expf`, ~1 ulp on the
//! reduced range) is plain arithmetic and bit twiddling on `f32`/`u32`, so LLVM turns loops over
//! fixed-width lane arrays into SIMD code. Inputs here are always `x - max ≤ 0`, so only underflow
//! needs care: below -87 the result is clamped to ~1.6e-38 instead of 0, which is immaterial for a
//! sum of at least one term equal to 1 and below any gradient tolerance.

/// Lane count of the accumulators: one AVX2 register of f32 (two on SSE); LLVM vectorizes the
/// fixed-size arrays.
pub(crate) const LANES: usize = 8;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2^23: adding it rounds to an integer and leaves that integer in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// e^x for x ≤ 0 (larger inputs are clamped at 88, which never happens on our paths).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND_MAGIC;
    let k = t - ROUND_MAGIC;
    // k as an integer, read from the mantissa: avoids a saturating float→int conversion.
    let ki = t.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i32;
    let r = x - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((ki + 127) as u32) << 23);
    y * scale
}

/// Largest element of `xs` (−∞ when empty). Written with a compare instead of `f32::max` so it
/// maps onto `maxps`; NaN inputs are not given any meaning.
#[inline]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &x in acc.iter().chain(tail) {
        m = if x > m { x } else { m };
    }
    m
}

/// Σ e^(x − shift) over `xs`, in LANES independent partial sums (which is what lets it vectorize,
/// and keeps the rounding error of a long sum small).
#[inline]
pub(crate) fn sum_exp(xs: &[f32], shift: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += exp(c[l] - shift);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for &x in tail {
        s += exp(x - shift);
    }
    s
}

/// Σ a[j]·b[j] in LANES partial sums (vectorizes, unlike a serial f32 sum).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ta.iter().zip(tb) {
        s += x * y;
    }
    s
}

/// Σ xs in LANES partial sums.
#[inline]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// out[j] = −g · e^((x[j] − max) − lse): the softmax part of d log p(target) / d logits, scaled.
/// The subtraction order matches `log_softmax` so rows with logits near ±1e4 lose no precision.
#[inline]
pub(crate) fn neg_scaled_softmax(xs: &[f32], out: &mut [f32], max: f32, lse: f32, g: f32) {
    let neg_g = -g;
    for (o, &x) in out.iter_mut().zip(xs) {
        *o = neg_g * exp((x - max) - lse);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_over_the_used_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64) - want).abs() / want;
            worst = worst.max(rel);
            x += 0.000_731;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert!(exp(-1e4) < 2e-38);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn reductions_handle_tails() {
        let xs: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let m = xs.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(max(&xs), m);
        let s: f64 = xs.iter().map(|&x| ((x - m) as f64).exp()).sum();
        assert!(((sum_exp(&xs, m) as f64) - s).abs() < 1e-5 * s);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        let ys: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let want: f32 = xs.iter().zip(&ys).map(|(a, b)| a * b).sum();
        assert!((dot(&xs, &ys) - want).abs() < 1e-4);
        assert!((sum(&ys) - ys.iter().sum::<f32>()).abs() < 1e-4);
    }
}

//! The experiment's statistics, one rule each: the mean and 95% t-interval of a few per-seed
//! accuracies, the 95% Wilson interval of one accuracy over its questions, and the exact two-sided
//! McNemar test of two methods answering the same questions.
//!
//! `scripts/prompt-table.py` computes the same Wilson interval and exact McNemar test in Python
//! for the prompt table (its own script, outside the crate).

use std::f64::consts::{LN_2, PI};

/// The mean of `xs` (None when empty).
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// The sample standard deviation (n − 1 in the denominator; None below two values).
pub fn sample_sd(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    (xs.len() >= 2)
        .then(|| (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt())
}

/// The 95% t-interval of the mean of `xs`: `(mean, half-width)`, the half-width being
/// `t(0.975, n − 1) · sd / √n`. None below two values (one value has no spread to measure).
pub fn t_interval95(xs: &[f64]) -> Option<(f64, f64)> {
    let (m, sd) = (mean(xs)?, sample_sd(xs)?);
    let n = xs.len() as f64;
    Some((m, t_quantile_975(xs.len() as u64 - 1) * sd / n.sqrt()))
}

/// P(|T| ≤ t) for Student's t with `df` ≥ 1 degrees of freedom, in closed form (Abramowitz and
/// Stegun 26.7.3/26.7.4: a finite sum in θ = atan(t/√df)).
fn t_central_mass(t: f64, df: u64) -> f64 {
    let theta = (t / (df as f64).sqrt()).atan();
    let (s, c2) = (theta.sin(), theta.cos() * theta.cos());
    if df % 2 == 1 {
        // 2/π · (θ + sinθ cosθ · (1 + 2/3 cos²θ + 2·4/(3·5) cos⁴θ + … up to cos^(df−3)θ)).
        let mut sum = 0.0;
        if df > 1 {
            let (mut term, mut j) = (1.0, 1);
            sum = 1.0;
            while 2 * j < df - 1 {
                term *= c2 * (2 * j) as f64 / (2 * j + 1) as f64;
                sum += term;
                j += 1;
            }
        }
        2.0 / PI * (theta + s * theta.cos() * sum)
    } else {
        // sinθ · (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + … up to cos^(df−2)θ).
        let (mut term, mut sum, mut j) = (1.0, 1.0, 1);
        while 2 * j < df {
            term *= c2 * (2 * j - 1) as f64 / (2 * j) as f64;
            sum += term;
            j += 1;
        }
        s * sum
    }
}

/// t(0.975, df): the two-sided 95% critical value of Student's t (df ≥ 1), by bisection on the
/// closed-form distribution; 1.96 in the limit.
pub fn t_quantile_975(df: u64) -> f64 {
    let df = df.max(1);
    let mut hi = 2.0;
    while t_central_mass(hi, df) < 0.95 {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_central_mass(mid, df) < 0.95 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The 95% Wilson score interval of `k` successes in `n` trials.
pub fn wilson95(k: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (z, n, p) = (1.959964, n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// The exact two-sided McNemar test: of the `b + c` discordant pairs (`b` where only the first
/// method is right, `c` where only the second is), how likely a split at least this uneven is
/// under Binomial(b + c, ½): `min(1, 2 · P(X ≤ min(b, c)))`; 1 without discordant pairs.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // ln(C(n, i) / 2^n) for i = 0..=k, summed in log space so that no term underflows on its own.
    let mut logs = Vec::with_capacity(k as usize + 1);
    let mut log_term = -(n as f64) * LN_2;
    logs.push(log_term);
    for i in 1..=k {
        log_term += ((n - i + 1) as f64 / i as f64).ln();
        logs.push(log_term);
    }
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = top + logs.iter().map(|l| (l - top).exp()).sum::<f64>().ln();
    (2.0 * tail.exp()).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_critical_values_match_the_tables() {
        for (df, t) in [
            (1, 12.7062),
            (2, 4.3027),
            (3, 3.1824),
            (4, 2.7764),
            (9, 2.2622),
            (10, 2.2281),
            (30, 2.0423),
            (1000, 1.9623),
        ] {
            let got = t_quantile_975(df);
            assert!(close(got, t, 5e-4), "df {df}: {got} vs {t}");
        }
    }

    #[test]
    fn the_t_interval_of_one_two_three() {
        // mean 2, sd 1, half-width t(0.975, 2) / √3 = 4.3027 / 1.7321 = 2.4841.
        let (m, half) = t_interval95(&[1.0, 2.0, 3.0]).unwrap();
        assert!(close(m, 2.0, 1e-12), "{m}");
        assert!(close(half, 2.4841, 1e-4), "{half}");
        // Two values 0.4 and 0.6: sd 0.1414, half-width 12.706 · 0.1414 / √2 = 1.2706.
        let (m, half) = t_interval95(&[0.4, 0.6]).unwrap();
        assert!(
            close(m, 0.5, 1e-12) && close(half, 1.2706, 1e-4),
            "{m} {half}"
        );
        // No spread, no width; one value, no interval.
        assert_eq!(t_interval95(&[0.3, 0.3, 0.3]), Some((0.3, 0.0)));
        assert_eq!(t_interval95(&[0.3]), None);
        assert_eq!(mean(&[]), None);
    }

    #[test]
    fn mcnemar_matches_hand_computed_cases() {
        // 0 against 5: 2 · (1/2)^5 = 0.0625.
        assert!(close(mcnemar_exact(0, 5), 0.0625, 1e-12));
        assert!(close(mcnemar_exact(5, 0), 0.0625, 1e-12));
        // 3 against 3: 2 · 42/64 > 1, so 1.
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        // 1 against 9: 2 · (1 + 10) / 1024.
        assert!(close(mcnemar_exact(1, 9), 22.0 / 1024.0, 1e-12));
        // 2 against 8: 2 · (1 + 10 + 45) / 1024.
        assert!(close(mcnemar_exact(8, 2), 112.0 / 1024.0, 1e-12));
        // No discordant pairs: nothing to tell the methods apart.
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Thousands of pairs: no underflow; 500 against 600 is about z = 3.0 (p ≈ 0.0028).
        let p = mcnemar_exact(500, 600);
        assert!(p > 0.001 && p < 0.005, "{p}");
        assert!(mcnemar_exact(5000, 5000) == 1.0);
        let tiny = mcnemar_exact(0, 2000);
        assert!((0.0..1e-300).contains(&tiny), "{tiny}");
    }

    #[test]
    fn wilson_matches_a_known_value() {
        // 39 of 100: the textbook Wilson interval is [0.3003, 0.4880].
        let (lo, hi) = wilson95(39, 100).unwrap();
        assert!(
            (lo - 0.3003).abs() < 5e-4 && (hi - 0.4880).abs() < 5e-4,
            "{lo} {hi}"
        );
        assert_eq!(wilson95(0, 0), None);
        let (lo, hi) = wilson95(0, 10).unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.2 && hi < 0.35);
    }
}

//! `results.json`: every run's outcome, and per method the mean EX over its runs with a 95%
//! interval (a t-interval over the seeds, or Wilson's over the questions for one run), and for
//! every pair of methods the exact McNemar test of the last round's per-question verdicts,
//! questions paired by (seed, question id) and pooled over the seeds. `report.rs` renders it.

use serde::{Deserialize, Serialize};

use super::outcome::Outcome;
use super::stats;

/// `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub dataset: String,
    pub main: String,
    pub ablations: Vec<String>,
    /// The experiment file's `seeds` (empty without them: one run per method, the base's seed).
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// Every finished (or started) run of a method: one per method, or one per method and seed
    /// (each with its `seed`), method by method.
    pub methods: Vec<Outcome>,
    /// Per method, in the order of `methods`: the mean and 95% interval of EX at every
    /// evaluation and at the last one.
    #[serde(default)]
    pub method_stats: Vec<MethodStats>,
    /// Every pair of methods with per-question verdicts: the exact McNemar test.
    #[serde(default)]
    pub pairwise: Vec<PairTest>,
    /// (λ, outcome) of the sweep, in the order run (first seed only).
    pub lambda_sweep: Vec<(f64, Outcome)>,
    /// Plot files written, relative to the report folder.
    pub plots: Vec<String>,
    /// Why a plot format is missing, if one is.
    pub plot_note: Option<String>,
}

/// What a 95% interval is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntervalKind {
    /// Student's t over the runs' accuracies (several seeds).
    TOverSeeds,
    /// Wilson's score interval over the dev questions (one run).
    WilsonOverQuestions,
}

/// A 95% interval, clipped to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
    pub kind: IntervalKind,
}

/// EX of one method at one evaluation, over its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    /// Runs (seeds) behind the mean.
    pub runs: usize,
    /// None with one run whose dev size is unknown.
    pub ci95: Option<Interval>,
}

impl Estimate {
    /// From each run's accuracy and, when known, its number of dev questions.
    pub fn of(values: &[(f64, Option<usize>)]) -> Option<Estimate> {
        let xs: Vec<f64> = values.iter().map(|v| v.0).collect();
        let mean = stats::mean(&xs)?;
        let ci95 = match values {
            [(ex, Some(n))] => {
                stats::wilson95((ex * *n as f64).round() as usize, *n).map(|(lo, hi)| Interval {
                    lo,
                    hi,
                    kind: IntervalKind::WilsonOverQuestions,
                })
            }
            [_] => None,
            _ => stats::t_interval95(&xs).map(|(m, half)| Interval {
                lo: (m - half).max(0.0),
                hi: (m + half).min(1.0),
                kind: IntervalKind::TOverSeeds,
            }),
        };
        Some(Estimate {
            mean,
            runs: xs.len(),
            ci95,
        })
    }
}

/// One method over its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodStats {
    pub name: String,
    /// The seeds of its runs (empty for an unseeded run).
    pub seeds: Vec<u64>,
    /// EX at each evaluation (0: after SFT when the runs have an SFT phase, then each round),
    /// over the runs that reached it.
    pub per_round: Vec<Estimate>,
    /// EX at each run's last evaluation.
    pub final_ex: Option<Estimate>,
    /// The mean over runs of each run's best evaluation.
    pub best_ex: Option<f64>,
    /// Dev questions of a run (its last evaluation), when known.
    pub dev_examples: Option<usize>,
}

impl MethodStats {
    pub fn of(name: &str, runs: &[&Outcome]) -> MethodStats {
        let at = |pick: &dyn Fn(&Outcome) -> Option<f64>| -> Vec<(f64, Option<usize>)> {
            runs.iter()
                .filter_map(|o| Some((pick(o)?, o.dev_examples)))
                .collect()
        };
        let width = runs.iter().map(|o| o.dev_ex.len()).max().unwrap_or(0);
        let bests: Vec<f64> = runs.iter().filter_map(|o| o.best_ex()).collect();
        MethodStats {
            name: name.into(),
            seeds: runs.iter().filter_map(|o| o.seed).collect(),
            per_round: (0..width)
                .filter_map(|i| Estimate::of(&at(&|o| o.dev_ex.get(i).copied())))
                .collect(),
            final_ex: Estimate::of(&at(&|o| o.final_ex())),
            best_ex: stats::mean(&bests),
            dev_examples: runs.iter().find_map(|o| o.dev_examples),
        }
    }
}

/// Two methods on the same questions: the exact McNemar test of the last round's verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairTest {
    pub a: String,
    pub b: String,
    /// Questions both answered, paired by (seed, question id), over all seeds.
    pub pairs: usize,
    /// Pairs only `a` got right (McNemar's b).
    pub only_a: u64,
    /// Pairs only `b` got right (McNemar's c).
    pub only_b: u64,
    /// Two-sided exact p-value.
    pub p_value: f64,
}

impl PairTest {
    /// None when the two methods share no question of a common seed (no per-question verdicts).
    pub fn of(a: &str, a_runs: &[&Outcome], b: &str, b_runs: &[&Outcome]) -> Option<PairTest> {
        let (mut pairs, mut only_a, mut only_b) = (0, 0, 0);
        for ra in a_runs {
            for rb in b_runs.iter().filter(|rb| rb.seed == ra.seed) {
                for (q, &right_a) in &ra.per_question {
                    let Some(&right_b) = rb.per_question.get(q) else {
                        continue;
                    };
                    pairs += 1;
                    only_a += u64::from(right_a && !right_b);
                    only_b += u64::from(right_b && !right_a);
                }
            }
        }
        (pairs > 0).then(|| PairTest {
            a: a.into(),
            b: b.into(),
            pairs,
            only_a,
            only_b,
            p_value: stats::mcnemar_exact(only_a, only_b),
        })
    }
}

/// The runs of each method, in the order the methods first appear.
pub fn groups(runs: &[Outcome]) -> Vec<(&str, Vec<&Outcome>)> {
    let mut out: Vec<(&str, Vec<&Outcome>)> = Vec::new();
    for o in runs {
        match out.iter_mut().find(|(n, _)| *n == o.name) {
            Some((_, v)) => v.push(o),
            None => out.push((&o.name, vec![o])),
        }
    }
    out
}

impl Results {
    /// The results of these runs, with the statistics over seeds and the paired tests computed.
    pub fn new(
        dataset: String,
        main: String,
        ablations: Vec<String>,
        seeds: Vec<u64>,
        methods: Vec<Outcome>,
        lambda_sweep: Vec<(f64, Outcome)>,
    ) -> Results {
        let grouped = groups(&methods);
        let method_stats = grouped
            .iter()
            .map(|(name, runs)| MethodStats::of(name, runs))
            .collect();
        let mut pairwise = Vec::new();
        for (i, (a, a_runs)) in grouped.iter().enumerate() {
            for (b, b_runs) in &grouped[i + 1..] {
                pairwise.extend(PairTest::of(a, a_runs, b, b_runs));
            }
        }
        Results {
            dataset,
            main,
            ablations,
            seeds,
            method_stats,
            pairwise,
            methods,
            lambda_sweep,
            plots: Vec::new(),
            plot_note: None,
        }
    }

    pub(crate) fn stats_of(&self, name: &str) -> Option<&MethodStats> {
        self.method_stats.iter().find(|m| m.name == name)
    }
}

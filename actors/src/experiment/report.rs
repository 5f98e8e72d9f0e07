//! The report: the paper's tables as Markdown from `results.json`'s numbers (`summary.rs`), and
//! `report.md` tying them to the plots. Pure functions of the outcomes, so they are tested
//! without running anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use exspin::eval::Bucket;
use exspin::sql::classify::QueryType;

pub use super::summary::{
    Estimate, Interval, IntervalKind, MethodStats, PairTest, Results, groups,
};

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{:.1}", 100.0 * v))
}

fn interval(e: Option<&Estimate>) -> String {
    match e.and_then(|e| e.ci95) {
        Some(i) => format!("{:.1}–{:.1}", 100.0 * i.lo, 100.0 * i.hi),
        None => "–".into(),
    }
}

/// Table 3: method × dataset execution accuracy (final round, best round, 95% interval), the
/// mean over the runs when a method has several.
pub fn table_methods(r: &Results) -> String {
    let mut s = format!(
        "| method | EX on {} (final) | best round | 95% CI | dev n | runs |\n\
         |---|---:|---:|---|---:|---:|\n",
        r.dataset
    );
    for m in &r.method_stats {
        let n = m.dev_examples.map_or("–".into(), |n| n.to_string());
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {n} | {} |",
            m.name,
            pct(m.final_ex.as_ref().map(|e| e.mean)),
            pct(m.best_ex),
            interval(m.final_ex.as_ref()),
            m.final_ex.as_ref().map_or(0, |e| e.runs),
        );
    }
    s
}

/// What the intervals of the report are, in words.
fn interval_note(r: &Results) -> &'static str {
    if r.seeds.len() > 1 {
        "Accuracy is the mean over the seeds; the 95% CI is Student's t-interval over the seeds' \
         accuracies (a method with one finished seed gets the Wilson interval over its dev \
         questions)."
    } else {
        "The 95% CI is the Wilson score interval over the dev questions."
    }
}

/// Tables 1/2: accuracy by the paper's six query types (and `other`), final round, pooled over a
/// method's runs.
pub fn table_query_types(r: &Results) -> String {
    let mut s = String::from("| method |");
    let mut rule = String::from("|---|");
    for t in QueryType::ALL {
        let _ = write!(s, " {} |", t.name());
        rule.push_str("---:|");
    }
    s.push('\n');
    s.push_str(&rule);
    s.push('\n');
    for (name, runs) in groups(&r.methods) {
        let mut pooled: BTreeMap<&str, Bucket> = BTreeMap::new();
        for o in runs {
            for (t, b) in &o.by_type {
                let p = pooled.entry(t).or_default();
                p.count += b.count;
                p.correct += b.correct;
                p.accuracy = p.correct as f64 / p.count.max(1) as f64;
            }
        }
        let _ = write!(s, "| {name} |");
        for t in QueryType::ALL {
            let cell = match pooled.get(t.name()) {
                Some(b) => format!("{} ({}/{})", pct(Some(b.accuracy)), b.correct, b.count),
                None => "–".into(),
            };
            let _ = write!(s, " {cell} |");
        }
        s.push('\n');
    }
    s
}

/// Tables 6/7: the main method and its ablations, accuracy at every evaluation.
pub fn table_ablation(r: &Results) -> String {
    let rows: Vec<&MethodStats> = std::iter::once(&r.main)
        .chain(&r.ablations)
        .filter_map(|name| r.stats_of(name))
        .collect();
    per_round_table(&rows, false)
}

/// Accuracy per evaluation (the mean over a method's runs): column `0` is the model after SFT
/// (before any self-play round) when the run has an SFT phase, then one column per round; with
/// `intervals`, each cell also gives its 95% interval in brackets.
pub fn per_round_table(rows: &[&MethodStats], intervals: bool) -> String {
    let width = rows.iter().map(|m| m.per_round.len()).max().unwrap_or(0);
    let mut s = String::from("| method |");
    let mut rule = String::from("|---|");
    for i in 0..width {
        let _ = write!(s, " {i} |");
        rule.push_str("---:|");
    }
    s.push('\n');
    s.push_str(&rule);
    s.push('\n');
    for m in rows {
        let _ = write!(s, "| {} |", m.name);
        for i in 0..width {
            let e = m.per_round.get(i);
            let mean = pct(e.map(|e| e.mean));
            match e.and_then(|e| e.ci95) {
                Some(ci) if intervals => {
                    let _ = write!(s, " {mean} [{:.1}, {:.1}] |", 100.0 * ci.lo, 100.0 * ci.hi);
                }
                _ => {
                    let _ = write!(s, " {mean} |");
                }
            }
        }
        s.push('\n');
    }
    s
}

/// Every pair of methods: the exact McNemar test of their last round's verdicts.
pub fn table_pairwise(r: &Results) -> String {
    let mut s = String::from(
        "| method A | method B | paired questions | only A right | only B right | McNemar p |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for t in &r.pairwise {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            t.a,
            t.b,
            t.pairs,
            t.only_a,
            t.only_b,
            p_value(t.p_value)
        );
    }
    s
}

fn p_value(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// Tables 8/9: time per round, peak memory, pairs trained per round.
pub fn table_resources(r: &Results) -> String {
    let mut s = String::from(
        "| method | wall (s) | of which SFT (s) | s / round | peak RSS (MiB) | pairs trained | pairs / round |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for o in r
        .methods
        .iter()
        .chain(r.lambda_sweep.iter().map(|(_, o)| o))
    {
        let per_round = if o.rounds > 0 {
            format!("{:.1}", o.pairs_trained as f64 / o.rounds as f64)
        } else {
            "–".into()
        };
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {} | {:.0} | {} | {per_round} |",
            o.label(),
            o.resources.wall_s,
            o.resources.sft_s,
            o.seconds_per_round()
                .map_or("–".into(), |v| format!("{v:.1}")),
            o.resources.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            o.pairs_trained,
        );
    }
    s
}

/// Every run's evaluated versions against its version 0 on the same questions (exact McNemar),
/// with the cost of the round that made each: the per-round view of a long run. Empty when no run
/// has version 0's per-question verdicts.
pub fn table_rounds_against_start(r: &Results) -> String {
    let runs: Vec<&super::outcome::Outcome> = r
        .methods
        .iter()
        .filter(|o| o.round_rows.len() > 1)
        .collect();
    if runs.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "| run | version | EX | gained / lost vs v0 | p vs v0 | round wall (s) | pairs | pairs / s | peak RSS (MiB) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let dash = || "–".to_string();
    for o in runs {
        for row in &o.round_rows {
            let ex = format!(
                "{:.1}% ({}/{})",
                100.0 * row.correct as f64 / row.examples.max(1) as f64,
                row.correct,
                row.examples
            );
            let (versus, p) = if row.version == 0 {
                (dash(), dash())
            } else {
                (
                    format!("+{} / −{}", row.gained, row.lost),
                    p_value(row.p_value),
                )
            };
            let _ = writeln!(
                s,
                "| {} | {} | {ex} | {versus} | {p} | {} | {} | {} | {} |",
                o.label(),
                row.version,
                row.wall_s.map_or_else(dash, |w| format!("{w:.0}")),
                row.pairs.map_or_else(dash, |n| n.to_string()),
                row.pairs_per_s().map_or_else(dash, |x| format!("{x:.3}")),
                row.peak_rss_bytes
                    .map_or_else(dash, |b| format!("{:.0}", b as f64 / (1024.0 * 1024.0))),
            );
        }
    }
    s
}

/// Figures 6/7 as a table: final accuracy per λ.
pub fn table_lambda(r: &Results) -> String {
    let mut s = String::from("| λ | EX (final) | best round |\n|---:|---:|---:|\n");
    for (l, o) in &r.lambda_sweep {
        let _ = writeln!(s, "| {l} | {} | {} |", pct(o.final_ex()), pct(o.best_ex()));
    }
    s
}

/// Plain-words comparison of the main method against each other method, for the top of the report.
pub fn verdicts(r: &Results) -> Vec<String> {
    let Some(main) = r.stats_of(&r.main) else {
        return Vec::new();
    };
    let Some(m) = main.final_ex.as_ref().map(|e| e.mean) else {
        return vec![format!("{} has no dev accuracy yet.", main.name)];
    };
    r.method_stats
        .iter()
        .filter(|o| o.name != main.name)
        .filter_map(|o| {
            let x = o.final_ex.as_ref()?.mean;
            let diff = 100.0 * (m - x);
            let word = if diff > 0.05 {
                "beats"
            } else if diff < -0.05 {
                "trails"
            } else {
                "ties"
            };
            let test = r
                .pairwise
                .iter()
                .find(|t| {
                    (t.a == main.name && t.b == o.name) || (t.b == main.name && t.a == o.name)
                })
                .map_or(String::new(), |t| {
                    format!(
                        "; exact McNemar p = {} over {} paired questions",
                        p_value(t.p_value),
                        t.pairs
                    )
                });
            Some(format!(
                "{} {word} {} by {:.1} points ({} vs {}{test}).",
                main.name,
                o.name,
                diff.abs(),
                pct(Some(m)),
                pct(Some(x))
            ))
        })
        .collect()
}

pub fn markdown(r: &Results, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# exspin experiment on {}\n", r.dataset);
    let _ = writeln!(s, "Reproduce: `{command}`\n");
    if !r.seeds.is_empty() {
        let seeds: Vec<String> = r.seeds.iter().map(|s| s.to_string()).collect();
        let _ = writeln!(
            s,
            "Seeds: {} (every method once per seed, all from the same version 0; the λ sweep \
             with the first seed only).\n",
            seeds.join(", ")
        );
    }
    for v in verdicts(r) {
        let _ = writeln!(s, "- {v}");
    }
    let _ = writeln!(
        s,
        "\n## Execution accuracy by method (Table 3)\n\n{}\n{}\n",
        table_methods(r),
        interval_note(r)
    );
    let _ = writeln!(
        s,
        "## Paired comparisons, final round (exact McNemar)\n\nThe last round's verdicts of two \
         methods on the same question (same seed, same question id), pooled over the seeds; \
         the two-sided exact test on the questions exactly one of them got right.\n"
    );
    if r.pairwise.is_empty() {
        let _ = writeln!(
            s,
            "_No pair of methods has per-question verdicts (dev/round-*.jsonl) to compare._\n"
        );
    } else {
        let _ = writeln!(s, "{}", table_pairwise(r));
    }
    let pooled = if r.seeds.len() > 1 {
        ", pooled over the seeds"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "## By query type, final round{pooled} (Tables 1/2)\n\n{}",
        table_query_types(r)
    );
    let _ = writeln!(
        s,
        "## {} and its ablations, per round (Tables 6/7)\n\n{}",
        r.main,
        table_ablation(r)
    );
    let all: Vec<&MethodStats> = r.method_stats.iter().collect();
    let _ = writeln!(
        s,
        "## Accuracy per round, every method, with 95% intervals (Figures 8/9)\n\n{}\n{}\n",
        per_round_table(&all, true),
        interval_note(r)
    );
    let rounds = table_rounds_against_start(r);
    if !rounds.is_empty() {
        let _ = writeln!(
            s,
            "## Each round against version 0, and its cost\n\nEach version's verdicts against \
             version 0's on the same questions (exact McNemar on the questions one of them got \
             right). A round's wall time is summed over the processes that ran it (work lost to \
             an interruption counts once) and overlaps the previous version's dev pass; peak RSS \
             is the process's while the round ran (`RUN/rounds.jsonl`).\n\n{rounds}"
        );
    }
    if !r.lambda_sweep.is_empty() {
        let _ = writeln!(s, "## λ sweep (Figures 6/7)\n\n{}", table_lambda(r));
    }
    let _ = writeln!(
        s,
        "## Resources (Tables 8/9)\n\nWall time includes the SFT phase and every dev \
         evaluation; peak RSS is the child process's high-water mark.\n\n{}",
        table_resources(r)
    );
    if !r.plots.is_empty() {
        let _ = writeln!(s, "## Plots\n");
        for p in r.plots.iter().filter(|p| p.ends_with(".svg")) {
            let _ = writeln!(s, "![{p}]({p})\n");
        }
    }
    if let Some(note) = &r.plot_note {
        let _ = writeln!(s, "_{note}_\n");
    }
    s
}

/// Series for the accuracy-per-round plot: (method, [(evaluation index, mean EX %)]).
pub fn accuracy_series(methods: &[&MethodStats]) -> Vec<(String, Vec<(f64, f64)>)> {
    methods
        .iter()
        .map(|m| {
            let points = m
                .per_round
                .iter()
                .enumerate()
                .map(|(i, e)| (i as f64, 100.0 * e.mean))
                .collect();
            (m.name.clone(), points)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::outcome::{Outcome, Resources};
    use exspin::eval::Bucket;
    use std::collections::BTreeMap;

    fn outcome(name: &str, ex: &[f64]) -> Outcome {
        Outcome {
            name: name.into(),
            dev_ex: ex.to_vec(),
            rounds: ex.len().saturating_sub(1) as u64,
            finished: true,
            pairs_trained: 10,
            resources: Resources {
                wall_s: 20.0,
                peak_rss_bytes: 64 << 20,
                sft_s: 4.0,
            },
            dev_examples: Some(40),
            by_type: BTreeMap::from([(
                "join".to_string(),
                Bucket {
                    count: 4,
                    correct: 3,
                    accuracy: 0.75,
                },
            )]),
            ..Outcome::default()
        }
    }

    /// `right` of 40 questions right, the first `right` of them.
    fn answers(right: usize) -> BTreeMap<String, bool> {
        (0..40).map(|q| (format!("q{q}"), q < right)).collect()
    }

    fn results() -> Results {
        let mut spin = outcome("SPIN", &[0.2, 0.25, 0.3]);
        spin.per_question = answers(12);
        let mut exspin = outcome("ExSPIN", &[0.2, 0.3, 0.35]);
        exspin.per_question = answers(14);
        Results::new(
            "embedded default".into(),
            "ExSPIN".into(),
            vec!["SPIN".into()],
            vec![],
            vec![outcome("SFT", &[0.2, 0.2, 0.2]), spin, exspin],
            vec![(0.5, outcome("ExSPIN λ=0.5", &[0.2, 0.3]))],
        )
    }

    #[test]
    fn tables_hold_the_numbers() {
        let r = results();
        let t3 = table_methods(&r);
        assert!(t3.contains("| ExSPIN | 35.0 | 35.0 |"), "{t3}");
        // 14 of 40: the Wilson interval is about 22.1–50.5.
        assert!(t3.contains("| 22.1–50.5 | 40 | 1 |"), "{t3}");
        let ab = table_ablation(&r);
        let lines: Vec<&str> = ab.lines().collect();
        assert_eq!(lines.len(), 4, "header, rule, main, one ablation: {ab}");
        assert!(
            lines[2].starts_with("| ExSPIN | 20.0 | 30.0 | 35.0 |"),
            "{ab}"
        );
        assert!(lines[3].starts_with("| SPIN |"), "{ab}");
        let types = table_query_types(&r);
        assert!(types.contains("75.0 (3/4)"), "{types}");
        let res = table_resources(&r);
        assert!(
            // Time per round leaves out the SFT phase: (20 − 4) / 2.
            res.contains("| ExSPIN | 20 | 4 | 8.0 | 64 | 10 | 5.0 |"),
            "{res}"
        );
        assert!(table_lambda(&r).contains("| 0.5 | 30.0 | 30.0 |"));
        // One run: Wilson intervals per round too; 8 of 40 is about 10.5–34.8.
        let all: Vec<&MethodStats> = r.method_stats.iter().collect();
        let per_round = per_round_table(&all, true);
        assert!(
            per_round.contains("| SFT | 20.0 [10.5, 34.8] |"),
            "{per_round}"
        );
        // Only SPIN and ExSPIN have per-question verdicts: one pair, 2 questions apart.
        assert_eq!(r.pairwise.len(), 1, "{:?}", r.pairwise);
        let t = &r.pairwise[0];
        assert_eq!((t.pairs, t.only_a, t.only_b), (40, 0, 2));
        assert!((t.p_value - 0.5).abs() < 1e-12, "{t:?}");
        assert!(table_pairwise(&r).contains("| SPIN | ExSPIN | 40 | 0 | 2 | 0.5000 |"));
    }

    #[test]
    fn seeds_give_means_t_intervals_and_tests_pooled_over_seeds() {
        // Two methods, three seeds each. A: 0.1, 0.2, 0.3 at the end (mean 0.2, sd 0.1, t
        // half-width 4.3027 · 0.1 / √3 = 0.2484, clipped at 0). B is right on 5 more questions
        // than A in every seed: b = 0, c = 15 over 3 × 40 paired questions, p = 2 / 2^15.
        let mut runs = Vec::new();
        for (name, extra) in [("A", 0), ("B", 5)] {
            for (i, seed) in [1u64, 2, 3].into_iter().enumerate() {
                let right = 4 * (i + 1) + extra;
                let mut o = outcome(name, &[0.05, right as f64 / 40.0]);
                o.seed = Some(seed);
                o.per_question = answers(right);
                runs.push(o);
            }
        }
        let r = Results::new("d".into(), "B".into(), vec![], vec![1, 2, 3], runs, vec![]);
        assert_eq!(r.method_stats.len(), 2);
        let a = &r.method_stats[0];
        assert_eq!(a.seeds, [1, 2, 3]);
        let fin = a.final_ex.as_ref().unwrap();
        assert_eq!(fin.runs, 3);
        assert!((fin.mean - 0.2).abs() < 1e-12, "{fin:?}");
        let ci = fin.ci95.unwrap();
        assert_eq!(ci.kind, IntervalKind::TOverSeeds);
        assert_eq!(ci.lo, 0.0, "clipped: {ci:?}");
        assert!((ci.hi - 0.4484).abs() < 1e-4, "{ci:?}");
        // Round 0 is the same in every seed: no spread, no width.
        let r0 = &a.per_round[0];
        let c = r0.ci95.unwrap();
        assert!(
            (c.lo - 0.05).abs() < 1e-12 && (c.hi - c.lo).abs() < 1e-12,
            "{c:?}"
        );
        assert_eq!(r.pairwise.len(), 1);
        let t = &r.pairwise[0];
        assert_eq!((t.a.as_str(), t.b.as_str()), ("A", "B"));
        assert_eq!((t.pairs, t.only_a, t.only_b), (120, 0, 15));
        assert!((t.p_value - 2.0 / 32768.0).abs() < 1e-15, "{t:?}");
        let md = markdown(&r, "x");
        assert!(md.contains("Seeds: 1, 2, 3"), "{md}");
        assert!(md.contains("t-interval over the seeds"), "{md}");
        assert!(md.contains("| A | B | 120 | 0 | 15 | 6.1e-5 |"), "{md}");
        assert!(md.contains("| A (seed 2) |"), "resources per run: {md}");
        assert!(
            md.contains("B beats A by 12.5 points (32.5 vs 20.0; exact McNemar p = 6.1e-5 over 120 paired questions)."),
            "{md}"
        );
        // Pooled over seeds: 3 of 4 join questions right in each of the three runs.
        assert!(table_query_types(&r).contains("75.0 (9/12)"));
        // results.json carries the statistics.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["method_stats"][0]["final_ex"]["ci95"]["kind"],
            "t-over-seeds"
        );
        assert_eq!(json["pairwise"][0]["only_b"], 15);
        assert_eq!(json["methods"][1]["seed"], 2);
        assert!(json["methods"][0].get("per_question").is_none());
    }

    #[test]
    fn verdicts_say_who_beats_whom() {
        let v = verdicts(&results());
        assert_eq!(
            v,
            vec![
                "ExSPIN beats SFT by 15.0 points (35.0 vs 20.0).".to_string(),
                "ExSPIN beats SPIN by 5.0 points (35.0 vs 30.0; exact McNemar p = 0.5000 over 40 \
                 paired questions)."
                    .to_string(),
            ]
        );
    }

    #[test]
    fn each_round_against_version_0_is_a_section_when_a_run_has_the_verdicts() {
        use crate::experiment::rounds::RoundRow;
        let mut r = results();
        let md = markdown(&r, "x");
        assert!(!md.contains("against version 0"), "no verdicts, no section");
        r.methods[2].round_rows = vec![
            RoundRow {
                version: 0,
                correct: 112,
                examples: 200,
                p_value: 1.0,
                ..RoundRow::default()
            },
            RoundRow {
                version: 1,
                correct: 118,
                examples: 200,
                gained: 9,
                lost: 3,
                p_value: 0.146,
                wall_s: Some(3600.0),
                pairs: Some(120),
                peak_rss_bytes: Some(12 << 30),
            },
        ];
        let md = markdown(&r, "x");
        assert!(md.contains("## Each round against version 0"), "{md}");
        assert!(
            md.contains("| ExSPIN | 0 | 56.0% (112/200) | – | – | – | – | – | – |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| ExSPIN | 1 | 59.0% (118/200) | +9 / −3 | 0.1460 | 3600 | 120 | 0.033 | 12288 |"
            ),
            "{md}"
        );
    }

    #[test]
    fn the_report_links_every_svg_and_lists_every_section() {
        let mut r = results();
        r.plots = vec!["accuracy.svg".into(), "accuracy.png".into()];
        let md = markdown(&r, "exspin experiment x.toml --out out");
        for needle in [
            "Table 3",
            "Tables 1/2",
            "Tables 6/7",
            "Figures 8/9",
            "Figures 6/7",
            "Tables 8/9",
            "exact McNemar",
            "Wilson score interval",
            "![accuracy.svg](accuracy.svg)",
            "exspin experiment x.toml --out out",
        ] {
            assert!(md.contains(needle), "{needle:?} missing");
        }
        assert!(!md.contains("accuracy.png)"));
        assert!(!md.contains("Seeds:"), "no seeds, no seed line");
    }
}

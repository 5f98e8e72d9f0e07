//! The report: the paper's tables as Markdown, the raw numbers as JSON, and `report.md` tying them
//! to the plots. Pure functions of the outcomes, so they are tested without running anything.

use std::fmt::Write as _;

use exspin::sql::classify::QueryType;
use serde::{Deserialize, Serialize};

use super::outcome::{Outcome, wilson95};

/// `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub dataset: String,
    pub main: String,
    pub ablations: Vec<String>,
    pub methods: Vec<Outcome>,
    /// (λ, outcome) of the sweep, in the order run.
    pub lambda_sweep: Vec<(f64, Outcome)>,
    /// Plot files written, relative to the report folder.
    pub plots: Vec<String>,
    /// Why a plot format is missing, if one is.
    pub plot_note: Option<String>,
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{:.1}", 100.0 * v))
}

/// Table 3: method × dataset execution accuracy (final round, best round, 95% interval).
pub fn table_methods(r: &Results) -> String {
    let mut s = format!(
        "| method | EX on {} (final) | best round | 95% CI | dev n |\n|---|---:|---:|---|---:|\n",
        r.dataset
    );
    for o in &r.methods {
        let ci = match (o.final_ex(), o.dev_examples) {
            (Some(ex), Some(n)) if n > 0 => {
                let (lo, hi) = wilson95((ex * n as f64).round() as usize, n).expect("n > 0");
                format!("{:.1}–{:.1}", 100.0 * lo, 100.0 * hi)
            }
            _ => "–".into(),
        };
        let n = o.dev_examples.map_or("–".into(), |n| n.to_string());
        let _ = writeln!(
            s,
            "| {} | {} | {} | {ci} | {n} |",
            o.name,
            pct(o.final_ex()),
            pct(o.best_ex())
        );
    }
    s
}

/// Tables 1/2: accuracy by the paper's six query types (and `other`), final round.
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
    for o in &r.methods {
        let _ = write!(s, "| {} |", o.name);
        for t in QueryType::ALL {
            let cell = match o.by_type.get(t.name()) {
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
    let rows: Vec<&Outcome> = std::iter::once(&r.main)
        .chain(&r.ablations)
        .filter_map(|name| r.methods.iter().find(|o| &o.name == name))
        .collect();
    per_round_table(&rows)
}

/// Accuracy per evaluation: column `0` is the model after SFT (before any self-play round) when
/// the run has an SFT phase, then one column per round.
pub fn per_round_table(rows: &[&Outcome]) -> String {
    let width = rows.iter().map(|o| o.dev_ex.len()).max().unwrap_or(0);
    let mut s = String::from("| method |");
    let mut rule = String::from("|---|");
    for i in 0..width {
        let _ = write!(s, " {i} |");
        rule.push_str("---:|");
    }
    s.push('\n');
    s.push_str(&rule);
    s.push('\n');
    for o in rows {
        let _ = write!(s, "| {} |", o.name);
        for i in 0..width {
            let _ = write!(s, " {} |", pct(o.dev_ex.get(i).copied()));
        }
        s.push('\n');
    }
    s
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
            o.name,
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
    let Some(main) = r.methods.iter().find(|o| o.name == r.main) else {
        return Vec::new();
    };
    let Some(m) = main.final_ex() else {
        return vec![format!("{} has no dev accuracy yet.", main.name)];
    };
    r.methods
        .iter()
        .filter(|o| o.name != main.name)
        .filter_map(|o| {
            let x = o.final_ex()?;
            let diff = 100.0 * (m - x);
            let word = if diff > 0.05 {
                "beats"
            } else if diff < -0.05 {
                "trails"
            } else {
                "ties"
            };
            Some(format!(
                "{} {word} {} by {:.1} points ({} vs {}).",
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
    for v in verdicts(r) {
        let _ = writeln!(s, "- {v}");
    }
    let _ = writeln!(
        s,
        "\n## Execution accuracy by method (Table 3)\n\n{}",
        table_methods(r)
    );
    let _ = writeln!(
        s,
        "## By query type, final round (Tables 1/2)\n\n{}",
        table_query_types(r)
    );
    let _ = writeln!(
        s,
        "## {} and its ablations, per round (Tables 6/7)\n\n{}",
        r.main,
        table_ablation(r)
    );
    let all: Vec<&Outcome> = r.methods.iter().collect();
    let _ = writeln!(
        s,
        "## Accuracy per round, every method (Figures 8/9)\n\n{}",
        per_round_table(&all)
    );
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

/// Series for the accuracy-per-round plot: (method, [(evaluation index, EX %)]).
pub fn accuracy_series(outcomes: &[&Outcome]) -> Vec<(String, Vec<(f64, f64)>)> {
    outcomes
        .iter()
        .map(|o| {
            let points = o
                .dev_ex
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, 100.0 * v))
                .collect();
            (o.name.clone(), points)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::outcome::Resources;
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

    fn results() -> Results {
        Results {
            dataset: "embedded default".into(),
            main: "ExSPIN".into(),
            ablations: vec!["SPIN".into()],
            methods: vec![
                outcome("SFT", &[0.2, 0.2, 0.2]),
                outcome("SPIN", &[0.2, 0.25, 0.3]),
                outcome("ExSPIN", &[0.2, 0.3, 0.35]),
            ],
            lambda_sweep: vec![(0.5, outcome("ExSPIN λ=0.5", &[0.2, 0.3]))],
            plots: vec!["accuracy.svg".into(), "accuracy.png".into()],
            plot_note: None,
        }
    }

    #[test]
    fn tables_hold_the_numbers() {
        let r = results();
        let t3 = table_methods(&r);
        assert!(t3.contains("| ExSPIN | 35.0 | 35.0 |"), "{t3}");
        // 14 of 40: the Wilson interval is about 22.1–50.5.
        assert!(t3.contains("| 22.1–50.5 | 40 |"), "{t3}");
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
    }

    #[test]
    fn verdicts_say_who_beats_whom() {
        let v = verdicts(&results());
        assert_eq!(
            v,
            vec![
                "ExSPIN beats SFT by 15.0 points (35.0 vs 20.0).".to_string(),
                "ExSPIN beats SPIN by 5.0 points (35.0 vs 30.0).".to_string(),
            ]
        );
    }

    #[test]
    fn the_report_links_every_svg_and_lists_every_section() {
        let md = markdown(&results(), "exspin experiment x.toml --out out");
        for needle in [
            "Table 3",
            "Tables 1/2",
            "Tables 6/7",
            "Figures 8/9",
            "Figures 6/7",
            "Tables 8/9",
            "![accuracy.svg](accuracy.svg)",
            "exspin experiment x.toml --out out",
        ] {
            assert!(md.contains(needle), "{needle:?} missing");
        }
        assert!(!md.contains("accuracy.png)"));
    }
}

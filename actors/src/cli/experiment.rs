//! `exspin experiment CONFIG --out DIR`: every method of the experiment file on the same data and
//! budget, once or once per seed, then `DIR/report.md`, `DIR/results.json` and the plots.

use std::path::{Path, PathBuf};

use anyhow::Context;
use exspin_actors::experiment::config::ExperimentConfig;
use exspin_actors::experiment::outcome;
use exspin_actors::experiment::plot::{self, Chart, Series};
use exspin_actors::experiment::report::{self, MethodStats, Results};
use exspin_actors::experiment::runner::{self, Step};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Each method is an ordinary `exspin run` into OUT/runs/NAME, or with `seeds = \
[...]` in the experiment file one run per seed into OUT/runs/NAME/seed-S (its config in \
OUT/configs/, its output in OUT/logs/). A continued-SFT method given `follow = \"NAME\"` \
trains the gold of exactly the samples method NAME's run (same seed) trained, without generating. \
A rerun skips finished runs and resumes interrupted ones, \
so a long experiment may span several sittings; it refuses runs whose job config changed since \
they started unless --restart-changed; --report-only rebuilds the report from what has finished.\n\nExample: exspin experiment configs/experiment-demo.toml --out reports/demo"
)]
pub struct ExperimentArgs {
    /// The experiment file (TOML): a base job config and the methods as overrides of it.
    pub config: PathBuf,
    /// Folder for report.md, results.json, the plots and the runs.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Run only these methods (by name, every seed; repeatable). The report covers whatever has
    /// finished.
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Run nothing; rebuild the report from the finished runs.
    #[arg(long)]
    pub report_only: bool,
    /// Start over the runs whose job config changed since they were started (an edited base
    /// config or experiment file), discarding what their folders hold. Without it the
    /// experiment refuses to touch them.
    #[arg(long)]
    pub restart_changed: bool,
    /// Worker threads of each run (passed to every `exspin run` / `exspin resume` child;
    /// default: all cores, or $RAYON_NUM_THREADS).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let (exp, base_path) = ExperimentConfig::load(&args.config)?;
    let base_text = std::fs::read_to_string(&base_path)
        .with_context(|| format!("reading {}", base_path.display()))?;
    anyhow::ensure!(args.threads != Some(0), "--threads must be at least 1");
    let runs = runner::plan(&exp, &base_text)
        .with_context(|| format!("{}: a method's job config", args.config.display()))?;
    for name in &args.only {
        anyhow::ensure!(
            runs.iter().any(|r| &r.name == name),
            "--only {name:?}: no such method; the methods are {}",
            runs.iter()
                .map(|r| format!("{:?}", r.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let exe = std::env::current_exe().context("finding the exspin binary")?;
    if !args.report_only {
        let todo: Vec<_> = runs
            .iter()
            .filter(|r| args.only.is_empty() || args.only.contains(&r.name))
            .collect();
        let changed: Vec<String> = todo
            .iter()
            .filter_map(|r| {
                runner::changed_since_started(&args.out, r)
                    .map(|what| format!("  {}: {what}", r.name))
            })
            .collect();
        anyhow::ensure!(
            changed.is_empty() || args.restart_changed,
            "the job config of {} run(s) changed since they were started (the base config or \
             {} was edited):\n{}\nRestore the settings they started with to continue them (each \
             run folder's config.toml has them), or pass --restart-changed to start them over \
             and discard what they hold",
            changed.len(),
            args.config.display(),
            changed.join("\n")
        );
        // Ctrl-C / SIGTERM: the run in progress stops at a checkpoint, then the experiment.
        runner::count_stop_requests();
        for (i, run) in todo.iter().enumerate() {
            let label = match run.seed {
                Some(s) => format!("{} (seed {s})", run.name),
                None => run.name.clone(),
            };
            anyhow::ensure!(
                runner::stop_requests() == 0,
                "stopped on request before {label}; the same command continues the experiment"
            );
            eprintln!(
                "[{}/{}] {label} … (its progress: {})",
                i + 1,
                todo.len(),
                runner::log_path(&args.out, run).display()
            );
            // One version 0 per SFT signature: a later run (another method, another seed) starts
            // from an earlier one's.
            let sft_from = runs
                .iter()
                .filter(|r| r.slug != run.slug && r.sft_signature == run.sft_signature)
                .map(|r| args.out.join("runs").join(&r.slug))
                .find(|d| {
                    d.join("sft.json").is_file() && d.join("weights/v0/config.json").is_file()
                });
            let step = runner::execute(&exe, &args.out, run, sft_from.as_deref(), args.threads)?;
            let note = match step {
                Step::Skipped => "already finished",
                Step::Ran => "done",
                Step::Resumed => "resumed and done",
                Step::Extended => "given more rounds and done",
                Step::Stopped => {
                    anyhow::bail!(
                        "stopped on request during {label}; its time so far is kept, and the same \
                         command continues the experiment where it stopped"
                    )
                }
            };
            let o = outcome::read(&run.name, &args.out.join("runs").join(&run.slug))?;
            eprintln!(
                "[{}/{}] {label}: {note}; dev EX per round {:?}",
                i + 1,
                todo.len(),
                o.dev_ex
                    .iter()
                    .map(|v| format!("{:.3}", v))
                    .collect::<Vec<_>>()
            );
        }
    }
    let mut methods = Vec::new();
    let mut sweep = Vec::new();
    for run in &runs {
        let dir = args.out.join("runs").join(&run.slug);
        if !dir.join("summary.json").is_file() {
            continue;
        }
        let mut o = outcome::read(&run.name, &dir)?;
        o.seed = run.seed;
        match run.lambda {
            Some(l) => sweep.push((l, o)),
            None => methods.push(o),
        }
    }
    let dataset = exp.dataset.clone().unwrap_or_else(|| {
        toml::from_str::<toml::Table>(&base_text)
            .ok()
            .and_then(|t| t.get("data")?.get("source")?.as_str().map(String::from))
            .unwrap_or_else(|| "data".into())
    });
    let mut results = Results::new(
        dataset,
        exp.main.clone(),
        exp.ablations.clone(),
        exp.seeds.clone().unwrap_or_default(),
        methods,
        sweep,
    );
    plots(&args.out, &mut results)?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    let command = format!(
        "exspin experiment {} --out {}",
        args.config.display(),
        args.out.display()
    );
    std::fs::write(
        args.out.join("report.md"),
        report::markdown(&results, &command),
    )?;
    println!("{}", report::table_methods(&results));
    eprintln!("report: {}", args.out.join("report.md").display());
    Ok(())
}

fn plots(out: &Path, results: &mut Results) -> anyhow::Result<()> {
    let to_series = |methods: &[&MethodStats]| -> Vec<Series> {
        report::accuracy_series(methods)
            .into_iter()
            .map(|(name, points)| Series { name, points })
            .collect()
    };
    let all: Vec<&MethodStats> = results.method_stats.iter().collect();
    let mut charts = vec![(
        "accuracy-per-round".to_string(),
        if results.seeds.len() > 1 {
            format!(
                "Dev execution accuracy per round, mean of {} seeds ({})",
                results.seeds.len(),
                results.dataset
            )
        } else {
            format!("Dev execution accuracy per round ({})", results.dataset)
        },
        "evaluation (0 = before self-play)".to_string(),
        to_series(&all),
    )];
    let ablation: Vec<&MethodStats> = std::iter::once(&results.main)
        .chain(&results.ablations)
        .filter_map(|n| results.method_stats.iter().find(|m| &m.name == n))
        .collect();
    if ablation.len() > 1 {
        charts.push((
            "ablation-per-round".into(),
            format!("{} and its ablations", results.main),
            "evaluation (0 = before self-play)".into(),
            to_series(&ablation),
        ));
    }
    if !results.lambda_sweep.is_empty() {
        let points = results
            .lambda_sweep
            .iter()
            .filter_map(|(l, o)| Some((*l, 100.0 * o.final_ex()?)))
            .collect();
        charts.push((
            "lambda-sweep".into(),
            "Final dev execution accuracy by λ".into(),
            "λ".into(),
            vec![Series {
                name: results.main.clone(),
                points,
            }],
        ));
    }
    for (stem, title, x_label, series) in &charts {
        let (files, note) = plot::line_chart(
            out,
            stem,
            &Chart {
                title,
                x_label,
                y_label: "EX (%)",
                series,
            },
        )?;
        results.plots.extend(files);
        if note.is_some() {
            results.plot_note = note;
        }
    }
    Ok(())
}

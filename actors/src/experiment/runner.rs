//! Turns an experiment into runs (one job config per method and seed, and per λ point), and runs
//! each as a child `exspin run` / `exspin resume`, measuring its wall time and peak resident
//! memory.
//!
//! Run folders, under `OUT/runs/` (configs and logs alike under `OUT/configs/`, `OUT/logs/`):
//! `{method}` for a method of an experiment without `seeds`, `{method}/seed-{s}` for each seed of
//! one with them, `lambda-{λ}` for a sweep point (first seed only).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::config::{ExperimentConfig, slug};
use super::outcome::Resources;
use super::overrides;
use crate::config::JobConfig;

/// One run of the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// The method's name, or "{method} λ={value}" for a sweep point.
    pub name: String,
    /// `Some(λ)` for a sweep point.
    pub lambda: Option<f64>,
    /// The experiment seed (`run.seed`) when the experiment lists `seeds`.
    pub seed: Option<u64>,
    /// The job config, as written to `OUT/configs/{slug}.toml`.
    pub config_text: String,
    /// The run's folder relative to `OUT/runs/`: `{method}`, `{method}/seed-{s}` or `lambda-{λ}`.
    pub slug: String,
    /// `JobConfig::sft_signature` of the config: runs that share it share version 0.
    pub sft_signature: String,
}

/// Every run, its config validated as a job config (so a misspelt override stops the experiment
/// before any run starts): each method once, or once per seed (method-major), then the λ sweep.
///
/// A seeded run gets `run.seed = s` and keeps the SFT seed its config had (`sft.seed`, else the
/// base's `run.seed`) as `sft.seed`, so that no seed changes `JobConfig::sft_signature`: every
/// seed starts from the same version 0.
pub fn plan(exp: &ExperimentConfig, base_text: &str) -> anyhow::Result<Vec<PlannedRun>> {
    let base: toml::Table = toml::from_str(base_text).context("the base job config")?;
    let parse = |name: &str, doc: &toml::Table| -> anyhow::Result<(String, JobConfig)> {
        let text = toml::to_string(doc)?;
        let job: JobConfig = toml::from_str(&text)
            .with_context(|| format!("method {name:?}: the overridden job config"))?;
        job.validate()
            .with_context(|| format!("method {name:?}: the overridden job config"))?;
        Ok((text, job))
    };
    let apply_all = |name: &str, sets: &[(&String, &toml::Value)]| -> anyhow::Result<toml::Table> {
        let mut doc = base.clone();
        for (k, v) in sets {
            overrides::apply(&mut doc, k, (*v).clone())
                .with_context(|| format!("method {name:?}"))?;
        }
        Ok(doc)
    };
    let build = |name: &str,
                 sets: &[(&String, &toml::Value)],
                 seed: Option<u64>|
     -> anyhow::Result<(String, String)> {
        let mut doc = apply_all(name, sets)?;
        if let Some(s) = seed {
            // The SFT seed the config has before the experiment's seed goes in (its sft.seed, or
            // the base's run.seed, which no override may change when seeds are given) stays.
            let (_, job) = parse(name, &doc)?;
            let sft_seed = job.sft_seed();
            overrides::apply(&mut doc, "sft.seed", toml::Value::Integer(sft_seed as i64))
                .with_context(|| format!("method {name:?}"))?;
            overrides::apply(&mut doc, "run.seed", toml::Value::Integer(s as i64))
                .with_context(|| format!("method {name:?}"))?;
        }
        let (text, job) = parse(name, &doc)?;
        Ok((text, job.sft_signature()))
    };
    let seeds: Vec<Option<u64>> = match &exp.seeds {
        Some(seeds) => seeds.iter().map(|s| Some(*s)).collect(),
        None => vec![None],
    };
    let run_slug = |method: &str, seed: Option<u64>| match seed {
        Some(s) => format!("{}/seed-{s}", slug(method)),
        None => slug(method),
    };
    let follow_key = "run.follow".to_string();
    let mut runs = Vec::new();
    for m in &exp.methods {
        for &seed in &seeds {
            let run = run_slug(&m.name, seed);
            // The followed run of the same seed, relative to this run's folder (so the
            // experiment's folder can move).
            let follow = m.follow.as_ref().map(|f| {
                let up = "../".repeat(run.matches('/').count() + 1);
                toml::Value::String(format!("{up}{}", run_slug(f, seed)))
            });
            let sets: Vec<_> = exp
                .set
                .iter()
                .chain(m.set.iter())
                .chain(follow.as_ref().map(|f| (&follow_key, f)))
                .collect();
            let (config_text, sft_signature) = build(&m.name, &sets, seed)?;
            runs.push(PlannedRun {
                name: m.name.clone(),
                lambda: None,
                seed,
                config_text,
                slug: run,
                sft_signature,
            });
        }
    }
    if let Some(sweep) = &exp.lambda_sweep {
        let method = exp
            .methods
            .iter()
            .find(|m| m.name == sweep.method)
            .context("lambda_sweep.method is not a method")?;
        let rounds = sweep.rounds.map(|r| toml::Value::Integer(r as i64));
        let rounds_key = "run.rounds".to_string();
        // The sweep runs with the first seed only: one run per λ point keeps it cheap, and the
        // points still share the methods' version 0.
        let seed = seeds[0];
        for &value in &sweep.values {
            let name = format!("{} λ={value}", method.name);
            let lambda = toml::Value::Float(value);
            let mut sets: Vec<_> = exp.set.iter().chain(method.set.iter()).collect();
            if let Some(r) = &rounds {
                sets.push((&rounds_key, r));
            }
            sets.push((&sweep.key, &lambda));
            let (config_text, sft_signature) = build(&method.name, &sets, seed)?;
            runs.push(PlannedRun {
                slug: format!("lambda-{}", slug(&value.to_string())),
                name,
                lambda: Some(value),
                seed,
                config_text,
                sft_signature,
            });
        }
    }
    Ok(runs)
}

/// What happened to one run when the experiment ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Already finished with this config: left alone.
    Skipped,
    Ran,
    Resumed,
    /// Given more rounds (the experiment raised `run.rounds`), then run to its end.
    Extended,
    /// A stop was requested while it ran (it stopped at a checkpoint, or at once on a second
    /// request): the experiment stops, and the same command continues it.
    Stopped,
}

/// Stop requests (SIGINT, SIGTERM) the experiment has received.
static STOP_REQUESTS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_stop_request(_: libc::c_int) {
    // Only an atomic add: async-signal-safe.
    STOP_REQUESTS.fetch_add(1, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM are counted instead of killing the experiment. Each run's
/// process has its own process group (a terminal's Ctrl-C reaches only the experiment), and the
/// experiment passes every request on to it: the first makes the run finish its step and write a
/// checkpoint, a second makes it exit at once. Either way the experiment then stops, with each
/// run's time so far kept, so that the same command continues where it stopped.
pub fn count_stop_requests() {
    let handler = count_stop_request as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only does an atomic add, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// How many stop requests the experiment has received (see [`count_stop_requests`]).
pub fn stop_requests() -> usize {
    STOP_REQUESTS.load(Ordering::SeqCst)
}

/// Runs `run` into `OUT/runs/{slug}` with the `exspin` binary `exe`: skipped when it already
/// finished with the same config, resumed when it stopped part-way, started fresh otherwise.
/// The child's output goes to `OUT/logs/{slug}.log`; `threads` is passed on as `--threads`. A
/// fresh run starts from `sft_from`'s version 0 when given (a finished run folder with the same
/// `sft_signature`).
pub fn execute(
    exe: &Path,
    out: &Path,
    run: &PlannedRun,
    sft_from: Option<&Path>,
    threads: Option<usize>,
) -> anyhow::Result<Step> {
    let run_dir = out.join("runs").join(&run.slug);
    let config_path = out.join("configs").join(format!("{}.toml", run.slug));
    let log_path = log_path(out, run);
    for path in [&run_dir, &config_path, &log_path] {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    let started_with = std::fs::read_to_string(run_dir.join("config.toml")).ok();
    let same_config = started_with.as_ref().is_some_and(|t| *t == run.config_text);
    if same_config && finished(&run_dir) {
        return Ok(Step::Skipped);
    }
    std::fs::write(&config_path, &run.config_text)?;
    // The experiment raised `run.rounds` and nothing else: the run goes on with more rounds.
    let more_rounds = started_with
        .as_ref()
        .and_then(|t| crate::config::rounds_raised_to(t, &run.config_text));
    let resumable = (same_config || more_rounds.is_some()) && has_checkpoint(&run_dir);
    let mut cmd = Command::new(exe);
    if resumable {
        cmd.arg("resume").arg(&run_dir);
        if let Some(rounds) = more_rounds {
            cmd.arg("--rounds").arg(rounds.to_string());
        }
    } else {
        cmd.arg("run")
            .arg(&config_path)
            .arg("--run-dir")
            .arg(&run_dir)
            .arg("--overwrite");
        if let Some(from) = sft_from {
            cmd.arg("--sft-from").arg(from);
        }
    }
    if let Some(n) = threads {
        cmd.arg("--threads").arg(n.to_string());
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    // Its own process group: stop requests reach it through the experiment, counted once each.
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; between fork and exec nothing else runs.
        unsafe {
            // Should the experiment itself be killed, the run is asked to stop too, rather than
            // going on alone where a rerun of the experiment would start a second one.
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    let started = Instant::now();
    let child = cmd
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let (status, peak) = wait_with_peak_rss(&child)?;
    let wall = started.elapsed().as_secs_f64();
    // The time is kept whether the run finished, stopped or failed: a rerun resumes it and adds.
    let previous: Resources = if resumable {
        std::fs::read_to_string(run_dir.join("resources.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    } else {
        Resources::default()
    };
    // A fresh run that did not start from another run's version 0 trained its own: its SFT time
    // (sft.json) is part of its wall time.
    let own_sft_s = if !resumable && sft_from.is_none() {
        std::fs::read_to_string(run_dir.join("sft.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("seconds")?.as_f64())
            .unwrap_or(0.0)
    } else {
        0.0
    };
    let resources = Resources {
        wall_s: previous.wall_s + wall,
        peak_rss_bytes: previous.peak_rss_bytes.max(peak),
        sft_s: previous.sft_s + own_sft_s,
    };
    std::fs::write(
        run_dir.join("resources.json"),
        serde_json::to_vec_pretty(&resources)?,
    )?;
    if stop_requests() > 0 {
        return Ok(Step::Stopped);
    }
    anyhow::ensure!(
        status == ExitStatus::Exited(0),
        "the run of {:?} failed ({status:?}); its output is in {}",
        run.name,
        log_path.display()
    );
    Ok(match (resumable, more_rounds.is_some()) {
        (true, true) => Step::Extended,
        (true, false) => Step::Resumed,
        (false, _) => Step::Ran,
    })
}

/// Where a run's output goes: `OUT/logs/{slug}.log` (its progress lines among it).
pub fn log_path(out: &Path, run: &PlannedRun) -> PathBuf {
    out.join("logs").join(format!("{}.log", run.slug))
}

/// When `run` was started under another config than the experiment gives it now, what its folder
/// would lose to a fresh start ("step 24, 24 pairs trained"); None when it was not started or
/// its config is the same. A rerun of the experiment refuses such a run unless told to start it
/// over: an edited base config must not discard hours of a long run without a word.
pub fn changed_since_started(out: &Path, run: &PlannedRun) -> Option<String> {
    let run_dir = out.join("runs").join(&run.slug);
    let started_with = std::fs::read_to_string(run_dir.join("config.toml")).ok()?;
    if started_with == run.config_text
        || (crate::config::rounds_raised_to(&started_with, &run.config_text).is_some()
            && has_checkpoint(&run_dir))
    {
        // The same, or only more rounds, which the run goes on with (`exspin resume --rounds`).
        return None;
    }
    let summary: Option<serde_json::Value> = std::fs::read_to_string(run_dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let progress = match &summary {
        Some(s) if s["finished"].as_bool() == Some(true) => "finished".to_string(),
        Some(s) => format!(
            "{} steps, {} pairs trained",
            s["steps"].as_u64().unwrap_or(0),
            s["pairs_trained"].as_u64().unwrap_or(0)
        ),
        None => "started".to_string(),
    };
    let checkpoints = if has_checkpoint(&run_dir) {
        ", with checkpoints"
    } else {
        ""
    };
    Some(format!("{} ({progress}{checkpoints})", run_dir.display()))
}

fn finished(run_dir: &Path) -> bool {
    std::fs::read_to_string(run_dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("finished")?.as_bool())
        .unwrap_or(false)
}

fn has_checkpoint(run_dir: &Path) -> bool {
    std::fs::read_dir(run_dir.join("checkpoints")).is_ok_and(|mut d| d.next().is_some())
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signalled(i32),
}

/// Waits for `child` and returns how it ended with its peak resident set in bytes, from the kernel's
/// own accounting (`wait4`'s `ru_maxrss`), so even a run shorter than any sampling interval has
/// its true peak. Each stop request the experiment receives meanwhile is passed on to the child
/// as a SIGINT. The child is reaped here: do not call `wait` on it afterwards.
pub fn wait_with_peak_rss(child: &std::process::Child) -> anyhow::Result<(ExitStatus, u64)> {
    let pid = libc::pid_t::try_from(child.id()).context("child pid out of range")?;
    let mut passed_on = 0;
    loop {
        while passed_on < stop_requests() {
            // SAFETY: pid is our own child's, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGINT) };
            passed_on += 1;
        }
        let mut status: libc::c_int = 0;
        // SAFETY: `rusage` is plain old data that wait4 fills in; zeroed is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own child's; both out-pointers are valid for the call's duration.
        let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if got == pid {
            // Linux reports ru_maxrss in kilobytes.
            let peak = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
            let how = if libc::WIFEXITED(status) {
                ExitStatus::Exited(libc::WEXITSTATUS(status))
            } else {
                ExitStatus::Signalled(libc::WTERMSIG(status))
            };
            return Ok((how, peak));
        }
        if got < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err).context("waiting for the run's process");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::config::{LambdaSweep, MethodSpec};
    use std::collections::BTreeMap;

    const BASE: &str = "[data]\nsource = \"synthetic\"\n[run]\nmode = \"exspin\"\nrounds = 3\n\
                        [model]\nkind = \"fake\"\n";

    fn method(name: &str, mode: &str) -> MethodSpec {
        MethodSpec {
            name: name.into(),
            set: BTreeMap::from([("run.mode".to_string(), toml::Value::String(mode.into()))]),
            follow: None,
        }
    }

    /// An experiment of no methods on `base.toml`, for tests to fill in.
    fn experiment() -> ExperimentConfig {
        ExperimentConfig {
            base: "base.toml".into(),
            dataset: None,
            set: BTreeMap::new(),
            main: "ExSPIN".into(),
            ablations: vec![],
            seeds: None,
            methods: vec![],
            lambda_sweep: None,
        }
    }

    #[test]
    fn a_following_method_points_at_the_same_seeds_run_of_the_method_it_follows() {
        let sft = MethodSpec {
            follow: Some("ExSPIN".into()),
            ..method("continued SFT", "sft")
        };
        let mut exp = ExperimentConfig {
            seeds: Some(vec![1, 2]),
            methods: vec![method("ExSPIN", "exspin"), sft],
            ..experiment()
        };
        let follows = |exp: &ExperimentConfig| -> Vec<(String, Option<std::path::PathBuf>)> {
            plan(exp, BASE)
                .unwrap()
                .into_iter()
                .map(|r| {
                    let job: JobConfig = toml::from_str(&r.config_text).unwrap();
                    (r.slug, job.run.follow)
                })
                .collect()
        };
        assert_eq!(
            follows(&exp),
            [
                ("exspin/seed-1".to_string(), None),
                ("exspin/seed-2".to_string(), None),
                (
                    "continued-sft/seed-1".to_string(),
                    Some("../../exspin/seed-1".into())
                ),
                (
                    "continued-sft/seed-2".to_string(),
                    Some("../../exspin/seed-2".into())
                ),
            ]
        );
        exp.seeds = None;
        assert_eq!(
            follows(&exp),
            [
                ("exspin".to_string(), None),
                ("continued-sft".to_string(), Some("../exspin".into()))
            ]
        );
        // A self-play method may not follow: the overridden job config is refused.
        exp.methods[1]
            .set
            .insert("run.mode".into(), toml::Value::String("exspin".into()));
        let err = format!("{:#}", plan(&exp, BASE).unwrap_err());
        assert!(err.contains("run.follow is for continued SFT"), "{err}");
    }

    #[test]
    fn plans_methods_then_sweep_points_with_their_overrides() {
        let exp = ExperimentConfig {
            base: "base.toml".into(),
            dataset: None,
            set: BTreeMap::from([("run.seed".to_string(), toml::Value::Integer(11))]),
            main: "ExSPIN".into(),
            ablations: vec![],
            seeds: None,
            methods: vec![method("ExSPIN", "exspin"), method("SPIN", "spin")],
            lambda_sweep: Some(LambdaSweep {
                method: "ExSPIN".into(),
                key: "run.seed".into(), // any numeric key shows the mechanics
                values: vec![3.0],
                rounds: Some(1),
            }),
        };
        let err = plan(&exp, BASE).unwrap_err();
        // run.seed is an integer: a float λ there is refused as a job config, before any run.
        assert!(
            format!("{err:#}").contains("overridden job config"),
            "{err:#}"
        );

        let exp = ExperimentConfig {
            lambda_sweep: None,
            ..exp
        };
        let runs = plan(&exp, BASE).unwrap();
        assert_eq!(runs.len(), 2);
        let spin: JobConfig = toml::from_str(&runs[1].config_text).unwrap();
        assert_eq!(spin.run.mode, crate::config::Mode::Spin);
        assert_eq!(spin.run.seed, 11);
        assert_eq!(spin.run.rounds, 3);
        assert_eq!(runs[1].slug, "spin");
    }

    #[test]
    fn methods_that_differ_only_in_self_play_share_their_sft_signature() {
        let mut plain = method("w/o schema integration", "exspin");
        plain
            .set
            .insert("model.schema".into(), toml::Value::String("plain".into()));
        let exp = ExperimentConfig {
            base: "base.toml".into(),
            dataset: None,
            set: BTreeMap::new(),
            main: "ExSPIN".into(),
            ablations: vec![],
            seeds: None,
            methods: vec![method("ExSPIN", "exspin"), method("SPIN", "spin"), plain],
            lambda_sweep: Some(LambdaSweep {
                method: "ExSPIN".into(),
                key: "model.lambda".into(),
                values: vec![0.5],
                rounds: Some(1),
            }),
        };
        let runs = plan(&exp, BASE).unwrap();
        assert_eq!(runs.len(), 4);
        // Mode, rounds and λ are self-play settings: one version 0 serves them all ...
        assert_eq!(runs[0].sft_signature, runs[1].sft_signature);
        assert_eq!(runs[0].sft_signature, runs[3].sft_signature);
        // ... but another prompt style trains another one.
        assert_ne!(runs[0].sft_signature, runs[2].sft_signature);
    }

    #[test]
    fn every_seed_of_a_method_is_its_own_run_from_one_version_0() {
        let exp = ExperimentConfig {
            seeds: Some(vec![1, 2]),
            methods: vec![method("ExSPIN", "exspin"), method("SPIN", "spin")],
            lambda_sweep: Some(LambdaSweep {
                method: "ExSPIN".into(),
                key: "model.lambda".into(),
                values: vec![0.5],
                rounds: None,
            }),
            ..experiment()
        };
        let runs = plan(&exp, BASE).unwrap();
        let slugs: Vec<&str> = runs.iter().map(|r| r.slug.as_str()).collect();
        assert_eq!(
            slugs,
            [
                "exspin/seed-1",
                "exspin/seed-2",
                "spin/seed-1",
                "spin/seed-2",
                "lambda-0.5"
            ]
        );
        let seeds: Vec<Option<u64>> = runs.iter().map(|r| r.seed).collect();
        // The sweep runs with the first seed only.
        assert_eq!(seeds, [Some(1), Some(2), Some(1), Some(2), Some(1)]);
        for r in &runs {
            let job: JobConfig = toml::from_str(&r.config_text).unwrap();
            assert_eq!(Some(job.run.seed), r.seed, "{}", r.slug);
            // The base's seed (the default 7) keeps seeding the SFT phase ...
            assert_eq!(job.sft.seed, Some(7), "{}", r.slug);
            // ... so every run shares one version 0.
            assert_eq!(r.sft_signature, runs[0].sft_signature, "{}", r.slug);
        }
        // Without seeds: one run per method, as before, and still the same version 0.
        let unseeded = plan(
            &ExperimentConfig {
                seeds: None,
                ..exp.clone()
            },
            BASE,
        )
        .unwrap();
        let slugs: Vec<&str> = unseeded.iter().map(|r| r.slug.as_str()).collect();
        assert_eq!(slugs, ["exspin", "spin", "lambda-0.5"]);
        let job: JobConfig = toml::from_str(&unseeded[0].config_text).unwrap();
        assert_eq!((job.run.seed, job.sft.seed), (7, None));
        assert_eq!(unseeded[0].sft_signature, runs[0].sft_signature);
        // A method's own sft.seed is kept: another version 0.
        let mut other = method("ExSPIN", "exspin");
        other
            .set
            .insert("sft.seed".into(), toml::Value::Integer(99));
        let runs = plan(
            &ExperimentConfig {
                methods: vec![other, method("SPIN", "spin")],
                lambda_sweep: None,
                ..exp
            },
            BASE,
        )
        .unwrap();
        let job: JobConfig = toml::from_str(&runs[1].config_text).unwrap();
        assert_eq!((job.run.seed, job.sft.seed), (2, Some(99)));
        assert_eq!(runs[0].sft_signature, runs[1].sft_signature);
        assert_ne!(runs[0].sft_signature, runs[2].sft_signature);
    }

    #[test]
    fn a_misspelt_override_is_refused_before_running() {
        let exp = ExperimentConfig {
            base: "base.toml".into(),
            dataset: None,
            set: BTreeMap::from([("run.roundz".to_string(), toml::Value::Integer(1))]),
            main: "ExSPIN".into(),
            ablations: vec![],
            seeds: None,
            methods: vec![method("ExSPIN", "exspin")],
            lambda_sweep: None,
        };
        let err = format!("{:#}", plan(&exp, BASE).unwrap_err());
        assert!(err.contains("roundz"), "{err}");
    }

    #[test]
    // The children are reaped by wait_with_peak_rss (wait4), which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    fn a_childs_exit_code_and_peak_memory_are_reported() {
        // The exit code comes back; a child that touches 64 MiB shows at least that as its peak.
        let child = Command::new("sh").arg("-c").arg("exit 3").spawn().unwrap();
        let (status, _) = wait_with_peak_rss(&child).unwrap();
        assert_eq!(status, ExitStatus::Exited(3));
        let child = Command::new("python3")
            .arg("-c")
            .arg("b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096])")
            .spawn();
        if let Ok(child) = child {
            let (status, peak) = wait_with_peak_rss(&child).unwrap();
            assert_eq!(status, ExitStatus::Exited(0));
            assert!(peak >= 64 << 20, "peak {peak}");
        }
    }
}

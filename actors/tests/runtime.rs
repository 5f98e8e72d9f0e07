//! The streaming runtime end to end, on small configs with the fake model (and one with the tiny
//! real model): exactly-once training,
//! determinism, restarts after injected panics, kill -9 + resume, SIGTERM, queue bounds, and a
//! corrupt checkpoint.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use exspin_actors::config::{DeviceSpec, WeightDType};
use exspin_actors::config::{FakeModel, JobConfig, Mode, ModelSource};
use exspin_actors::runtime::{Run, RunEnd};
use exspin_actors::state::summary::Summary;

/// The fake model's settings of a config that uses it.
fn fake(c: &mut JobConfig) -> &mut FakeModel {
    match &mut c.model.source {
        ModelSource::Fake(f) => f,
        other => panic!("not the fake model: {other:?}"),
    }
}

fn small(mode: Mode) -> JobConfig {
    let mut c: JobConfig = toml::from_str(
        r#"
        [data]
        synthetic_train = 60
        synthetic_dev = 20
        dev_limit = 20
        [run]
        rounds = 2
        prompts_per_round = 8
        samples_per_prompt = 2
        generate_batch = 2
        train_batch = 3
        replay_capacity = 6
        trainer_queue = 1
        checkpoint_every = 0
        [model]
        "#,
    )
    .unwrap();
    c.run.mode = mode;
    c.validate().unwrap();
    c
}

/// Runs a config in-process to the end.
fn run_in_process(config: JobConfig, dir: &Path) -> Summary {
    let text = toml::to_string(&config).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let run = Run::new(config, &text, dir).unwrap();
    let summary = drive_in_process(run);
    let on_disk: Summary =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(on_disk.samples_trained_ids, summary.samples_trained_ids);
    assert_eq!(on_disk.finished, summary.finished);
    summary
}

fn assert_no_duplicates(s: &Summary) {
    let set: HashSet<&String> = s.samples_trained_ids.iter().collect();
    assert_eq!(
        set.len(),
        s.samples_trained_ids.len(),
        "a sample was trained twice"
    );
    assert_eq!(s.pairs_trained, s.samples_trained_ids.len());
}

/// In spin mode every sample becomes a pair: rounds × prompts × samples, each once.
fn assert_spin_complete(s: &Summary, c: &JobConfig) {
    assert_no_duplicates(s);
    for r in 0..c.run.rounds {
        let of_round: Vec<&String> = s
            .samples_trained_ids
            .iter()
            .filter(|id| id.contains(&format!("#r{r}#")))
            .collect();
        let examples: BTreeSet<&str> = of_round
            .iter()
            .map(|id| id.split('#').next().unwrap())
            .collect();
        assert_eq!(examples.len(), c.run.prompts_per_round, "round {r}");
        assert_eq!(
            of_round.len(),
            c.run.prompts_per_round * c.run.samples_per_prompt,
            "round {r}"
        );
    }
}

fn assert_bounds(s: &Summary) {
    let (m, b) = (&s.queue_max, &s.queue_bounds);
    assert!(m.replay_pairs <= b.replay_pairs, "{m:?} vs {b:?}");
    assert!(m.opponent_prompts <= b.opponent_prompts, "{m:?} vs {b:?}");
    assert!(m.trainer_batches <= b.trainer_batches, "{m:?} vs {b:?}");
    assert!(m.replay_pairs > 0 && m.trainer_batches > 0);
}

#[test]
fn strict_run_trains_every_pair_once_deterministically_within_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let c = small(Mode::Spin);
    let a = run_in_process(c.clone(), &tmp.path().join("a"));
    assert_spin_complete(&a, &c);
    assert_bounds(&a);
    assert_eq!(a.rounds, 2);
    assert_eq!(a.restarts, 0);
    assert_eq!(a.dev_ex_per_round.len(), 2);
    assert!(a.dev_ex_per_round.iter().all(|x| (0.0..=1.0).contains(x)));
    let b = run_in_process(c.clone(), &tmp.path().join("b"));
    assert_eq!(
        a.samples_trained_ids, b.samples_trained_ids,
        "same seed, same order"
    );

    // ExSPIN keeps exactly the generations the executor judged not correct.
    let e = run_in_process(small(Mode::Exspin), &tmp.path().join("e"));
    assert_no_duplicates(&e);
    let correct = e.verdicts.get("correct").copied().unwrap_or(0);
    assert!(
        correct > 0 && correct < e.samples_judged,
        "{:?}",
        e.verdicts
    );
    assert_eq!(e.pairs_trained as u64, e.samples_judged - correct);
    let lines = std::fs::read_to_string(tmp.path().join("e/metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, e.steps);

    // GRPO trains a prompt's generations together, all of them, only when their rewards differ
    // (with 2 samples: advantages +1 and -1), each once.
    let g = run_in_process(small(Mode::Grpo), &tmp.path().join("g"));
    assert_no_duplicates(&g);
    assert!(
        g.pairs_trained > 0 && (g.pairs_trained as u64) < g.samples_judged,
        "{g:?}"
    );
    let mut by_prompt: std::collections::BTreeMap<String, usize> = Default::default();
    for id in &g.samples_trained_ids {
        *by_prompt
            .entry(id.rsplit_once('#').unwrap().0.to_string())
            .or_default() += 1;
    }
    assert!(by_prompt.values().all(|&n| n == 2), "{by_prompt:?}");
}

#[test]
fn panicking_each_actor_once_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Spin);
    c.run.faults = [
        "prompt_builder:3",
        "opponent:4",
        "executor:3",
        "replay:6",
        "trainer:2",
        "evaluator:0",
    ]
    .map(|f| f.parse().unwrap())
    .to_vec();
    c.validate().unwrap();
    let s = run_in_process(c.clone(), tmp.path());
    assert_spin_complete(&s, &c);
    assert_eq!(s.restarts, 6, "{:?}", s.restarts_by_actor);
    assert!(
        s.restarts_by_actor.values().all(|&n| n == 1),
        "{:?}",
        s.restarts_by_actor
    );
    assert_eq!(s.dev_ex_per_round.len(), 2);
}

/// The one-machine simulation of data-parallel generators: several opponent actors share one
/// version stream, each asking for prompts against its own credits.
#[test]
fn several_generators_train_the_same_samples_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let one = run_in_process(small(Mode::Exspin), &tmp.path().join("one"));
    let mut c = small(Mode::Exspin);
    c.run.generators = 3;
    c.validate().unwrap();
    let three = run_in_process(c.clone(), &tmp.path().join("three"));
    assert_no_duplicates(&three);
    assert_bounds(&three);
    assert_eq!(
        sorted(&three.samples_trained_ids),
        sorted(&one.samples_trained_ids),
        "same seed, same trained samples whichever opponent generated them"
    );
    let correct = three.verdicts.get("correct").copied().unwrap_or(0);
    assert_eq!(three.pairs_trained as u64, three.samples_judged - correct);
    assert_eq!(three.samples_by_opponent.len(), 3, "{three:?}");
    assert!(
        three.samples_by_opponent.iter().all(|&n| n > 0),
        "every opponent generated: {:?}",
        three.samples_by_opponent
    );
    assert_eq!(
        three.samples_by_opponent.iter().sum::<u64>(),
        three.samples_generated
    );
    assert_eq!(one.samples_by_opponent, vec![one.samples_generated]);
    // Generated tokens (the fake's: whitespace-separated SQL pieces) are the same samples' count.
    assert!(one.generated_tokens >= 4 * one.samples_generated, "{one:?}");
    assert_eq!(three.generated_tokens, one.generated_tokens);
    assert!(three.generated_tokens_per_s.is_some_and(|r| r > 0.0));
    let metrics = std::fs::read_to_string(tmp.path().join("three/metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert!(last["generated_tokens"].as_u64().unwrap() > 0, "{last}");
    assert!(last["generated_tokens_per_s"].as_f64().is_some(), "{last}");
    // One line per closed round, in order, its pair count the summary's at the last.
    let rounds: Vec<serde_json::Value> =
        std::fs::read_to_string(tmp.path().join("three/rounds.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(rounds.len() as u64, three.rounds, "{rounds:?}");
    for (k, r) in rounds.iter().enumerate() {
        assert_eq!(r["round"], k as u64, "{r}");
        assert_eq!(r["version"], k as u64 + 1, "{r}");
    }
    let pairs = |r: &serde_json::Value| r["pairs_trained"].as_u64().unwrap();
    assert!(rounds.windows(2).all(|w| pairs(&w[0]) <= pairs(&w[1])));
    assert_eq!(pairs(rounds.last().unwrap()), three.pairs_trained as u64);
    if cfg!(target_os = "linux") {
        assert!(
            rounds
                .iter()
                .all(|r| r["peak_rss_bytes"].as_u64() > Some(0)),
            "{rounds:?}"
        );
    }

    // Spin trains every sample: each exactly once, over three opponents.
    let mut s = small(Mode::Spin);
    s.run.generators = 3;
    let spin = run_in_process(s.clone(), &tmp.path().join("spin"));
    assert_spin_complete(&spin, &s);
}

#[test]
fn several_generators_with_a_panicking_opponent_still_train_each_sample_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Spin);
    c.run.generators = 3;
    c.run.rounds = 3;
    // The 8th message any opponent handles (mid-run: after the first round's prompts).
    c.run.faults = vec!["opponent:7".parse().unwrap()];
    c.validate().unwrap();
    let s = run_in_process(c.clone(), tmp.path());
    assert_spin_complete(&s, &c);
    assert_eq!(s.restarts_by_actor.get("opponent"), Some(&1), "{s:?}");
    assert_eq!(s.restarts, 1);
    assert!(s.samples_by_opponent.iter().all(|&n| n > 0), "{s:?}");

    // The other schedules with three opponents and the same fault.
    for schedule in [RoundSchedule::Async, RoundSchedule::Phased] {
        let mut o = c.clone();
        o.run.schedule = schedule;
        o.validate().unwrap();
        let s = run_in_process(o.clone(), &tmp.path().join(format!("{schedule:?}")));
        assert_spin_complete(&s, &o);
        assert_eq!(s.restarts, 1, "{schedule:?}: {:?}", s.restarts_by_actor);
        assert!(s.max_staleness <= o.run.staleness, "{schedule:?}");
    }
}

/// DPO's reference is the frozen version 0; SPIN's and ExSPIN's is the opponent θt. The fake's
/// log-probs depend on the version that scores them, and the summary counts the trained pairs by
/// the version of their reference.
#[test]
fn dpo_scores_against_version_0_and_exspin_against_the_opponent() {
    let tmp = tempfile::tempdir().unwrap();
    let mut counts = Vec::new();
    for mode in [Mode::Dpo, Mode::Exspin, Mode::Spin] {
        let mut c = small(mode);
        c.run.rounds = 3;
        let s = run_in_process(c, &tmp.path().join(format!("{mode:?}")));
        let by_ref: Vec<(u64, u64)> = s
            .pairs_by_reference_version
            .iter()
            .map(|(v, n)| (*v, *n))
            .collect();
        assert_eq!(
            by_ref.iter().map(|(_, n)| n).sum::<u64>(),
            s.pairs_trained as u64,
            "{mode:?}"
        );
        counts.push((mode, by_ref));
    }
    let versions = |i: usize| -> Vec<u64> { counts[i].1.iter().map(|(v, _)| *v).collect() };
    assert_eq!(versions(0), [0], "DPO: {:?}", counts[0]);
    assert_eq!(versions(1), [0, 1, 2], "ExSPIN: {:?}", counts[1]);
    assert_eq!(versions(2), [0, 1, 2], "SPIN: {:?}", counts[2]);
}

#[test]
fn continued_sft_that_follows_a_run_trains_exactly_its_samples_without_generating() {
    let tmp = tempfile::tempdir().unwrap();
    let mut e = small(Mode::Exspin);
    e.run.rounds = 3;
    let exspin = run_in_process(e.clone(), &tmp.path().join("exspin"));
    let correct = exspin.verdicts.get("correct").copied().unwrap_or(0);
    assert!(
        correct > 0,
        "some generations are filtered: {:?}",
        exspin.verdicts
    );

    let mut c = e.clone();
    c.run.mode = Mode::Sft;
    c.run.follow = Some("../exspin".into());
    c.validate().unwrap();
    let sft = run_in_process(c.clone(), &tmp.path().join("sft"));
    assert_no_duplicates(&sft);
    let sorted = |s: &Summary| {
        let mut ids = s.samples_trained_ids.clone();
        ids.sort();
        ids
    };
    assert_eq!(
        sorted(&sft),
        sorted(&exspin),
        "the same samples, round by round"
    );
    assert_eq!((sft.samples_generated, sft.samples_judged), (0, 0));
    assert_eq!(sft.rounds, 3);
    assert_eq!(sft.dev_ex_per_round.len(), 3);

    // Another seed draws other prompts: refused before anything runs, with the fix.
    let mut other = c.clone();
    other.run.seed += 1;
    let text = toml::to_string(&other).unwrap();
    let dir = tmp.path().join("other");
    std::fs::create_dir_all(&dir).unwrap();
    let err = format!("{:#}", Run::new(other, &text, &dir).err().unwrap());
    assert!(err.contains("the same data, run.seed"), "{err}");
    // A run that has not finished cannot be followed.
    let summary = tmp.path().join("exspin/summary.json");
    let unfinished = std::fs::read_to_string(&summary)
        .unwrap()
        .replace("\"finished\":true", "\"finished\":false")
        .replace("\"finished\": true", "\"finished\": false");
    std::fs::write(&summary, unfinished).unwrap();
    let text = toml::to_string(&c).unwrap();
    let dir = tmp.path().join("sft2");
    std::fs::create_dir_all(&dir).unwrap();
    let err = format!("{:#}", Run::new(c, &text, &dir).err().unwrap());
    assert!(err.contains("has not finished"), "{err}");
}

/// Trained ids go to RUN/trained_ids.txt; memory keeps only the last two rounds' ids.
#[test]
fn trained_ids_live_in_a_file_and_memory_keeps_two_rounds() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Spin);
    c.run.rounds = 5;
    let text = toml::to_string(&c).unwrap();
    let end = drive_to_end(Run::new(c.clone(), &text, tmp.path()).unwrap());
    let s = &end.summary;
    assert_spin_complete(s, &c);
    let file =
        std::fs::read_to_string(tmp.path().join(exspin_actors::state::ledger::FILE)).unwrap();
    let lines: Vec<String> = file.lines().map(String::from).collect();
    assert_eq!(lines, s.samples_trained_ids, "the file is the ordered list");
    let j = &end.journal;
    assert_eq!(j.trained_count as usize, s.pairs_trained);
    let per_round = c.run.prompts_per_round * c.run.samples_per_prompt;
    assert!(
        j.ids_in_memory() <= 2 * per_round,
        "{} ids in memory after {} rounds",
        j.ids_in_memory(),
        c.run.rounds
    );
    assert!(
        j.is_trained(&s.samples_trained_ids[0]),
        "old rounds count as trained"
    );

    // The per-stage progress bars (hidden here) counted every stage.
    use exspin_actors::config::Stage;
    let p = |stage| end.processed[&stage];
    let prompts = c.run.rounds * c.run.prompts_per_round as u64;
    assert_eq!(p(Stage::PromptBuilder), prompts);
    assert_eq!(p(Stage::Opponent), s.samples_generated);
    assert_eq!(p(Stage::Executor), s.samples_judged);
    assert_eq!(p(Stage::Trainer), s.pairs_trained as u64);
    assert_eq!(p(Stage::Evaluator), c.run.rounds);
}

/// summary.json gets a version's dev EX as soon as its evaluation ends, while the next round is
/// still training (what `exspin experiment --report-only` reads during a long real-model round),
/// not at that round's close.
#[test]
fn summary_takes_a_versions_dev_ex_before_the_next_round_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Spin);
    // The evaluation of version 1 (0.3 s) ends well inside round 1 (6 steps of 0.25 s), and
    // well after round 0's close wrote the summary.
    fake(&mut c).step_ms = 250;
    fake(&mut c).evaluate_ms = 300;
    let text = toml::to_string(&c).unwrap();
    let dir = tmp.path().to_path_buf();
    let run = Run::new(c, &text, &dir).unwrap();
    let driver = std::thread::spawn(move || drive_in_process(run));
    let closed_rounds =
        || std::fs::read_to_string(dir.join("rounds.jsonl")).map_or(0, |t| t.lines().count());
    let t = Instant::now();
    let seen = loop {
        let summary = std::fs::read(dir.join("summary.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Summary>(&b).ok());
        if let Some(s) = summary.filter(|s| !s.dev_ex_per_round.is_empty()) {
            break (s, closed_rounds());
        }
        assert!(!driver.is_finished(), "the run ended first");
        assert!(t.elapsed() < Duration::from_secs(120), "no dev EX in time");
        std::thread::sleep(Duration::from_millis(5));
    };
    let (summary, closed) = seen;
    assert_eq!(
        (summary.dev_ex_per_round.len(), summary.finished, closed),
        (1, false, 1),
        "version 1's EX with round 1 still open"
    );
    let end = driver.join().unwrap();
    assert_eq!(end.dev_ex_per_round[0], summary.dev_ex_per_round[0]);
    assert_eq!(closed_rounds(), 2);
}

#[test]
fn every_config_file_loads_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let is_experiment = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("experiment"));
        if is_experiment {
            // An experiment file: it and every job config it derives must validate.
            use exspin_actors::experiment::{config::ExperimentConfig, runner};
            let (exp, base) = ExperimentConfig::load(&path)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            runner::plan(&exp, &std::fs::read_to_string(base).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        } else if path.extension().is_some_and(|e| e == "toml") {
            // A GPU config (model.device = "cuda") parses everywhere, and validates where the
            // binary has CUDA; elsewhere it must fail with the fix, and only for that.
            let parsed: JobConfig = toml::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            if parsed.model.device != DeviceSpec::Cpu && !exspin_actors::config::CUDA_BUILT {
                let msg = format!("{:#}", JobConfig::load(&path).unwrap_err());
                assert!(msg.contains("--features cuda"), "{}: {msg}", path.display());
                let mut cpu = parsed.clone();
                cpu.model.device = DeviceSpec::Cpu;
                cpu.model.dtype = WeightDType::F32;
                cpu.validate()
                    .unwrap_or_else(|e| panic!("{} on the CPU: {e:#}", path.display()));
            } else {
                JobConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            }
            n += 1;
        }
    }
    assert!(n >= 1, "no config in {}", dir.display());
    let bad: Result<JobConfig, _> =
        toml::from_str("[data]\n[run]\nrounds = 2\nround = 3\n[model]\n");
    assert!(
        bad.unwrap_err().to_string().contains("round"),
        "unknown fields are refused"
    );
    let mut c = small(Mode::Spin);
    c.run.replay_capacity = 1;
    c.run.train_batch = 4;
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("run.replay_capacity (1)"), "{msg}");
    let mut c = small(Mode::Spin);
    c.run.generators = 0;
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("run.generators must be at least 1"), "{msg}");
}

/// `config` as TOML with `[section] key = value` set (or removed with `None`), loaded from a file
/// the way `exspin run` loads it: the error text, or the config.
fn load_with(
    config: &JobConfig,
    edits: &[(&str, &str, Option<toml::Value>)],
) -> Result<JobConfig, String> {
    let mut table: toml::Table = toml::from_str(&toml::to_string(config).unwrap()).unwrap();
    for (section, key, value) in edits {
        let section = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .unwrap();
        match value {
            Some(v) => section.insert(key.to_string(), v.clone()),
            None => section.remove(*key),
        };
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("job.toml");
    std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
    JobConfig::load(&path)
        .map(|(c, _)| c)
        .map_err(|e| format!("{e:#}"))
}

fn text(s: &str) -> Option<toml::Value> {
    Some(toml::Value::String(s.into()))
}

#[test]
fn a_bad_value_names_the_file_the_key_and_the_allowed_values() {
    let c = small(Mode::Spin);
    let msg = load_with(&c, &[("model", "kind", text("big"))]).unwrap_err();
    assert!(
        msg.contains("job.toml")
            && msg.contains("kind")
            && msg.contains("big")
            && msg.contains("fake")
            && msg.contains("pretrained"),
        "{msg}"
    );
    let msg = load_with(&c, &[("model", "schema", text("fancy"))]).unwrap_err();
    assert!(
        msg.contains("schema") && msg.contains("integrated") && msg.contains("plain"),
        "{msg}"
    );
    let msg = load_with(&c, &[("data", "source", text("bird"))]).unwrap_err();
    assert!(
        msg.contains("source") && msg.contains("synthetic") && msg.contains("spider"),
        "{msg}"
    );
    let msg = load_with(&c, &[("run", "schedule", text("eager"))]).unwrap_err();
    assert!(
        msg.contains("schedule") && msg.contains("strict") && msg.contains("phased"),
        "{msg}"
    );
    let msg = load_with(&c, &[("run", "mode", text("ppo"))]).unwrap_err();
    assert!(msg.contains("mode") && msg.contains("exspin"), "{msg}");
    let faults = Some(toml::Value::Array(vec![toml::Value::String(
        "nobody:1".into(),
    )]));
    let msg = load_with(&c, &[("run", "faults", faults)]).unwrap_err();
    assert!(
        msg.contains("faults") && msg.contains("prompt_builder, opponent, executor"),
        "{msg}"
    );
    let msg = load_with(&c, &[("model", "dtype", text("f16"))]).unwrap_err();
    assert!(msg.contains("dtype") && msg.contains("bf16"), "{msg}");
    // A source holds only the fields it reads: a field of another kind is refused, by name.
    let msg = load_with(&c, &[("model", "shape", text("qwen2-30m"))]).unwrap_err();
    assert!(
        msg.contains("model.shape") && msg.contains("\"random\""),
        "{msg}"
    );
    let msg = load_with(
        &c,
        &[
            ("model", "kind", text("pretrained")),
            ("model", "fake_p0", None),
            ("model", "fake_p_step", None),
            ("model", "fake_step_ms", None),
            ("model", "fake_generate_ms", None),
        ],
    )
    .unwrap_err();
    assert!(msg.contains("needs model.path"), "{msg}");
    let msg = load_with(&c, &[("data", "path", text("/tmp/spider"))]).unwrap_err();
    assert!(msg.contains("data.path is only read with"), "{msg}");
    // The typed values survive a round trip through TOML (the run folder's config.toml).
    let back: JobConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

// ---- the binary: kill -9, SIGTERM, resume, refusals ----

fn exspin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_exspin"));
    c.env_remove("EXSPIN_FAULT");
    c
}

fn slow_config(dir: &Path) -> PathBuf {
    let mut c = small(Mode::Spin);
    c.run.rounds = 3;
    c.run.prompts_per_round = 12;
    c.run.train_batch = 2;
    c.run.replay_capacity = 4;
    c.run.checkpoint_every = 3;
    fake(&mut c).step_ms = 40;
    let path = dir.join("slow.toml");
    std::fs::write(&path, toml::to_string(&c).unwrap()).unwrap();
    path
}

fn read_summary(run: &Path) -> Summary {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

/// `exspin run` of `config` (written beside `run`) into `run`, its stderr piped.
fn spawn_run(config: &JobConfig, run: &Path) -> Child {
    let cfg = run.with_extension("toml");
    std::fs::write(&cfg, toml::to_string(config).unwrap()).unwrap();
    exspin()
        .arg("run")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(run)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, child: &mut Child, cond: impl Fn() -> bool) {
    wait_for_within(what, 60, child, cond)
}

fn wait_for_within(what: &str, secs: u64, child: &mut Child, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {what}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_checkpoint(run: &Path) -> bool {
    exspin_actors::state::checkpoint::list(run).is_ok_and(|l| !l.is_empty())
}

fn check_ok(out: std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    err
}

/// `exspin resume RUN --rounds N` gives a finished run more rounds: it goes on from the finished
/// run's last checkpoint (the start of the round after its last), trains each new sample once and
/// nothing again, and ends where a run started with N rounds ends. Lowering is refused, and the
/// old config's checkpoints stay resumable through the lineage.
#[test]
fn a_finished_run_given_more_rounds_goes_on_without_training_anything_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Spin);
    c.run.checkpoint_every = 3;
    c.run.keep_checkpoints = 20;
    let cfg = tmp.path().join("two.toml");
    std::fs::write(&cfg, toml::to_string(&c).unwrap()).unwrap();
    let run = tmp.path().join("ext");
    check_ok(
        exspin()
            .arg("run")
            .arg(&cfg)
            .arg("--run-dir")
            .arg(&run)
            .output()
            .unwrap(),
    );
    let two = read_summary(&run);
    assert!(two.finished && two.rounds == 2, "{two:?}");
    // The finished run's checkpoint: round 2 begins at it, after every step of the two rounds.
    let (_, meta) = exspin_actors::state::checkpoint::read_latest(&run).unwrap();
    assert_eq!((meta.round, meta.step), (2, two.steps), "{meta:?}");
    // Resuming it as it is trains nothing.
    check_ok(exspin().arg("resume").arg(&run).output().unwrap());
    assert_eq!(
        read_summary(&run).samples_trained_ids,
        two.samples_trained_ids
    );

    let err = exspin()
        .args(["resume", run.to_str().unwrap(), "--rounds", "1"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(msg.contains("can only be given more rounds"), "{msg}");

    let said = check_ok(
        exspin()
            .args(["resume", run.to_str().unwrap(), "--rounds", "3"])
            .output()
            .unwrap(),
    );
    assert!(said.contains("run.rounds raised from 2 to 3"), "{said}");
    let three = read_summary(&run);
    let mut c3 = c.clone();
    c3.run.rounds = 3;
    assert!(three.finished && three.rounds == 3, "{three:?}");
    assert_spin_complete(&three, &c3);
    assert_eq!(three.dev_ex_per_round.len(), 3, "{three:?}");
    // Round 0 and 1's samples are the two-round run's, each trained once: none again.
    assert!(
        two.samples_trained_ids
            .iter()
            .all(|id| three.samples_trained_ids.contains(id))
    );
    // The same samples as a run started with three rounds.
    let full = run_in_process(c3.clone(), &tmp.path().join("full"));
    assert_eq!(
        sorted(&three.samples_trained_ids),
        sorted(&full.samples_trained_ids)
    );
    assert_eq!(three.steps, full.steps);
    // One metrics line per step, in order, none repeated.
    let steps: Vec<u64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=three.steps).collect::<Vec<_>>());
    // The config says 3 rounds now; a checkpoint from under the 2-round config still resumes.
    let (now, _) = JobConfig::load(&run.join("config.toml")).unwrap();
    assert_eq!(now.run.rounds, 3);
    let ckpts = exspin_actors::state::checkpoint::list(&run).unwrap();
    let older = ckpts
        .iter()
        .find(|d| exspin_actors::state::checkpoint::read(d).unwrap().round == 1)
        .expect("a checkpoint of round 1");
    assert_ne!(
        exspin_actors::state::checkpoint::read(older)
            .unwrap()
            .config_hash,
        exspin_actors::state::checkpoint::read(ckpts.last().unwrap())
            .unwrap()
            .config_hash
    );
    for later in ckpts.iter().filter(|d| *d > older) {
        std::fs::remove_dir_all(later).unwrap();
    }
    check_ok(exspin().arg("resume").arg(&run).output().unwrap());
    let again = read_summary(&run);
    assert!(again.finished, "{again:?}");
    assert_no_duplicates(&again);
    assert_eq!(
        sorted(&again.samples_trained_ids),
        sorted(&full.samples_trained_ids)
    );
}

/// A run whose stderr is not a terminal (a log file) writes plain progress lines with every
/// stage's count instead of drawing bars, at most once an interval: none in a short run at the
/// default minute, one at every count at an interval of 0.
#[test]
fn a_run_without_a_terminal_logs_plain_progress_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Spin);
    c.run.rounds = 1;
    let cfg = tmp.path().join("spin.toml");
    std::fs::write(&cfg, toml::to_string(&c).unwrap()).unwrap();
    let run = |dir: &str, every: Option<&str>| {
        let mut cmd = exspin();
        cmd.arg("run")
            .arg(&cfg)
            .arg("--run-dir")
            .arg(tmp.path().join(dir))
            .env_remove("EXSPIN_PROGRESS_EVERY_S");
        if let Some(e) = every {
            cmd.env("EXSPIN_PROGRESS_EVERY_S", e);
        }
        let err = check_ok(cmd.output().unwrap());
        err.lines()
            .filter(|l| l.starts_with("progress ("))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run("quiet", None),
        Vec::<String>::new(),
        "a short run, no line"
    );
    let lines = run("chatty", Some("0"));
    let total = c.run.prompts_per_round * c.run.samples_per_prompt;
    // The lines follow the run: the trainer's count only grows, through several values.
    let trained: Vec<usize> = lines
        .iter()
        .map(|l| {
            let at = l.find("pairs trained ").expect(l) + "pairs trained ".len();
            l[at..].split('/').next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(trained.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    let mut distinct = trained.clone();
    distinct.dedup();
    assert!(distinct.len() > 2, "{lines:?}");
    for needle in [
        format!("prompts issued {0}/{0}", c.run.prompts_per_round),
        format!("generated {total}/{total}"),
        format!("judged {total}/{total}"),
        format!("pairs trained {total}/{total}"),
        "dev evaluated 1/1".to_string(),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(&needle)),
            "{needle:?} in none of {lines:?}"
        );
    }
}

/// A failure a restart does not cure (`replay:*`: the replay buffer panics at every message)
/// ends the run within `run.max_restarts` per `run.restart_window_s`: non-zero exit, an error
/// naming the actor and its panic, a checkpoint; fixed (no fault), `exspin resume` trains every
/// sample exactly once.
#[test]
fn a_failure_past_the_restart_budget_stops_the_run_with_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Spin);
    c.run.max_restarts = 2;
    c.run.restart_window_s = 300;
    let cfg = tmp.path().join("budget.toml");
    std::fs::write(&cfg, toml::to_string(&c).unwrap()).unwrap();
    let run = tmp.path().join("run");
    let started = Instant::now();
    let out = exspin()
        .args(["run", cfg.to_str().unwrap(), "--run-dir"])
        .arg(&run)
        .env("EXSPIN_FAULT", "replay:*")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "giving up took {:?}",
        started.elapsed()
    );
    assert!(
        err.contains("the replay actor failed 3 times") && err.contains("injected fault: replay"),
        "{err}"
    );
    assert!(err.contains("run.max_restarts = 2"), "{err}");
    assert!(has_checkpoint(&run), "{err}");
    let s = read_summary(&run);
    assert!(!s.finished);
    assert_eq!(s.restarts_by_actor.get("replay"), Some(&2), "{s:?}");

    let resumed = check_ok(exspin().arg("resume").arg(&run).output().unwrap());
    let s = read_summary(&run);
    assert!(s.finished, "{resumed}");
    assert_spin_complete(&s, &c);
}

/// A second Ctrl-C does not wait for a long step: the run exits at once (130), and resume still
/// trains every sample exactly once from the last checkpoint.
/// A stop during a dev pass exits once the checkpoint is written, without waiting for the pass
/// (a real model's takes a quarter of an hour); the resumed run evaluates that version again.
#[test]
fn a_stop_during_a_dev_pass_exits_at_once_and_resume_evaluates_that_version() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Spin);
    c.run.checkpoint_every = 1;
    fake(&mut c).evaluate_ms = 6000;
    let run = tmp.path().join("run");
    let mut child = spawn_run(&c, &run);
    // Round 0 closed: version 1's dev pass (6 s) has started.
    wait_for("round 0's close", &mut child, || {
        std::fs::read_to_string(run.join("rounds.jsonl")).is_ok_and(|t| t.lines().count() == 1)
    });
    let asked = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let waited = asked.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stopped; checkpoint"), "{err}");
    assert!(
        waited < Duration::from_secs(4),
        "the stop waited {waited:?} for the dev pass"
    );
    assert!(read_summary(&run).dev_ex_per_round.is_empty());
    check_ok(exspin().arg("resume").arg(&run).output().unwrap());
    let s = read_summary(&run);
    assert!(s.finished);
    assert_spin_complete(&s, &c);
    assert_eq!(s.dev_ex_per_round.len(), 2, "{s:?}");
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_resume_still_trains_each_sample_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Spin);
    c.run.rounds = 1;
    c.run.prompts_per_round = 4;
    c.run.train_batch = 4;
    c.run.replay_capacity = 8;
    c.run.checkpoint_every = 1;
    // Two train steps of 3 s each: waiting for the second would show in the exit time.
    fake(&mut c).step_ms = 3000;
    let run = tmp.path().join("run");
    let mut child = spawn_run(&c, &run);
    wait_for("a checkpoint", &mut child, || has_checkpoint(&run));
    let pid = child.id().to_string();
    let interrupt = || {
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    interrupt();
    std::thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    interrupt();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        second.elapsed() < Duration::from_millis(2500),
        "the second Ctrl-C waited {:?} for the step",
        second.elapsed()
    );
    assert!(err.contains("second stop request"), "{err}");
    // The round's wall time goes on from the checkpoint's count: the step the exit cut short is
    // trained again after the resume, and counted once.
    let (_, meta) = exspin_actors::state::checkpoint::read_latest(&run).unwrap();
    let counted = meta
        .journal
        .round_seconds
        .expect("a fresh run counts its round's time");
    assert!(
        counted >= 3.0,
        "a step of 3 s came before the checkpoint: {counted}"
    );
    let resumed = Instant::now();
    check_ok(exspin().arg("resume").arg(&run).output().unwrap());
    let resume_wall = resumed.elapsed().as_secs_f64();
    let s = read_summary(&run);
    assert!(s.finished);
    assert_spin_complete(&s, &c);
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(run.join("rounds.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let round_seconds = line["round_seconds"].as_f64().unwrap();
    let pairs = (c.run.prompts_per_round * c.run.samples_per_prompt) as u64;
    let untrained_steps = (pairs - meta.journal.trained_count).div_ceil(c.run.train_batch as u64);
    assert!(
        round_seconds >= counted + 3.0 * untrained_steps as f64
            && round_seconds <= counted + resume_wall,
        "{round_seconds} s: {counted} s counted at the checkpoint, {untrained_steps} step(s) of \
         3 s after it, a resume of {resume_wall} s"
    );
}

#[test]
fn kill_9_sigterm_and_resume_give_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = slow_config(tmp.path());
    let run = |dir: &str| {
        let mut c = exspin();
        c.arg("run")
            .arg(&cfg)
            .arg("--run-dir")
            .arg(tmp.path().join(dir))
            .args(["--threads", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    let resume = |dir: &str| {
        exspin()
            .arg("resume")
            .arg(tmp.path().join(dir))
            .args(["--threads", "1"])
            .output()
            .unwrap()
    };

    // Uninterrupted baseline.
    check_ok(run("base").spawn().unwrap().wait_with_output().unwrap());
    let base = read_summary(&tmp.path().join("base"));
    assert!(base.finished);

    // kill -9 once a checkpoint exists, then resume.
    let killed = tmp.path().join("killed");
    let mut child = run("killed").spawn().unwrap();
    wait_for("a checkpoint", &mut child, || has_checkpoint(&killed));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The resume's plain progress lines count on from the checkpoint: the prompts it issues
    // again are not counted twice, and the count ends at the run's total.
    let err = check_ok(
        exspin()
            .arg("resume")
            .arg(&killed)
            .args(["--threads", "1"])
            .env("EXSPIN_PROGRESS_EVERY_S", "0")
            .output()
            .unwrap(),
    );
    let issued: Vec<u64> = err
        .lines()
        .filter_map(|l| l.split("prompts issued ").nth(1))
        .map(|rest| rest.split('/').next().unwrap().parse().unwrap())
        .collect();
    let total = 3 * 12;
    assert_eq!(issued.iter().max(), Some(&total), "{err}");
    let s = read_summary(&killed);
    assert!(s.finished);
    assert_eq!(s.samples_trained_ids, base.samples_trained_ids);
    assert_eq!(s.dev_ex_per_round, base.dev_ex_per_round);

    // SIGTERM: a checkpoint, then a clean exit; resume finishes the same run.
    let termed = tmp.path().join("termed");
    let mut child = run("termed").spawn().unwrap();
    let metrics = termed.join("metrics.jsonl");
    wait_for("two train steps", &mut child, || {
        std::fs::read_to_string(&metrics).is_ok_and(|t| t.lines().count() >= 2)
    });
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let err = check_ok(child.wait_with_output().unwrap());
    assert!(
        err.contains("checkpoint") && err.contains("exspin resume"),
        "{err}"
    );
    assert!(has_checkpoint(&termed));
    // Nothing is trained after the stop's checkpoint (a batch queued behind it stays in the
    // checkpoint's buffer): its step is the last line of metrics.jsonl.
    let (_, meta) = exspin_actors::state::checkpoint::read_latest(&termed).unwrap();
    let steps = std::fs::read_to_string(&metrics).unwrap().lines().count() as u64;
    assert_eq!(
        meta.step, steps,
        "steps trained after the stop's checkpoint"
    );
    assert!(!read_summary(&termed).finished);
    check_ok(resume("termed"));
    assert_eq!(
        read_summary(&termed).samples_trained_ids,
        base.samples_trained_ids
    );

    // A used run folder is refused without --overwrite.
    let out = run("base").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));

    // A changed config is refused on resume, with the reason.
    let cfg_copy = killed.join("config.toml");
    let original = std::fs::read_to_string(&cfg_copy).unwrap();
    std::fs::write(&cfg_copy, format!("{original}\n# edited\n")).unwrap();
    let out = resume("killed");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config"));
    std::fs::write(&cfg_copy, original).unwrap();

    // Changed data is refused on resume too.
    let dev = killed.join("data/dev.json");
    let original = std::fs::read_to_string(&dev).unwrap();
    std::fs::write(&dev, original.replacen("SELECT", "select", 1)).unwrap();
    let out = resume("killed");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dataset differs"));
    std::fs::write(&dev, original).unwrap();

    // A corrupt checkpoint is reported by name.
    let newest = exspin_actors::state::checkpoint::list(&killed)
        .unwrap()
        .pop()
        .unwrap();
    std::fs::write(newest.join("checkpoint.json"), b"{\"format\": 1, \"st").unwrap();
    let out = resume("killed");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt")
            && err.contains(&newest.file_name().unwrap().to_string_lossy().to_string()),
        "{err}"
    );
}

// ---- schedules, the Prometheus endpoint, the pipeline benchmark ----

use exspin_actors::config::RoundSchedule;

fn sorted(ids: &[String]) -> Vec<String> {
    let mut v = ids.to_vec();
    v.sort();
    v
}

#[test]
fn phased_and_async_schedules_train_every_pair_once() {
    let tmp = tempfile::tempdir().unwrap();
    let c = small(Mode::Spin);
    let strict = run_in_process(c.clone(), &tmp.path().join("strict"));
    assert_eq!((strict.max_staleness, strict.stale_pairs), (0, 0));

    // Phased: the same pairs; the barrier before training holds the whole round.
    let mut p = c.clone();
    p.run.schedule = RoundSchedule::Phased;
    p.validate().unwrap();
    let phased = run_in_process(p.clone(), &tmp.path().join("phased"));
    assert_spin_complete(&phased, &p);
    assert_bounds(&phased);
    assert_eq!(
        sorted(&phased.samples_trained_ids),
        sorted(&strict.samples_trained_ids)
    );
    let round = p.run.prompts_per_round * p.run.samples_per_prompt;
    assert_eq!(
        phased.queue_max.replay_pairs, round,
        "{:?}",
        phased.queue_max
    );
    assert!(strict.queue_max.replay_pairs <= c.run.replay_capacity);
    assert_eq!(phased.max_staleness, 0);

    // Async: the opponent runs ahead by at most `staleness` versions, nothing lost or repeated.
    let mut a = c.clone();
    a.run.schedule = RoundSchedule::Async;
    a.run.staleness = 1;
    a.run.rounds = 3;
    fake(&mut a).step_ms = 15;
    a.validate().unwrap();
    let asy = run_in_process(a.clone(), &tmp.path().join("async"));
    assert_spin_complete(&asy, &a);
    assert_bounds(&asy);
    assert_eq!(asy.rounds, 3);
    assert_eq!(
        asy.max_staleness, 1,
        "the opponent ran ahead by one version"
    );
    assert!(asy.stale_pairs > 0);
    assert_eq!(asy.dev_ex_per_round.len(), 3);

    // Async with every actor panicking once: still each sample exactly once, staleness bounded.
    let mut f = a.clone();
    f.run.faults = [
        "prompt_builder:3",
        "opponent:4",
        "executor:3",
        "replay:6",
        "trainer:2",
        "evaluator:0",
    ]
    .map(|f| f.parse().unwrap())
    .to_vec();
    let s = run_in_process(f.clone(), &tmp.path().join("async-faults"));
    assert_spin_complete(&s, &f);
    assert_eq!(s.restarts, 6, "{:?}", s.restarts_by_actor);
    assert!(s.max_staleness <= 1);

    // Phased with faults too (the executor gets one message per round there).
    p.run.faults = f.run.faults.clone();
    p.run.faults[2] = "executor:1".parse().unwrap();
    let s = run_in_process(p.clone(), &tmp.path().join("phased-faults"));
    assert_spin_complete(&s, &p);
    assert_eq!(s.restarts, 6, "{:?}", s.restarts_by_actor);

    let mut bad = c.clone();
    bad.run.schedule = RoundSchedule::Async;
    bad.run.staleness = 0;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("staleness")
    );
}

fn scrape(addr: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn prometheus_endpoint_serves_stage_metrics_during_the_run() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = small(Mode::Exspin);
    c.metrics.prometheus_port = port;
    fake(&mut c).step_ms = 30;
    c.run.rounds = 3;
    let a2 = addr.clone();
    let scraper = std::thread::spawn(move || {
        let t = Instant::now();
        // Until a scrape shows trained pairs (the recorder is installed when the run starts).
        loop {
            if let Ok(body) = scrape(&a2)
                && body.contains("exspin_pairs_trained_total ")
                && body.contains("exspin_queries_total ")
            {
                return body;
            }
            assert!(t.elapsed() < Duration::from_secs(50), "no scrape succeeded");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let s = run_in_process(c, tmp.path());
    assert!(s.finished);
    let body = scraper.join().unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(
        body.contains("Content-Type: text/plain; version=0.0.4"),
        "{body}"
    );
    for name in [
        "# TYPE exspin_pairs_trained_total counter",
        "# TYPE exspin_replay_held gauge",
        "exspin_samples_generated_total ",
        "exspin_prompts_issued_total ",
        "# TYPE exspin_generated_tokens_total counter",
        "exspin_generated_tokens_per_second ",
        "exspin_stage_busy_seconds{stage=\"executor\"} ",
        "exspin_train_step_seconds_bucket{le=\"+Inf\"} ",
        "exspin_verdicts_total{verdict=",
        "exspin_filter_rate ",
        "exspin_loss ",
    ] {
        assert!(body.contains(name), "{name} missing in:\n{body}");
    }
    // The endpoint closes with the run.
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "port still open"
    );
}

#[test]
fn bench_pipeline_runs_streaming_and_phased_on_the_same_job() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = small(Mode::Exspin);
    fake(&mut c).step_ms = 5;
    fake(&mut c).generate_ms = 2;
    let cfg = tmp.path().join("bench.toml");
    std::fs::write(&cfg, toml::to_string(&c).unwrap()).unwrap();
    let out = exspin()
        .args(["bench", "pipeline"])
        .arg(&cfg)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (s, p) = (&v["streaming"], &v["phased"]);
    assert_eq!(s["schedule"], "strict");
    assert_eq!(p["schedule"], "phased");
    assert_eq!(v["same_pairs"], true, "{v}");
    for r in [s, p] {
        assert_eq!(r["finished"], true);
        assert!(r["wall_s"].as_f64().unwrap() > 0.0);
        for stage in [
            "prompt_builder",
            "opponent",
            "executor",
            "trainer",
            "evaluator",
        ] {
            assert!(r["busy_s"][stage].as_f64().unwrap() > 0.0, "{stage}: {r}");
        }
        let h = r["exec_hidden_share"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&h));
    }
    let ratio = v["wall_ratio_streaming_over_phased"].as_f64().unwrap();
    let expect = s["wall_s"].as_f64().unwrap() / p["wall_s"].as_f64().unwrap();
    assert!((ratio - expect).abs() < 1e-9);
    assert_eq!(s["pairs_trained"], p["pairs_trained"]);
}

#[test]
fn async_kill_9_and_resume_train_every_sample_exactly_once() {
    // Samples held ahead of their round are not checkpointed: after the resume they are generated
    // again, and still each is trained once.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = slow_config(tmp.path());
    let mut c: JobConfig = toml::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    c.run.schedule = RoundSchedule::Async;
    c.run.staleness = 1;
    std::fs::write(&cfg, toml::to_string(&c).unwrap()).unwrap();
    let dir = tmp.path().join("async");
    let mut child = exspin()
        .arg("run")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a checkpoint", &mut child, || has_checkpoint(&dir));
    child.kill().unwrap();
    child.wait().unwrap();
    check_ok(exspin().arg("resume").arg(&dir).output().unwrap());
    let s = read_summary(&dir);
    assert!(s.finished);
    assert_spin_complete(&s, &c);
    assert!(s.max_staleness <= 1);
}

// ---- the real model ----

/// A tiny real model on a very small job with two generators: SFT, two ExSPIN rounds, then a
/// resume from the first checkpoint of that run.
fn tiny_real() -> JobConfig {
    let c: JobConfig = toml::from_str(
        r#"
        [data]
        synthetic_train = 40
        synthetic_dev = 12
        dev_limit = 8
        [run]
        mode = "exspin"
        rounds = 2
        prompts_per_round = 4
        samples_per_prompt = 2
        generate_batch = 4
        generators = 2
        train_batch = 2
        replay_capacity = 8
        checkpoint_every = 2
        keep_checkpoints = 10
        [model]
        kind = "tiny"
        schema = "plain"
        vocab_size = 300
        hidden_size = 32
        intermediate_size = 64
        layers = 1
        heads = 2
        kv_heads = 1
        max_new_tokens = 16
        lr = 1e-3
        [sft]
        steps = 6
        batch_size = 4
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    c
}

#[test]
fn model_device_and_dtype_are_validated_with_the_fix_in_words() {
    let c = tiny_real();
    let with = |device: &str, dtype: &str| {
        load_with(
            &c,
            &[
                ("model", "device", text(device)),
                ("model", "dtype", text(dtype)),
            ],
        )
        .err()
    };
    assert_eq!(with("cpu", "f32"), None);
    let nll = |w: f64| {
        load_with(
            &c,
            &[("model", "gold_nll_weight", Some(toml::Value::Float(w)))],
        )
    };
    assert!(nll(1.0).is_ok_and(|c| c.model.gold_nll_weight == 1.0));
    let msg = nll(-0.5).unwrap_err();
    assert!(
        msg.contains("model.gold_nll_weight = -0.5") && msg.contains(">= 0"),
        "{msg}"
    );
    // Defaults: the CPU in f32.
    let d = exspin_actors::config::ModelConfig::default();
    assert_eq!((d.device, d.dtype), (DeviceSpec::Cpu, WeightDType::F32));
    let msg = with("gpu", "f32").unwrap();
    assert!(msg.contains("device") && msg.contains("\"cuda\""), "{msg}");
    let msg = with("cuda:x", "f32").unwrap();
    assert!(msg.contains("cuda:N"), "{msg}");
    let msg = with("cpu", "f16").unwrap();
    assert!(msg.contains("dtype") && msg.contains("bf16"), "{msg}");
    let msg = with("cpu", "bf16").unwrap();
    assert!(msg.contains("needs model.device = \"cuda\""), "{msg}");
    if exspin_actors::config::CUDA_BUILT {
        assert_eq!(with("cuda", "bf16"), None);
        assert_eq!(with("cuda:1", "f32"), None);
    } else {
        for device in ["cuda", "cuda:1"] {
            // The run refuses at startup (JobConfig::load validates), with the fix.
            let msg = with(device, "bf16").unwrap();
            assert!(
                msg.contains("cargo build --release --features cuda")
                    && msg.contains("model.device = \"cpu\""),
                "{msg}"
            );
        }
    }
    // kind = "random" needs a known shape, and a BPE no larger than its vocabulary.
    let tiny_only = [
        ("model", "hidden_size", None),
        ("model", "intermediate_size", None),
        ("model", "layers", None),
        ("model", "heads", None),
        ("model", "kv_heads", None),
        ("model", "kind", text("random")),
    ];
    let msg = load_with(&c, &tiny_only).unwrap_err();
    assert!(
        msg.contains("model.shape") && msg.contains("qwen2.5-coder-1.5b"),
        "{msg}"
    );
    let mut edits = tiny_only.to_vec();
    edits.push(("model", "shape", text("qwen9")));
    let msg = load_with(&c, &edits).unwrap_err();
    assert!(msg.contains("\"qwen9\" is unknown"), "{msg}");
    edits.pop();
    edits.push(("model", "shape", text("qwen2-30m")));
    let random = load_with(&c, &edits).unwrap();
    assert_eq!(
        random.model.source,
        ModelSource::Random {
            shape: "qwen2-30m".into(),
            vocab_size: 300
        }
    );
    edits.push(("model", "vocab_size", Some(toml::Value::Integer(1_000_000))));
    let msg = load_with(&c, &edits).unwrap_err();
    assert!(msg.contains("must not exceed"), "{msg}");
}

/// `model.device = "cpu"` said out loud, and `model.kind = "random"` (a named shape): a tiny real
/// job runs to the end either way.
#[test]
fn a_tiny_real_run_with_an_explicit_cpu_device_and_a_random_shape_finishes() {
    for kind in ["tiny", "random"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(kind);
        let mut c = tiny_real();
        c.model.device = DeviceSpec::Cpu;
        c.model.dtype = WeightDType::F32;
        c.run.rounds = 1;
        c.run.generators = 1;
        c.sft.steps = 2;
        if kind == "random" {
            // ~31M parameters on the CPU: the smallest job that still trains a step.
            c.model.source = ModelSource::Random {
                shape: "qwen2-30m".into(),
                vocab_size: 300,
            };
            c.model.max_new_tokens = 8;
            c.run.prompts_per_round = 2;
            c.run.train_batch = 2;
            c.run.replay_capacity = 4;
            c.data.dev_limit = 2;
            c.sft.steps = 0;
        } else {
            // The tiny run's pair loss carries the gold NLL term; the random one's does not.
            c.model.gold_nll_weight = 0.5;
        }
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("device = \"cpu\""), "{text}");
        assert_eq!(
            text.contains("gold_nll_weight = 0.5"),
            kind == "tiny",
            "{text}"
        );
        std::fs::create_dir_all(&dir).unwrap();
        let run = Run::new(c.clone(), &text, &dir).unwrap();
        assert!(dir.join("weights/v0/model.safetensors").is_file());
        let s = drive_in_process(run);
        assert!(s.finished, "{kind}: {s:?}");
        assert!(s.steps > 0, "{kind}: {s:?}");
        assert!(
            s.trained_tokens > 0 && s.trained_tokens_per_s.is_some(),
            "{kind}: {s:?}"
        );
        assert!(s.generated_tokens > 0, "{kind}: {s:?}");
        // Every step logs the gold's implicit reward, and its NLL exactly when the loss has it.
        let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        for line in metrics.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["chosen_reward"].as_f64().is_some(), "{kind}: {v}");
            let nll = v.get("gold_nll").and_then(|x| x.as_f64());
            match kind {
                "tiny" => assert!(nll.is_some_and(|x| x > 0.0), "{kind}: {v}"),
                _ => assert_eq!(nll, None, "{kind}: {v}"),
            }
        }
    }
}

#[test]
fn a_run_starts_from_another_runs_version_0_only_when_its_sft_settings_match() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, c: &JobConfig| {
        let path = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml::to_string(c).unwrap()).unwrap();
        path
    };
    let mut a = tiny_real();
    a.run.rounds = 1;
    let (a_dir, b_dir, c_dir) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let a_cfg = write("a", &a);
    check_ok(
        exspin()
            .args(["run", a_cfg.to_str().unwrap(), "--run-dir"])
            .arg(&a_dir)
            .output()
            .unwrap(),
    );
    // Another mode and λ: the same version 0, copied, not trained again.
    let mut b = a.clone();
    b.run.mode = Mode::Spin;
    b.model.lambda = 0.5;
    let b_cfg = write("b", &b);
    let err = check_ok(
        exspin()
            .args(["run", b_cfg.to_str().unwrap(), "--run-dir"])
            .arg(&b_dir)
            .arg("--sft-from")
            .arg(&a_dir)
            .output()
            .unwrap(),
    );
    assert!(err.contains("version 0 copied"), "{err}");
    assert!(!err.contains("sft step"), "SFT ran again: {err}");
    for f in [
        "weights/v0/model.safetensors",
        "weights/v0/tokenizer.json",
        "sft.json",
    ] {
        assert_eq!(
            std::fs::read(a_dir.join(f)).unwrap(),
            std::fs::read(b_dir.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(read_summary(&b_dir).finished);
    // Another model size would train another version 0: refused, naming the reason.
    let mut c = a.clone();
    match &mut c.model.source {
        ModelSource::Tiny(t) => t.hidden_size = 48,
        other => panic!("not the tiny model: {other:?}"),
    }
    let c_cfg = write("c", &c);
    let out = exspin()
        .args(["run", c_cfg.to_str().unwrap(), "--run-dir"])
        .arg(&c_dir)
        .arg("--sft-from")
        .arg(&a_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SFT phase used other settings"), "{err}");
}

fn drive_in_process(run: Run) -> Summary {
    drive_to_end(run).summary
}

/// Drives a run in-process (two worker threads, five minutes at most) to its end.
fn drive_to_end(run: Run) -> RunEnd {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let end = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(300), run.drive(std::future::pending())).await
        })
        .expect("the run finishes")
        .unwrap();
    assert!(end.summary.finished, "{:?}", end.summary);
    end
}

#[test]
fn the_tiny_real_model_runs_sft_and_two_rounds_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("real");
    let c = tiny_real();
    let text = toml::to_string(&c).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let run = Run::new(c.clone(), &text, &dir).unwrap();
    assert!(dir.join("weights/v0/model.safetensors").is_file());
    assert!(dir.join("weights/v0/tokenizer.json").is_file());
    let sft: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sft.json")).unwrap()).unwrap();
    assert_eq!(sft["steps"], 6);
    let a = drive_in_process(run);
    let on_disk = read_summary(&dir);
    assert_eq!(on_disk.samples_trained_ids, a.samples_trained_ids);
    assert!(on_disk.finished);
    assert_eq!(a.rounds, 2);
    assert_no_duplicates(&a);
    assert!(a.pairs_trained > 0, "{a:?}");
    // Two real generators (two copies of the weights), both used.
    assert_eq!(a.samples_by_opponent.len(), 2, "{a:?}");
    assert!(a.samples_by_opponent.iter().all(|&n| n > 0), "{a:?}");
    // Generated tokens are the model's token ids: at least one per sample (EOS at the least),
    // at most max_new_tokens.
    assert!(
        a.generated_tokens >= a.samples_generated
            && a.generated_tokens <= a.samples_generated * c.model.max_new_tokens as u64,
        "{} tokens for {} samples",
        a.generated_tokens,
        a.samples_generated
    );
    assert_eq!(a.dev_ex_per_round.len(), 2);
    assert!(a.dev_ex_per_round.iter().all(|x| (0.0..=1.0).contains(x)));
    for v in 1..=2 {
        assert!(
            dir.join(format!("weights/v{v}/model.safetensors"))
                .is_file()
        );
    }
    assert!(dir.join("metrics.jsonl").is_file());

    // Resume from the earliest checkpoint (the later ones are removed): the run finishes again,
    // trains what came after the checkpoint, and keeps what came before.
    let mut ckpts = exspin_actors::state::checkpoint::list(&dir).unwrap();
    ckpts.sort();
    assert!(!ckpts.is_empty(), "no checkpoint written");
    for later in &ckpts[1..] {
        std::fs::remove_dir_all(later).unwrap();
    }
    let (_, meta) = exspin_actors::state::checkpoint::read_latest(&dir).unwrap();
    let before: Vec<String> =
        exspin_actors::state::ledger::read(&dir, meta.journal.trained_count).unwrap();
    std::fs::write(dir.join("config.toml"), &text).unwrap();
    let b = drive_in_process(Run::resume(&dir).unwrap());
    assert_eq!(b.rounds, 2);
    assert_no_duplicates(&b);
    assert_eq!(&b.samples_trained_ids[..before.len()], &before[..]);
    assert!(b.samples_trained_ids.len() > before.len());
    assert_eq!(b.dev_ex_per_round.len(), 2);

    // Continued SFT that follows this run: the real learner on exactly its samples, no opponent.
    let mut f = c.clone();
    f.run.mode = Mode::Sft;
    f.run.follow = Some("../real".into());
    let sft = run_in_process(f, &tmp.path().join("sft"));
    let sorted = |ids: &[String]| {
        let mut ids = ids.to_vec();
        ids.sort();
        ids
    };
    assert_eq!(
        sorted(&sft.samples_trained_ids),
        sorted(&b.samples_trained_ids)
    );
    assert_eq!((sft.samples_generated, sft.generated_tokens), (0, 0));
    assert!(sft.trained_tokens > 0, "{sft:?}");
    assert_eq!(sft.dev_ex_per_round.len(), 2);
}

/// SFT with a validation split held out of train: scored as it goes, version 0 is the best
/// scored model, and the held-out questions never become self-play prompts.
#[test]
fn sft_validation_is_held_out_of_train_and_picks_version_0() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("val");
    let mut c = tiny_real();
    c.run.rounds = 1;
    c.run.generators = 1;
    c.sft.validation = 6;
    c.sft.validate_every = 2;
    c.sft.patience = 2;
    c.validate().unwrap();
    let text = toml::to_string(&c).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let splits = exspin_actors::runtime::load_data(&c, &dir).unwrap();
    assert_eq!(splits.validation.len(), 6);
    let held: HashSet<String> = splits
        .validation
        .examples
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert!(splits.train.examples.iter().all(|e| !held.contains(&e.id)));
    let s = drive_in_process(Run::new(c.clone(), &text, &dir).unwrap());
    let sft: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sft.json")).unwrap()).unwrap();
    assert_eq!(sft["validation_questions"], 6, "{sft}");
    let scored: Vec<u64> = sft["validation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(scored[0], 0, "scored before the first step: {sft}");
    assert!(scored.windows(2).all(|w| w[1] == w[0] + 2), "{scored:?}");
    let best = sft["best_step"].as_u64().unwrap();
    assert!(scored.contains(&best), "{sft}");
    assert!(!s.samples_trained_ids.is_empty(), "{s:?}");
    assert!(
        s.samples_trained_ids
            .iter()
            .all(|id| !held.contains(id.split('#').next().unwrap()))
    );
}

/// A tiny real run for the interruption tests: one opponent (its order of work is then the same
/// in every run), a checkpoint every step, an SFT long enough to be interrupted.
fn tiny_interruptible(dir: &Path) -> PathBuf {
    let mut c = tiny_real();
    c.run.generators = 1;
    c.run.rounds = 3;
    c.run.prompts_per_round = 12;
    c.run.checkpoint_every = 1;
    c.sft.steps = 600;
    c.sft.log_every = 1;
    c.validate().unwrap();
    let path = dir.join("tiny.toml");
    std::fs::write(&path, toml::to_string(&c).unwrap()).unwrap();
    path
}

fn v0_bytes(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("weights/v0/model.safetensors")).unwrap()
}

/// SIGTERM during SFT writes an SFT checkpoint and exits 0; `exspin resume` continues SFT where
/// it stopped, and the run's version 0 and its rounds equal the uninterrupted run's. Then kill -9
/// during the self-play rounds and resume: the same trained ids in the same order and the same
/// dev EX per round (the real tiny model, bit-exact).
#[test]
fn the_tiny_real_model_resumes_sft_and_rounds_as_if_never_interrupted() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_interruptible(tmp.path());
    let run = |dir: &Path| {
        let mut c = exspin();
        c.args(["run", cfg.to_str().unwrap(), "--threads", "1", "--run-dir"])
            .arg(dir);
        c
    };
    let whole = tmp.path().join("whole");
    check_ok(run(&whole).output().unwrap());
    let a = read_summary(&whole);
    assert!(a.finished && a.pairs_trained > 0, "{a:?}");

    // SIGTERM during SFT.
    let stopped = tmp.path().join("sft-stopped");
    let mut child = run(&stopped).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.starts_with("sft step 20/") {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            break;
        }
    }
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("stopped during SFT after step"), "{log}");
    assert!(stopped.join("sft-checkpoint").is_dir(), "{log}");
    assert!(!stopped.join("weights/v0").exists(), "{log}");
    let resumed = check_ok(
        exspin()
            .args(["resume", "--threads", "1"])
            .arg(&stopped)
            .output()
            .unwrap(),
    );
    assert!(resumed.contains("resuming SFT"), "{resumed}");
    assert!(!stopped.join("sft-checkpoint").exists());
    assert!(v0_bytes(&stopped) == v0_bytes(&whole), "version 0 differs");
    let b = read_summary(&stopped);
    assert_eq!(b.samples_trained_ids, a.samples_trained_ids);
    assert_eq!(b.dev_ex_per_round, a.dev_ex_per_round);

    // kill -9 during the rounds.
    let killed = tmp.path().join("killed");
    let mut child = run(&killed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SFT and the dev passes come first.
    wait_for_within("a checkpoint of the rounds", 300, &mut child, || {
        has_checkpoint(&killed)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!read_summary_opt(&killed).is_some_and(|s| s.finished));
    check_ok(
        exspin()
            .args(["resume", "--threads", "1"])
            .arg(&killed)
            .output()
            .unwrap(),
    );
    let c = read_summary(&killed);
    assert_eq!(c.samples_trained_ids, a.samples_trained_ids);
    assert_eq!(c.dev_ex_per_round, a.dev_ex_per_round);
}

fn read_summary_opt(run: &Path) -> Option<Summary> {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).ok()?).ok()
}

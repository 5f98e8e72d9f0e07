//! The `exspin` command end to end: JSON on stdout, exit codes, the interface other tools use.

use std::path::Path;

mod common;
use common::exspin;

fn tiny_dataset(dir: &Path) -> std::path::PathBuf {
    let db_dir = dir.join("database").join("zoo");
    std::fs::create_dir_all(&db_dir).unwrap();
    make_zoo_db(&db_dir.join("zoo.sqlite"));
    let jsonl = dir.join("zoo.jsonl");
    std::fs::write(
        &jsonl,
        [
            r#"{"id": "a", "db_id": "zoo", "question": "How many animals?", "sql": "SELECT count(*) FROM animal"}"#,
            r#"{"id": "b", "db_id": "zoo", "question": "Names of cats?", "sql": "SELECT name FROM animal WHERE kind = 'cat'"}"#,
            r#"{"id": "c", "db_id": "lost", "question": "Anything?", "sql": "SELECT 1"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    jsonl
}

fn make_zoo_db(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE animal(id INTEGER PRIMARY KEY, name TEXT, kind TEXT);
         INSERT INTO animal VALUES (1, 'Tom', 'cat'), (2, 'Rex', 'dog'), (3, 'Kit', 'cat');",
    )
    .unwrap();
}

#[test]
fn sql_prints_typed_outcomes_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_dataset(tmp.path());
    let db = tmp.path().join("database/zoo/zoo.sqlite");
    let db = db.to_str().unwrap();
    let (code, out, _) = exspin(&[
        "sql",
        "--db",
        db,
        "SELECT name FROM animal ORDER BY id",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"], "rows");
    assert_eq!(v["rows"], serde_json::json!([["Tom"], ["Rex"], ["Kit"]]));
    for (sql, outcome) in [
        ("DELETE FROM animal", "rejected"),
        ("SELECT nope FROM animal", "error"),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
            "timeout",
        ),
    ] {
        let (code, out, _) = exspin(&["sql", "--db", db, sql, "--json", "--timeout", "0.3"]);
        assert_eq!(code, 1, "{sql}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["outcome"], outcome, "{sql}: {out}");
    }
    let (code, _, err) = exspin(&["sql", "--db", "/no/such.sqlite", "SELECT 1"]);
    assert_eq!(code, 1);
    assert!(err.contains("/no/such.sqlite"), "{err}");
}

#[test]
fn eval_writes_per_example_verdicts_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tiny_dataset(tmp.path());
    let preds = tmp.path().join("preds.txt");
    std::fs::write(
        &preds,
        "SELECT count(id) FROM animal\nSELECT name FROM animal\nSELECT 1\n",
    )
    .unwrap();
    let per = tmp.path().join("per.json");
    let (code, out, err) = exspin(&[
        "eval",
        "--jsonl",
        jsonl.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
        "--per-example",
        per.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["correct"], 1);
    assert_eq!(report["evaluable"], 2);
    assert_eq!(report["missing_databases"]["lost"], 1);
    let verdicts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&per).unwrap()).unwrap();
    assert_eq!(verdicts, serde_json::json!([true, false, null]));
    assert!(
        err.contains("lost"),
        "the missing database is reported: {err}"
    );
    // A predictions file with the wrong number of lines is refused with a clear message.
    std::fs::write(&preds, "SELECT 1\n").unwrap();
    let (code, _, err) = exspin(&[
        "eval",
        "--jsonl",
        jsonl.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("1 predictions for 3 examples"), "{err}");
}

#[test]
fn help_teaches_with_examples() {
    for cmd in [["eval", "--help"], ["sql", "--help"]] {
        let (code, out, _) = exspin(&cmd);
        assert_eq!(code, 0);
        assert!(out.contains("Example"), "{} --help has no example", cmd[0]);
    }
}

#[test]
fn experiment_runs_every_method_writes_the_report_and_skips_finished_runs_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/demo-fake.toml");
    let exp = dir.path().join("exp.toml");
    std::fs::write(
        &exp,
        format!(
            r#"base = {base:?}
set = {{ "run.rounds" = 1, "run.prompts_per_round" = 8, "run.checkpoint_every" = 0 }}
main = "ExSPIN"
ablations = ["SPIN"]
[[method]]
name = "ExSPIN"
set = {{ "run.mode" = "exspin" }}
[[method]]
name = "SPIN"
set = {{ "run.mode" = "spin" }}
[lambda_sweep]
method = "ExSPIN"
key = "model.fake_p_step"
values = [0.1, 0.6]
"#
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let (code, stdout, stderr) = exspin(&[
        "experiment",
        exp.to_str().unwrap(),
        "--out",
        out_s,
        "--threads",
        "1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("| ExSPIN |") && stdout.contains("| SPIN |"),
        "{stdout}"
    );
    // Each run's line says where its progress is written.
    let log = out.join("logs").join("exspin.log");
    assert!(
        stderr.contains(&format!("(its progress: {})", log.display())),
        "{stderr}"
    );
    assert!(log.is_file());
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for section in [
        "Table 3",
        "Tables 1/2",
        "Tables 6/7",
        "Figures 6/7",
        "Tables 8/9",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["methods"].as_array().unwrap().len(), 2);
    // Without `seeds`: one folder per method, named as before, one Wilson interval each.
    for slug in ["exspin", "spin"] {
        assert!(out.join("runs").join(slug).join("summary.json").is_file());
    }
    assert_eq!(
        results["method_stats"][0]["final_ex"]["ci95"]["kind"],
        "wilson-over-questions"
    );

    let sweep = results["lambda_sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 2);
    // The swept value reached the run: the fake opponent improves faster with a larger step.
    let last = |i: usize| {
        sweep[i][1]["dev_ex"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
    };
    assert!(last(1) > last(0), "{sweep:?}");
    for m in results["methods"].as_array().unwrap() {
        assert!(m["finished"].as_bool().unwrap(), "{m}");
        assert!(
            m["resources"]["peak_rss_bytes"].as_u64().unwrap() > 1 << 20,
            "{m}"
        );
    }

    let (code, _, stderr) = exspin(&["experiment", exp.to_str().unwrap(), "--out", out_s]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches("already finished").count(), 4, "{stderr}");

    // An edited experiment file changes every run's job config: the rerun refuses to start them
    // over (their folders would be discarded) until told to.
    let text = std::fs::read_to_string(&exp).unwrap();
    std::fs::write(
        &exp,
        text.replace(
            r#""run.prompts_per_round" = 8"#,
            r#""run.prompts_per_round" = 6"#,
        ),
    )
    .unwrap();
    let (code, _, stderr) = exspin(&["experiment", exp.to_str().unwrap(), "--out", out_s]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("changed since they were started") && stderr.contains("--restart-changed"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("(finished)").count(), 4, "{stderr}");
    let started_with = std::fs::read_to_string(out.join("runs/exspin/config.toml")).unwrap();
    assert!(started_with.contains("prompts_per_round = 8"), "untouched");
    let (code, _, stderr) = exspin(&[
        "experiment",
        exp.to_str().unwrap(),
        "--out",
        out_s,
        "--restart-changed",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches("already finished").count(), 0, "{stderr}");
    let restarted = std::fs::read_to_string(out.join("runs/exspin/config.toml")).unwrap();
    assert!(restarted.contains("prompts_per_round = 6"), "{restarted}");

    let (code, _, stderr) = exspin(&[
        "experiment",
        exp.to_str().unwrap(),
        "--out",
        out_s,
        "--only",
        "DPO",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no such method"), "{stderr}");

    let (code, _, stderr) = exspin(&[
        "experiment",
        exp.to_str().unwrap(),
        "--out",
        out_s,
        "--threads",
        "0",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--threads must be at least 1"), "{stderr}");
}

/// Ctrl-C reaches the experiment (the run is in its own process group, as a terminal would leave
/// it): the run in progress stops at a checkpoint, keeps its time, the next method does not
/// start, no process goes on alone; the same command then finishes with every sample trained
/// exactly once.
#[test]
fn experiment_stops_on_ctrl_c_at_a_checkpoint_and_the_same_command_finishes_it() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/demo-fake.toml");
    let exp = dir.path().join("exp.toml");
    let (rounds, prompts, samples) = (3, 12, 2);
    std::fs::write(
        &exp,
        format!(
            r#"base = {base:?}
set = {{ "run.rounds" = {rounds}, "run.prompts_per_round" = {prompts}, "run.samples_per_prompt" = {samples}, "run.train_batch" = 2, "run.replay_capacity" = 4, "run.checkpoint_every" = 3, "model.fake_step_ms" = 40 }}
main = "SPIN"
[[method]]
name = "SPIN"
set = {{ "run.mode" = "spin" }}
[[method]]
name = "ExSPIN"
set = {{ "run.mode" = "exspin" }}
"#
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let experiment = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_exspin"));
        c.arg("experiment")
            .arg(&exp)
            .arg("--out")
            .arg(&out)
            .args(["--threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    let spin = out.join("runs/spin");
    let steps =
        || std::fs::read_to_string(spin.join("metrics.jsonl")).map_or(0, |t| t.lines().count());
    let mut child = experiment().spawn().unwrap();
    let started = Instant::now();
    while steps() < 2 {
        assert!(child.try_wait().unwrap().is_none(), "ended before training");
        assert!(started.elapsed() < Duration::from_secs(60), "no train step");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&stopped.stderr);
    assert!(!stopped.status.success(), "{err}");
    assert!(err.contains("stopped on request during SPIN"), "{err}");
    // The run wrote a checkpoint and its summary on the way out, and its time was kept.
    let summary = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
    };
    assert_eq!(summary(&spin)["finished"], false);
    assert!(
        std::fs::read_dir(spin.join("checkpoints")).is_ok_and(|mut d| d.next().is_some()),
        "{err}"
    );
    let resources: serde_json::Value =
        serde_json::from_slice(&std::fs::read(spin.join("resources.json")).unwrap()).unwrap();
    assert!(resources["wall_s"].as_f64().unwrap() > 0.0, "{resources}");
    assert!(!out.join("runs/exspin").exists(), "the next method started");
    // Nothing trains on alone after the experiment has exited.
    let after = steps();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        steps(),
        after,
        "the run went on after the experiment stopped"
    );

    let done = experiment().output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(err.contains("SPIN: resumed and done"), "{err}");
    let s = summary(&spin);
    assert_eq!(s["finished"], true);
    let ids: Vec<&str> = s["samples_trained_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a sample trained twice");
    // SPIN pairs every generation: all of them, once.
    assert_eq!(ids.len(), rounds * prompts * samples);
    assert_eq!(summary(&out.join("runs/exspin"))["finished"], true);
    let resumed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(spin.join("resources.json")).unwrap()).unwrap();
    assert!(
        resumed["wall_s"].as_f64() > resources["wall_s"].as_f64(),
        "{resumed}"
    );

    // Raising `run.rounds` in the experiment file gives the finished runs another round: no
    // changed-config refusal, each run goes on from where it finished and trains only the new
    // round's samples, once.
    let text = std::fs::read_to_string(&exp).unwrap();
    let more = rounds + 1;
    std::fs::write(
        &exp,
        text.replace(
            &format!(r#""run.rounds" = {rounds}"#),
            &format!(r#""run.rounds" = {more}"#),
        ),
    )
    .unwrap();
    let extended = experiment().output().unwrap();
    let err = String::from_utf8_lossy(&extended.stderr);
    assert!(extended.status.success(), "{err}");
    assert!(err.contains("SPIN: given more rounds and done"), "{err}");
    let s = summary(&spin);
    assert_eq!(
        (s["finished"].as_bool(), s["rounds"].as_u64()),
        (Some(true), Some(more as u64))
    );
    let more_ids: Vec<&str> = s["samples_trained_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&&str> = more_ids.iter().collect();
    assert_eq!(unique.len(), more_ids.len(), "a sample trained twice");
    assert_eq!(more_ids.len(), more * prompts * samples);
    assert!(ids.iter().all(|id| more_ids.contains(id)));
    assert_eq!(summary(&out.join("runs/exspin"))["rounds"], more as u64);
    let again = experiment().output().unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert_eq!(err.matches("already finished").count(), 2, "{err}");
}

#[test]
fn experiment_with_seeds_runs_every_method_per_seed_once_and_reports_means_and_paired_tests() {
    let dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/demo-fake.toml");
    let exp = dir.path().join("exp.toml");
    std::fs::write(
        &exp,
        format!(
            r#"base = {base:?}
set = {{ "run.rounds" = 1, "run.prompts_per_round" = 8, "run.checkpoint_every" = 0 }}
seeds = [1, 2]
main = "ExSPIN"
[[method]]
name = "ExSPIN"
set = {{ "run.mode" = "exspin" }}
[[method]]
name = "SPIN"
set = {{ "run.mode" = "spin" }}
[lambda_sweep]
method = "ExSPIN"
key = "model.fake_p_step"
values = [0.6]
"#
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let args = ["experiment", exp.to_str().unwrap(), "--out", out_s];
    let (code, _, stderr) = exspin(&args);
    assert_eq!(code, 0, "{stderr}");
    // Each (method, seed) ran once, into its own folder, with its seed; the sweep with seed 1.
    let runs = out.join("runs");
    let mut signatures = std::collections::BTreeSet::new();
    for (slug, label, seed) in [
        ("exspin/seed-1", "ExSPIN (seed 1)", 1),
        ("exspin/seed-2", "ExSPIN (seed 2)", 2),
        ("spin/seed-1", "SPIN (seed 1)", 1),
        ("spin/seed-2", "SPIN (seed 2)", 2),
        ("lambda-0.6", "ExSPIN λ=0.6 (seed 1)", 1),
    ] {
        assert_eq!(
            stderr.matches(&format!("] {label}: done")).count(),
            1,
            "{slug}: {stderr}"
        );
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(runs.join(slug).join("summary.json")).unwrap())
                .unwrap();
        assert!(summary["finished"].as_bool().unwrap(), "{slug}");
        assert_eq!(summary["seed"], seed, "{slug}");
        let (config, _) =
            exspin_actors::config::JobConfig::load(&runs.join(slug).join("config.toml")).unwrap();
        assert_eq!(
            config.sft.seed,
            Some(7),
            "{slug}: the base's seed keeps seeding SFT"
        );
        // (The sweep changes a model setting of the fake, so it has a signature of its own.)
        if !slug.starts_with("lambda") {
            signatures.insert(config.sft_signature());
        }
    }
    assert_eq!(signatures.len(), 1, "every seed starts from one version 0");
    // The seed reached the run: the two seeds answer the dev questions differently.
    let dev =
        |slug: &str| std::fs::read_to_string(runs.join(slug).join("dev/round-1.jsonl")).unwrap();
    assert_ne!(dev("exspin/seed-1"), dev("exspin/seed-2"));

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["seeds"], serde_json::json!([1, 2]));
    assert_eq!(results["methods"].as_array().unwrap().len(), 4);
    let stats = results["method_stats"].as_array().unwrap();
    assert_eq!(stats.len(), 2);
    for m in stats {
        let fin = &m["final_ex"];
        assert_eq!(fin["runs"], 2, "{m}");
        let (mean, lo, hi) = (
            fin["mean"].as_f64().unwrap(),
            fin["ci95"]["lo"].as_f64().unwrap(),
            fin["ci95"]["hi"].as_f64().unwrap(),
        );
        assert!(lo <= mean && mean <= hi, "{m}");
        assert_eq!(fin["ci95"]["kind"], "t-over-seeds", "{m}");
        // One round, evaluated once (the fake has no SFT phase to evaluate).
        assert_eq!(m["per_round"].as_array().unwrap().len(), 1, "{m}");
    }
    let pairs = results["pairwise"].as_array().unwrap();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    let p = pairs[0]["p_value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{p}");
    // 40 dev questions in each of the two seeds.
    assert_eq!(pairs[0]["pairs"], 80);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("Seeds: 1, 2"), "{report}");
    assert!(report.contains("| ExSPIN | SPIN | 80 |"), "{report}");

    // A rerun skips every finished run; one seed whose run lost its finished marker runs again.
    std::fs::remove_file(runs.join("spin/seed-2/summary.json")).unwrap();
    let (code, _, stderr) = exspin(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches("already finished").count(), 4, "{stderr}");
    assert_eq!(
        stderr.matches("] SPIN (seed 2): done").count(),
        1,
        "{stderr}"
    );
    let (code, _, stderr) = exspin(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches("already finished").count(), 5, "{stderr}");
}

/// The real (tiny) model: the seeds of a method share one SFT phase. The first seed trains version
/// 0, the second copies it and differs only in its self-play round.
#[test]
fn experiment_seeds_share_one_sft_phase_on_the_tiny_real_model() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.toml"),
        r#"[data]
synthetic_train = 40
synthetic_dev = 12
dev_limit = 4
[run]
rounds = 1
prompts_per_round = 2
generate_batch = 2
generators = 1
train_batch = 2
replay_capacity = 8
checkpoint_every = 0
[model]
kind = "tiny"
schema = "plain"
vocab_size = 300
hidden_size = 32
intermediate_size = 64
layers = 1
heads = 2
kv_heads = 1
max_new_tokens = 8
[sft]
steps = 2
batch_size = 4
"#,
    )
    .unwrap();
    let exp = dir.path().join("exp.toml");
    std::fs::write(
        &exp,
        "base = \"base.toml\"\nseeds = [1, 2]\n[[method]]\nname = \"ExSPIN\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (code, _, stderr) = exspin(&[
        "experiment",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let log = |seed: u64| {
        std::fs::read_to_string(out.join(format!("logs/exspin/seed-{seed}.log"))).unwrap()
    };
    assert!(
        log(1).contains("sft step"),
        "seed 1 trains version 0: {}",
        log(1)
    );
    assert!(!log(2).contains("sft step"), "SFT ran again: {}", log(2));
    assert!(log(2).contains("version 0 copied"), "{}", log(2));
    let v0 = |seed: u64| {
        std::fs::read(out.join(format!(
            "runs/exspin/seed-{seed}/weights/v0/model.safetensors"
        )))
        .unwrap()
    };
    assert_eq!(v0(1), v0(2));
}

/// Every command that runs a model takes `--device` and `--dtype`; on a build without CUDA, a
/// CUDA device is refused with the rebuild command, before any other work.
#[test]
fn every_model_command_takes_device_and_dtype() {
    if exspin_actors::config::CUDA_BUILT {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let sft_config = format!("{dir}/job.toml");
    std::fs::write(&sft_config, "[data]\n[run]\n[model]\nkind = \"tiny\"\n").unwrap();
    let m = format!("{dir}/no-model");
    let cases: Vec<Vec<String>> = vec![
        vec![
            "ask".into(),
            "--model".into(),
            m.clone(),
            "--db".into(),
            format!("{dir}/x.sqlite"),
            "q".into(),
        ],
        vec![
            "generate".into(),
            "--model".into(),
            m.clone(),
            "--spider".into(),
            dir.into(),
            "--out".into(),
            format!("{dir}/p.txt"),
        ],
        vec![
            "sft".into(),
            sft_config.clone(),
            "--out".into(),
            format!("{dir}/out"),
        ],
        vec![
            "bench".into(),
            "train".into(),
            "--shape".into(),
            "qwen2-30m".into(),
        ],
        vec![
            "bench".into(),
            "generate".into(),
            "--shape".into(),
            "qwen2-30m".into(),
        ],
        vec!["bench".into(), "logprob".into()],
        vec![
            "bench".into(),
            "quant-agreement".into(),
            "--model".into(),
            m.clone(),
            "--tokens".into(),
            format!("{dir}/t.jsonl"),
        ],
    ];
    for case in cases {
        let mut args: Vec<&str> = case.iter().map(String::as_str).collect();
        args.extend(["--device", "cuda", "--dtype", "f32"]);
        let (code, _, err) = exspin(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(
            err.contains("--features cuda") && !err.contains("unexpected argument"),
            "{args:?}: {err}"
        );
    }
}

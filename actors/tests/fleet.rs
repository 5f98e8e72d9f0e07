//! The fleet on loopback (ractor_cluster): a head (`exspin run --listen --cookie-file`) and
//! workers (`exspin worker`) hosting SQL executors, all separate processes, each bounded in time.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use exspin_actors::state::summary::Summary;

fn exspin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_exspin"))
}

/// configs/demo-fake.toml with generation slowed down (`fake_generate_ms`), so that workers
/// join while there is work left.
fn fleet_config(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/demo-fake.toml"),
    )
    .unwrap()
    .replace(
        "fake_step_ms = 0",
        "fake_step_ms = 0\nfake_generate_ms = 80",
    );
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn read_summary(run: &Path) -> Summary {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

/// The body of GET / on 127.0.0.1:`port` ("" while nothing answers).
fn scrape(port: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(format!("127.0.0.1:{port}")) else {
        return String::new();
    };
    let _ = conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut v = ids.to_vec();
    v.sort();
    v
}

/// Waits (at most `secs`) for `cond`, failing if `child` ends first.
fn wait_for(what: &str, secs: u64, child: &mut Child, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(child.try_wait().unwrap().is_none(), "ended before {what}");
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits at most `secs` for `child` to exit; kills it and fails otherwise.
fn wait_exit(what: &str, secs: u64, child: &mut Child) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("{what} did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fleet_workers_judge_for_the_head_survive_a_dead_worker_and_a_restarted_head_and_refuse_a_wrong_cookie()
 {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = fleet_config(tmp.path());
    let cookie = tmp.path().join("cookie");
    std::fs::write(&cookie, "the-job-secret\n").unwrap();
    let bad_cookie = tmp.path().join("bad-cookie");
    std::fs::write(&bad_cookie, "a-guess\n").unwrap();

    // The same job in one process, no fleet.
    let base_dir = tmp.path().join("base");
    let out = exspin()
        .arg("run")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&base_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = read_summary(&base_dir);
    assert_eq!(base.samples_judged_remote, 0);

    let addr = format!("127.0.0.1:{}", free_port());
    let run_dir = tmp.path().join("fleet");
    let head_err = tmp.path().join("head.err");
    let mut head = exspin()
        .arg("run")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--listen", &addr, "--cookie-file"])
        .arg(&cookie)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&head_err).unwrap())
        .spawn()
        .unwrap();
    let databases = run_dir.join("data/database");
    wait_for("the head's data", 30, &mut head, || databases.is_dir());
    let worker = |cookie: &Path| {
        let mut c = exspin();
        c.args([
            "worker",
            "--join",
            &addr,
            "--executors",
            "2",
            "--cookie-file",
        ])
        .arg(cookie)
        .arg("--databases")
        .arg(&databases)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    };

    // A node with another cookie is refused and says so.
    let refused = worker(&bad_cookie).output().unwrap();
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{why}");
    assert!(why.contains("refused this node"), "{why}");

    // A worker killed (SIGKILL, by its own fault injection) while it holds its second batch; then
    // a worker that stays.
    let mut dying = worker(&cookie)
        .args(["--fault-abort-on-batch", "2"])
        .spawn()
        .unwrap();
    let status = wait_exit("the dying worker", 60, &mut dying);
    assert!(!status.success());
    let metrics_port = free_port().to_string();
    let mut staying = worker(&cookie)
        .args(["--reconnect-s", "1", "--metrics-port", &metrics_port])
        .args(["--generators", "1"])
        .spawn()
        .unwrap();
    // Its Prometheus endpoint shows what it hosts.
    let t = Instant::now();
    let scraped = loop {
        let body = scrape(&metrics_port);
        if body.contains("exspin_fleet_executors_hosted 2") || t.elapsed() > Duration::from_secs(10)
        {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        scraped.contains("exspin_fleet_executors_hosted 2"),
        "{scraped}"
    );

    let status = wait_exit("the head", 120, &mut head);
    let head_log = std::fs::read_to_string(&head_err).unwrap();
    assert!(status.success(), "{head_log}");
    assert!(
        head_log.contains("refused a node that did not authenticate"),
        "{head_log}"
    );
    assert!(
        head_log.contains("judging") && head_log.contains("elsewhere"),
        "the dying worker's batch was not judged again: {head_log}"
    );
    let s = read_summary(&run_dir);
    assert!(s.finished);
    assert!(
        s.samples_judged_remote > 0,
        "no batch was judged by a worker: {head_log}"
    );
    assert!(
        s.samples_generated_remote > 0,
        "no prompt was answered by a worker: {head_log}"
    );
    // Nothing lost, nothing doubled: the same samples judged and the same ids trained.
    assert_eq!(s.samples_judged, base.samples_judged);
    assert_eq!(
        sorted(&s.samples_trained_ids),
        sorted(&base.samples_trained_ids)
    );
    let distinct: std::collections::HashSet<_> = s.samples_trained_ids.iter().collect();
    assert_eq!(distinct.len(), s.samples_trained_ids.len());
    // The staying worker stops by itself once the head is gone and does not come back.
    let status = wait_exit("the worker", 30, &mut staying);
    assert!(status.success());

    // The head killed (SIGKILL) and resumed on the same address: the worker reconnects by
    // itself and judges for the resumed run, which ends as the uninterrupted one.
    let run_dir = tmp.path().join("resumed");
    let worker_err = tmp.path().join("worker.err");
    let head = |args: &[&str]| {
        let mut c = exspin();
        c.args(args)
            .args(["--listen", &addr, "--cookie-file"])
            .arg(&cookie)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let run_s = run_dir.to_str().unwrap();
    let mut first = head(&["run", cfg.to_str().unwrap(), "--run-dir", run_s])
        .spawn()
        .unwrap();
    let databases = run_dir.join("data/database");
    wait_for("the head's data", 30, &mut first, || databases.is_dir());
    let mut returning = exspin()
        .args([
            "worker",
            "--join",
            &addr,
            "--reconnect-s",
            "8",
            "--generators",
            "1",
            "--executors",
            "1",
            "--cookie-file",
        ])
        .arg(&cookie)
        .arg("--databases")
        .arg(&databases)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&worker_err).unwrap())
        .spawn()
        .unwrap();
    wait_for("a checkpoint", 60, &mut first, || {
        exspin_actors::state::checkpoint::list(&run_dir).is_ok_and(|l| !l.is_empty())
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let mut resumed = head(&["resume", run_s]).spawn().unwrap();
    assert!(wait_exit("the resumed head", 120, &mut resumed).success());
    let log = std::fs::read_to_string(&worker_err).unwrap();
    assert!(log.contains("rejoined"), "{log}");
    let s = read_summary(&run_dir);
    assert!(s.finished);
    assert_eq!(
        sorted(&s.samples_trained_ids),
        sorted(&base.samples_trained_ids)
    );
    assert!(s.samples_judged_remote > 0 && s.samples_generated_remote > 0);
    let status = wait_exit("the returning worker", 60, &mut returning);
    assert!(status.success());
}

/// configs/fleet-fake.toml (no generation on the head) with `fake_generate_ms` lowered and, with
/// `judge_on_workers`, no executor on the head either; `schedule` replaces its "async".
fn fleet_fake(dir: &Path, schedule: &str, judge_on_workers: bool) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/fleet-fake.toml"),
    )
    .unwrap()
    .replace("fake_generate_ms = 500", "fake_generate_ms = 60")
    .replace(
        "schedule = \"async\"",
        &format!("schedule = \"{schedule}\""),
    );
    assert!(text.contains("local_generators = 0") && text.contains("staleness = 1"));
    if judge_on_workers {
        text = text.replace("[cluster]\n", "[cluster]\nlocal_executors = 0\n");
    }
    let cfg = dir.join(format!("fleet-{schedule}-{judge_on_workers}.toml"));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// A head on `addr` running `cfg` into `run_dir`, its stderr into `err`.
fn head_on(addr: &str, cookie: &Path, cfg: &Path, run_dir: &Path, err: &Path) -> Child {
    exspin()
        .arg("run")
        .arg(cfg)
        .arg("--run-dir")
        .arg(run_dir)
        .args(["--listen", addr, "--cookie-file"])
        .arg(cookie)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(err).unwrap())
        .spawn()
        .unwrap()
}

/// configs/fleet-fake.toml (the async schedule, staleness 1) with a worker answering the prompts:
/// samples generated on another node keep the staleness bound. The worker starts before the
/// head listens and waits for it.
#[test]
fn fleet_async_run_keeps_the_staleness_bound_across_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = fleet_fake(tmp.path(), "async", false);
    let cookie = tmp.path().join("cookie");
    std::fs::write(&cookie, "async-secret\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let run_dir = tmp.path().join("run");
    let worker_err = tmp.path().join("worker.err");
    let mut worker = exspin()
        .args(["worker", "--join", &addr, "--generators", "2"])
        .args(["--reconnect-s", "10", "--cookie-file"])
        .arg(&cookie)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&worker_err).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker did not wait for the head"
    );
    // A port alone: the head listens on loopback.
    let port = addr.rsplit_once(':').unwrap().1;
    let mut head = head_on(port, &cookie, &cfg, &run_dir, &tmp.path().join("head.err"));
    assert!(wait_exit("the head", 120, &mut head).success());
    let s = read_summary(&run_dir);
    assert!(s.finished);
    // No opponent generates on the head (cluster.local_generators = 0).
    assert_eq!(s.samples_generated_remote, s.samples_generated, "{s:?}");
    assert!(s.max_staleness <= 1, "staleness {} > 1", s.max_staleness);
    let distinct: std::collections::HashSet<_> = s.samples_trained_ids.iter().collect();
    assert_eq!(distinct.len(), s.samples_trained_ids.len());
    // Once the head is gone for good the worker gives up waiting and exits 0 by itself.
    let status = wait_exit("the worker", 60, &mut worker);
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&worker_err).unwrap()
    );
}

/// The issue's fleet test: configs/fleet-fake.toml with every batch generated and judged on
/// workers (nothing on the head). Head + 1 worker uninterrupted, then head + 2 workers of which
/// one is SIGKILLed holding a batch: its batches are re-issued to the other worker, and the run
/// trains the same ids, none twice.
#[test]
fn fleet_two_workers_one_killed_train_what_one_worker_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = fleet_fake(tmp.path(), "strict", true);
    let cookie = tmp.path().join("cookie");
    std::fs::write(&cookie, "kill-secret\n").unwrap();
    let worker = |addr: &str, databases: &Path| {
        let mut c = exspin();
        c.args([
            "worker",
            "--join",
            addr,
            "--generators",
            "2",
            "--executors",
            "1",
        ])
        .args(["--reconnect-s", "10", "--cookie-file"])
        .arg(&cookie)
        .arg("--databases")
        .arg(databases)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    };

    // Head + 1 worker, uninterrupted.
    let addr = format!("127.0.0.1:{}", free_port());
    let one_dir = tmp.path().join("one");
    let mut head = head_on(&addr, &cookie, &cfg, &one_dir, &tmp.path().join("one.err"));
    let databases = one_dir.join("data/database");
    wait_for("the head's data", 30, &mut head, || databases.is_dir());
    let mut only = worker(&addr, &databases).spawn().unwrap();
    assert!(wait_exit("the head", 120, &mut head).success());
    let one = read_summary(&one_dir);
    assert!(one.finished);
    assert_eq!(one.samples_generated_remote, one.samples_generated);
    assert_eq!(one.samples_judged_remote, one.samples_judged);

    // Head + 2 workers (started first: they wait for the head), one SIGKILLed by its own fault
    // injection on its second batch to judge. The synthetic data is the same bytes, so the
    // first run's database folder serves.
    let addr = format!("127.0.0.1:{}", free_port());
    let two_dir = tmp.path().join("two");
    let mut dying = worker(&addr, &databases)
        .args(["--fault-abort-on-batch", "2"])
        .spawn()
        .unwrap();
    let mut staying = worker(&addr, &databases).spawn().unwrap();
    let head_err = tmp.path().join("two.err");
    let mut head = head_on(&addr, &cookie, &cfg, &two_dir, &head_err);
    assert!(!wait_exit("the dying worker", 60, &mut dying).success());
    let status = wait_exit("the head", 120, &mut head);
    let head_log = std::fs::read_to_string(&head_err).unwrap();
    assert!(status.success(), "{head_log}");
    assert!(
        head_log.contains("elsewhere"),
        "no batch was re-issued: {head_log}"
    );
    let two = read_summary(&two_dir);
    assert!(two.finished);
    assert_eq!(two.samples_generated_remote, two.samples_generated);
    assert_eq!(two.samples_judged_remote, two.samples_judged);
    assert_eq!(two.samples_judged, one.samples_judged);
    assert_eq!(
        sorted(&two.samples_trained_ids),
        sorted(&one.samples_trained_ids)
    );
    let distinct: std::collections::HashSet<_> = two.samples_trained_ids.iter().collect();
    assert_eq!(distinct.len(), two.samples_trained_ids.len());
    assert!(wait_exit("the staying worker", 60, &mut staying).success());
    assert!(wait_exit("the first run's worker", 60, &mut only).success());
}

/// The tiny real model (SFT, then two ExSPIN rounds) with its opponent and its executor on a
/// worker that copies each version over the link (`--fetch-weights`; LoRA: the adapters alone):
/// the run trains the same ids as the same job in one process.
#[test]
fn fleet_tiny_real_model_generates_and_judges_on_a_worker_as_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let job = r#"
        [data]
        synthetic_train = 40
        synthetic_dev = 12
        dev_limit = 8
        [run]
        mode = "exspin"
        rounds = 2
        prompts_per_round = 4
        samples_per_prompt = 2
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
        max_new_tokens = 16
        lr = 1e-3
        [model.lora]
        rank = 4
        alpha = 8.0
        dropout = 0.0
        target_modules = ["q_proj", "v_proj"]
        [sft]
        steps = 6
        batch_size = 4
    "#;
    let alone_cfg = tmp.path().join("alone.toml");
    std::fs::write(&alone_cfg, job).unwrap();
    let fleet_cfg = tmp.path().join("fleet.toml");
    std::fs::write(
        &fleet_cfg,
        format!("{job}\n[cluster]\nlocal_generators = 0\nlocal_executors = 0\n"),
    )
    .unwrap();
    let alone_dir = tmp.path().join("alone");
    let out = exspin()
        .arg("run")
        .arg(&alone_cfg)
        .arg("--run-dir")
        .arg(&alone_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alone = read_summary(&alone_dir);

    let cookie = tmp.path().join("cookie");
    std::fs::write(&cookie, "tiny-secret\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let run_dir = tmp.path().join("fleet");
    let head_err = tmp.path().join("head.err");
    let mut head = head_on(&addr, &cookie, &fleet_cfg, &run_dir, &head_err);
    let databases = run_dir.join("data/database");
    wait_for("the head's data", 60, &mut head, || databases.is_dir());
    let fetched = tmp.path().join("fetched");
    let worker_err = tmp.path().join("worker.err");
    let mut worker = exspin()
        .args([
            "worker",
            "--join",
            &addr,
            "--generators",
            "1",
            "--executors",
            "1",
        ])
        .args(["--reconnect-s", "3", "--cookie-file"])
        .arg(&cookie)
        .arg("--databases")
        .arg(&databases)
        .arg("--fetch-weights")
        .arg(&fetched)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&worker_err).unwrap())
        .spawn()
        .unwrap();
    let status = wait_exit("the head", 300, &mut head);
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&head_err).unwrap()
    );
    let s = read_summary(&run_dir);
    assert!(s.finished);
    assert!(s.samples_generated > 0);
    assert_eq!(s.samples_generated_remote, s.samples_generated);
    assert_eq!(s.samples_judged_remote, s.samples_judged);
    assert_eq!(s.samples_judged, alone.samples_judged);
    assert_eq!(
        sorted(&s.samples_trained_ids),
        sorted(&alone.samples_trained_ids)
    );
    // The worker generated from its own copies, fetched over the link: version 0 byte for byte
    // the head's, and later versions as their LoRA adapters alone (merged onto version 0 there).
    let job = std::fs::read_dir(&fetched)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = |root: &Path, rel: &str| std::fs::read(root.join(rel)).ok();
    let v0 = "weights/v0/model.safetensors";
    assert!(file(&job, v0).is_some() && file(&job, v0) == file(&run_dir, v0));
    let adapter = "weights/v1-adapter/adapter_model.safetensors";
    assert!(file(&job, adapter).is_some() && file(&job, adapter) == file(&run_dir, adapter));
    assert!(
        !job.join("weights/v1").exists(),
        "the merged version 1 was copied"
    );
    // The head learned what each version cost the worker: one sync for version 0 (copied for
    // the first batch) and one for version 1 (its adapter copied, merged and loaded); the last
    // version published generates nothing.
    assert_eq!(s.weight_syncs_remote, 2, "{s:?}");
    assert!(s.weight_sync_seconds_remote > 0.0);
    let status = wait_exit("the worker", 120, &mut worker);
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&worker_err).unwrap()
    );
}

/// `[cluster]` is checked with the fix in words: an opponent count above `run.generators`, an
/// address without a cookie, and work left to workers with no fleet to take it.
#[test]
fn fleet_cluster_settings_are_checked_with_the_fix_in_words() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/fleet-fake.toml"),
    )
    .unwrap();
    let run = |name: &str, cluster: &str| {
        let cfg = tmp.path().join(format!("{name}.toml"));
        let text = base.replace(
            "local_generators = 0       # every batch is generated on a worker\n",
            cluster,
        );
        assert_ne!(text, base, "the config's [cluster] table changed");
        std::fs::write(&cfg, text).unwrap();
        let out = exspin()
            .arg("run")
            .arg(&cfg)
            .arg("--run-dir")
            .arg(tmp.path().join(name))
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let why = run("too-many", "local_generators = 5\n");
    assert!(
        why.contains("cluster.local_generators = 5 exceeds run.generators = 4"),
        "{why}"
    );
    let why = run("no-cookie", "listen = \"127.0.0.1:7799\"\n");
    assert!(why.contains("go together"), "{why}");
    let why = run("no-fleet", "local_generators = 0\n");
    assert!(
        why.contains("there is no fleet") && why.contains("--listen"),
        "{why}"
    );
    assert!(
        !tmp.path().join("no-fleet").exists(),
        "a refused job left a run folder"
    );
    // A worker's --device is checked before it joins.
    if !exspin_actors::config::CUDA_BUILT {
        std::fs::write(tmp.path().join("cookie"), "x\n").unwrap();
        let out = exspin()
            .args(["worker", "--join", "127.0.0.1:9", "--generators", "1"])
            .args(["--device", "cuda:1", "--cookie-file"])
            .arg(tmp.path().join("cookie"))
            .output()
            .unwrap();
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && why.contains("--device"), "{why}");
    }
}

/// PEM files in `dir` for the job's CA and two nodes (`head`, `worker`), both certified for
/// 127.0.0.1; and `stranger` signed by another CA.
fn write_certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Issuer::new(params, key)
    };
    let node = |name: &str, issuer: &Issuer<'_, KeyPair>| {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    };
    let job_ca = ca("ca");
    node("head", &job_ca);
    node("worker", &job_ca);
    let other_ca = ca("other-ca");
    node("stranger", &other_ca);
}

/// `--tls-cert/--tls-key/--tls-ca` on both ends: a worker with a certificate from the job's CA
/// generates for the head over mutual TLS; one whose certificate another CA signed, and one that
/// speaks plain TCP, are refused although their cookie is right.
#[test]
fn fleet_over_mutual_tls_admits_only_nodes_the_jobs_ca_signed() {
    let tmp = tempfile::tempdir().unwrap();
    write_certificates(tmp.path());
    let cfg = fleet_fake(tmp.path(), "strict", false);
    let cookie = tmp.path().join("cookie");
    std::fs::write(&cookie, "tls-secret\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let tls = |name: &str, ca: &str| {
        let p = |f: String| tmp.path().join(f).to_str().unwrap().to_string();
        vec![
            "--tls-cert".to_string(),
            p(format!("{name}.crt")),
            "--tls-key".to_string(),
            p(format!("{name}.key")),
            "--tls-ca".to_string(),
            p(format!("{ca}.pem")),
        ]
    };
    let run_dir = tmp.path().join("run");
    let head_err = tmp.path().join("head.err");
    let mut head = exspin()
        .arg("run")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--listen", &addr, "--cookie-file"])
        .arg(&cookie)
        .args(tls("head", "ca"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&head_err).unwrap())
        .spawn()
        .unwrap();
    wait_for("the head to listen", 30, &mut head, || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let worker = |extra: Vec<String>| {
        let mut c = exspin();
        c.args(["worker", "--join", &addr, "--generators", "2"])
            .args(["--reconnect-s", "3", "--cookie-file"])
            .arg(&cookie)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    for (who, extra) in [
        ("a stranger's certificate", tls("stranger", "ca")),
        ("plain TCP", Vec::new()),
    ] {
        let out = worker(extra).output().unwrap();
        assert!(
            !out.status.success(),
            "{who} got in: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut invited = worker(tls("worker", "ca")).spawn().unwrap();
    let status = wait_exit("the head", 120, &mut head);
    let log = std::fs::read_to_string(&head_err).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("mutual TLS"), "{log}");
    let s = read_summary(&run_dir);
    assert!(s.finished);
    assert_eq!(s.samples_generated_remote, s.samples_generated);
    assert!(wait_exit("the invited worker", 60, &mut invited).success());
}

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
        head_log.contains("judging") && head_log.contains("here instead"),
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

/// configs/fleet-fake.toml (the async schedule, staleness 1) with a worker answering the prompts:
/// samples generated on another node keep the staleness bound, and the run trains what it would
/// train alone.
#[test]
fn fleet_async_run_keeps_the_staleness_bound_across_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/fleet-fake.toml"),
    )
    .unwrap()
    .replace("fake_generate_ms = 500", "fake_generate_ms = 150");
    assert!(text.contains("schedule = \"async\"") && text.contains("staleness = 1"));
    let cfg = tmp.path().join("fleet.toml");
    std::fs::write(&cfg, text).unwrap();
    let cookie = tmp.path().join("cookie");
    std::fs::write(&cookie, "async-secret\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let run_dir = tmp.path().join("run");
    let mut head = exspin()
        .arg("run")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--listen", &addr, "--cookie-file"])
        .arg(&cookie)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The worker dials once the head listens (a worker started earlier fails at once).
    wait_for("the head to listen", 30, &mut head, || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let mut worker = exspin()
        .args([
            "worker",
            "--join",
            &addr,
            "--generators",
            "2",
            "--reconnect-s",
            "1",
        ])
        .arg("--cookie-file")
        .arg(&cookie)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_exit("the head", 120, &mut head).success());
    let s = read_summary(&run_dir);
    assert!(s.finished);
    assert!(s.samples_generated_remote > 0, "{s:?}");
    assert!(s.max_staleness <= 1, "staleness {} > 1", s.max_staleness);
    let distinct: std::collections::HashSet<_> = s.samples_trained_ids.iter().collect();
    assert_eq!(distinct.len(), s.samples_trained_ids.len());
    assert!(wait_exit("the worker", 30, &mut worker).success());
}

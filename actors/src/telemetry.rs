//! The Prometheus endpoint: a small `metrics` recorder (counters, gauges, histograms with fixed
//! buckets) and a plain HTTP/1.1 responder on 127.0.0.1 that answers every GET with the text
//! exposition format. Hand-written on `std::net` so it needs no HTTP stack and no extra tokio
//! features; one scrape is one short-lived connection, served on the endpoint's own thread.
//!
//! Off unless `[metrics] prometheus_port` is set. The recorder is process-wide (the `metrics`
//! crate allows one): installed by the first run that asks for the endpoint and kept, so values
//! of several runs in one process (tests, `exspin bench`) accumulate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use parking_lot::Mutex;

/// Upper bounds of the histogram buckets, in the metric's unit (seconds for the timings).
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Hist {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct HistCell(Mutex<Hist>);

impl HistogramFn for HistCell {
    fn record(&self, value: f64) {
        let mut h = self.0.lock();
        for (i, b) in BUCKETS.iter().enumerate() {
            if value <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += value;
    }
}

/// (name, rendered labels) → cell.
type Cells<T> = Mutex<BTreeMap<(String, String), Arc<T>>>;

#[derive(Default)]
pub struct Registry {
    counters: Cells<AtomicU64>,
    gauges: Cells<AtomicU64>,
    histograms: Cells<HistCell>,
    help: Mutex<BTreeMap<String, String>>,
}

fn id(key: &Key) -> (String, String) {
    let labels: Vec<String> = key
        .labels()
        .map(|l| {
            let v = l
                .value()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{}=\"{v}\"", l.key())
        })
        .collect();
    (key.name().to_string(), labels.join(","))
}

fn cell<T: Default>(cells: &Cells<T>, key: &Key) -> Arc<T> {
    cells.lock().entry(id(key)).or_default().clone()
}

impl Recorder for Registry {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.help
            .lock()
            .insert(key.as_str().to_string(), description.to_string());
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe_counter(key, unit, description)
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe_counter(key, unit, description)
    }
    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(cell(&self.counters, key))
    }
    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(cell(&self.gauges, key))
    }
    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(cell(&self.histograms, key))
    }
}

fn braces(labels: &str, extra: Option<String>) -> String {
    let all: Vec<String> = [labels.to_string()]
        .into_iter()
        .chain(extra)
        .filter(|s| !s.is_empty())
        .collect();
    if all.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", all.join(","))
    }
}

fn num(x: f64) -> String {
    if x.is_infinite() {
        if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{x}")
    }
}

impl Registry {
    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let help = self.help.lock().clone();
        let mut out = String::new();
        let header = |out: &mut String, name: &str, kind: &str, last: &mut String| {
            if last != name {
                if let Some(h) = help.get(name) {
                    let _ = writeln!(out, "# HELP {name} {h}");
                }
                let _ = writeln!(out, "# TYPE {name} {kind}");
                *last = name.to_string();
            }
        };
        let mut last = String::new();
        for ((name, labels), c) in self.counters.lock().iter() {
            header(&mut out, name, "counter", &mut last);
            let v = c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{} {v}", braces(labels, None));
        }
        for ((name, labels), g) in self.gauges.lock().iter() {
            header(&mut out, name, "gauge", &mut last);
            let v = f64::from_bits(g.load(Ordering::Relaxed));
            let _ = writeln!(out, "{name}{} {}", braces(labels, None), num(v));
        }
        for ((name, labels), h) in self.histograms.lock().iter() {
            header(&mut out, name, "histogram", &mut last);
            let h = h.0.lock();
            for (b, c) in BUCKETS.iter().zip(h.counts) {
                let le = Some(format!("le=\"{}\"", num(*b)));
                let _ = writeln!(out, "{name}_bucket{} {c}", braces(labels, le));
            }
            let le = Some("le=\"+Inf\"".to_string());
            let _ = writeln!(out, "{name}_bucket{} {}", braces(labels, le), h.count);
            let _ = writeln!(out, "{name}_sum{} {}", braces(labels, None), num(h.sum));
            let _ = writeln!(out, "{name}_count{} {}", braces(labels, None), h.count);
        }
        if exspin_kernels::alloc::is_installed() {
            // Live heap bytes from the `exspin` binary's counting allocator: tells heap growth
            // from allocator fragmentation when the resident size grows.
            let _ = writeln!(
                out,
                "# HELP exspin_heap_live_bytes bytes allocated and not freed (counting allocator)\n\
                 # TYPE exspin_heap_live_bytes gauge\nexspin_heap_live_bytes {}",
                exspin_kernels::alloc::current_bytes()
            );
        }
        out
    }
}

static REGISTRY: OnceLock<Option<&'static Registry>> = OnceLock::new();

/// The process-wide registry, installed as the global `metrics` recorder on first use. `None`
/// when another recorder was installed first (then this endpoint has nothing to show).
pub fn registry() -> Option<&'static Registry> {
    *REGISTRY.get_or_init(|| {
        let r: &'static Registry = Box::leak(Box::default());
        match metrics::set_global_recorder(r) {
            Ok(()) => {
                describe();
                Some(r)
            }
            Err(_) => None,
        }
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "exspin_prompts_issued_total",
        "prompts handed to the opponent"
    );
    describe_counter!(
        "exspin_samples_generated_total",
        "generations of the opponent (prompts x samples)"
    );
    describe_counter!(
        "exspin_generated_tokens_total",
        "tokens generated by the opponents (the fake model: whitespace-separated SQL pieces)"
    );
    describe_gauge!(
        "exspin_generated_tokens_per_second",
        "generated tokens per second spent generating (summed over opponents: per generator)"
    );
    describe_counter!(
        "exspin_queries_total",
        "generations executed and judged against gold"
    );
    describe_counter!(
        "exspin_verdicts_total",
        "judged generations by verdict (correct, wrong_result, error, timeout, gold_failed)"
    );
    describe_counter!(
        "exspin_samples_filtered_total",
        "generations discarded by the mode (exspin: the correct ones)"
    );
    describe_gauge!(
        "exspin_filter_rate",
        "share of judged generations discarded as correct (filtered / judged)"
    );
    describe_counter!(
        "exspin_pairs_made_total",
        "training pairs made by the replay buffer"
    );
    describe_counter!("exspin_pairs_trained_total", "pairs trained");
    describe_counter!("exspin_train_steps_total", "optimizer steps");
    describe_gauge!("exspin_loss", "loss of the last train step");
    describe_gauge!(
        "exspin_reward_margin",
        "mean chosen - rejected reward of the last step"
    );
    describe_histogram!("exspin_loss_hist", "loss per train step");
    describe_histogram!(
        "exspin_staleness",
        "trainer version - opponent version, per pair"
    );
    describe_gauge!("exspin_version", "latest published weights version");
    describe_gauge!(
        "exspin_dev_ex",
        "dev execution accuracy of the latest evaluated version"
    );
    describe_gauge!("exspin_opponent_queue", "prompts queued in the opponent");
    describe_gauge!("exspin_prompt_queue", "prompts built and not yet issued");
    describe_gauge!(
        "exspin_replay_held",
        "pairs and ahead-of-round samples held by the replay buffer"
    );
    describe_gauge!(
        "exspin_trainer_queue",
        "batches sent to the trainer, not yet acknowledged"
    );
    describe_gauge!(
        "exspin_executor_inflight",
        "generations in the executor stage"
    );
    describe_gauge!("exspin_stage_busy_seconds", "time each stage spent working");
    describe_counter!("exspin_restarts_total", "actor restarts by the supervisor");
    describe_histogram!("exspin_generate_seconds", "one Generator::generate call");
    describe_histogram!(
        "exspin_judge_seconds",
        "executing and judging one batch of generations"
    );
    describe_histogram!("exspin_train_step_seconds", "one Learner::train_step call");
    describe_histogram!(
        "exspin_prompt_build_seconds",
        "building one round's prompts"
    );
}

/// A running endpoint; stops (and frees the port) when dropped.
pub struct Endpoint {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the registry on 127.0.0.1:`port` until the returned handle is dropped.
pub fn serve(port: u16) -> anyhow::Result<Endpoint> {
    let registry = registry()
        .ok_or_else(|| anyhow::anyhow!("another metrics recorder is installed in this process"))?;
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        anyhow::anyhow!(
            "metrics.prometheus_port = {port}: cannot listen on 127.0.0.1:{port} ({e}); choose \
             another port, or 0 to turn the endpoint off"
        )
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("exspin-prometheus".into())
        .spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = answer(stream, registry) {
                            tracing::debug!("prometheus scrape: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(25));
                    }
                    Err(e) => {
                        tracing::warn!("prometheus endpoint: {e}");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        })?;
    tracing::info!("prometheus metrics on http://{addr}/metrics");
    Ok(Endpoint {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn answer(mut stream: std::net::TcpStream, registry: &Registry) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    // Read the request head (we answer any path; the body of a GET is empty).
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = if head.starts_with(b"GET ") || head.starts_with(b"HEAD ") {
        ("200 OK", registry.render())
    } else {
        ("405 Method Not Allowed", "only GET\n".to_string())
    };
    let body = if head.starts_with(b"HEAD ") {
        String::new()
    } else {
        body
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let r = Registry::default();
        let k = Key::from_parts("x_total", vec![metrics::Label::new("stage", "a\"b")]);
        let m = Metadata::new("t", metrics::Level::INFO, None);
        r.register_counter(&k, &m).increment(3);
        r.register_gauge(&Key::from_name("g"), &m).set(1.5);
        let h = r.register_histogram(&Key::from_name("h_seconds"), &m);
        h.record(0.002);
        h.record(2.0);
        let text = r.render();
        assert!(
            text.contains("# TYPE x_total counter\nx_total{stage=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("g 1.5\n"), "{text}");
        assert!(
            text.contains("h_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("h_seconds_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("h_seconds_count 2\n"), "{text}");
    }
}

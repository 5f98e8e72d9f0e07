//! `exspin bench weights`: seconds to bring one published version to a worker over the fleet's
//! link (loopback). The model is written as a version folder (what `publish` writes: the
//! safetensors, config, tokenizer) in each dtype; a worker child process copies it with
//! `--fetch-weights` (manifest, 8 MiB chunks, SHA-256 per file) while this process serves it as
//! the head. The baseline, in the same process: a local copy of the same folder with the same
//! hashing, i.e. what the disk and the hash cost without the link.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::config::WeightDType;
use crate::fleet::node::Node;

#[derive(Debug, Clone, Serialize)]
pub struct WeightSync {
    pub dtype: WeightDType,
    /// The LoRA rank when the version is an adapter alone.
    pub lora_rank: Option<usize>,
    pub files: usize,
    pub bytes: u64,
    /// Each transfer's seconds, worker start and joining excluded.
    pub link_s: Vec<f64>,
    pub link_s_median: f64,
    pub link_mb_per_s: f64,
    /// The same folder copied and hashed locally.
    pub local_copy_s: f64,
    /// link / local copy.
    pub link_over_local: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Copies every file of `from` into `to` and hashes it (the baseline).
fn local_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if !entry.metadata()?.is_file() {
            continue;
        }
        let target = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target)?;
        crate::fleet::db_hash::sha256_file(&target)?;
    }
    Ok(())
}

/// Measures `model` (a Hugging Face folder or a .gguf file) published in each of `dtypes`,
/// `reps` transfers each, with `exe worker` as the worker. With `lora`, a version is what a
/// LoRA run's worker copies: the adapter alone (`weights/vN-adapter`, fresh adapters of that
/// shape on the model).
pub fn bench(
    model: &Path,
    dtypes: &[WeightDType],
    lora: Option<&exspin::model::lora::LoraConfig>,
    reps: usize,
    exe: &Path,
) -> anyhow::Result<Vec<WeightSync>> {
    let tmp = tempfile::tempdir().context("creating a temporary run folder")?;
    let run_dir = tmp.path().join("run");
    let cookie = tmp.path().join("cookie");
    std::fs::write(&cookie, format!("weights-{}\n", std::process::id()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut node = rt.block_on(Node::start(
        "exspin-bench-head",
        addr.parse()?,
        format!("weights-{}", std::process::id()),
        None,
    ))?;
    rt.block_on(node.serve_weights(run_dir.clone()))?;
    let mut out = Vec::new();
    for (i, &dtype) in dtypes.iter().enumerate() {
        let mut lm = exspin::model::load::load_as(model, dtype.dtype(), &candle_core::Device::Cpu)
            .with_context(|| format!("loading {}", model.display()))?;
        let version = i + 1;
        let folder = match lora {
            Some(_) => format!("weights/v{version}-adapter"),
            None => format!("weights/v{version}"),
        };
        let dir = run_dir.join(&folder);
        match lora {
            Some(cfg) => {
                let varmap = candle_nn::VarMap::new();
                exspin::model::lora::attach(&mut lm.model, cfg, &varmap)?;
                exspin::model::checkpoint::save_adapter(&dir, &mut lm.model, cfg, "v0")?;
            }
            None => exspin::model::checkpoint::save_hf(
                &dir,
                &lm.model,
                &lm.tokenizer,
                &lm.special,
                &lm.chat,
                true,
            )?,
        }
        drop(lm);
        let (mut files, mut bytes) = (0, 0);
        for e in std::fs::read_dir(&dir)? {
            let m = e?.metadata()?;
            if m.is_file() {
                files += 1;
                bytes += m.len();
            }
        }
        let t = Instant::now();
        local_copy(&dir, &tmp.path().join(format!("copy-{version}")))?;
        let local_copy_s = t.elapsed().as_secs_f64();
        std::fs::remove_dir_all(tmp.path().join(format!("copy-{version}")))?;
        let mut link_s = Vec::new();
        for rep in 0..reps.max(1) {
            let into = tmp.path().join(format!("worker-{version}-{rep}"));
            let child = Command::new(exe)
                .args(["worker", "--join", &addr, "--cookie-file"])
                .arg(&cookie)
                .arg("--fetch-weights")
                .arg(&into)
                .args(["--fetch-only", &folder])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .context("starting a worker")?;
            anyhow::ensure!(
                child.status.success(),
                "the worker failed: {}",
                String::from_utf8_lossy(&child.stderr)
            );
            let line: serde_json::Value =
                serde_json::from_slice(&child.stdout).context("the worker's JSON line")?;
            anyhow::ensure!(
                line["bytes"].as_u64() == Some(bytes),
                "the worker copied {} bytes of {bytes}",
                line["bytes"]
            );
            link_s.push(line["seconds"].as_f64().unwrap_or(f64::NAN));
            std::fs::remove_dir_all(&into)?;
        }
        let m = median(&link_s);
        out.push(WeightSync {
            dtype,
            lora_rank: lora.map(|c| c.rank),
            files,
            bytes,
            link_s_median: m,
            link_mb_per_s: bytes as f64 / 1e6 / m,
            link_s,
            local_copy_s,
            link_over_local: m / local_copy_s,
        });
        std::fs::remove_dir_all(&dir)?;
    }
    rt.block_on(node.stop());
    Ok(out)
}

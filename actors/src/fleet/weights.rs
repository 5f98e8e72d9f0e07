//! Published weights over the fleet's link, for workers that do not see the head's run folder.
//!
//! The head runs a [`WeightsServer`] (process group [`WEIGHTS_GROUP`]) over its run folder: it
//! lists a folder's files with their sizes and SHA-256 ([`ManifestRequest`]) and hands out byte
//! ranges of them ([`ChunkRequest`], [`CHUNK_BYTES`] at a time, under ractor_cluster's 16 MiB
//! frame limit). A worker [`mirror`]s the folders a version needs into its own copy of the run
//! folder's layout, checks every file's SHA-256, and moves each file into place only when it
//! matches, so a broken transfer never leaves a half-written version. Files already there with
//! the right hash are not fetched again (version 0's tokenizer, a resumed worker).
//!
//! Only published folders are served (`weights/…`): they are written atomically and never change,
//! so a manifest is computed once per folder.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sha2::{Digest, Sha256};

use super::db_hash::sha256_file;
use super::wire::{
    self, ChunkRequest, FileEntry, ManifestReply, ManifestRequest, WeightsServerMsg,
};

/// The process group of the head's weights server.
pub const WEIGHTS_GROUP: &str = "exspin.weights";

/// Bytes per chunk (ractor_cluster refuses frames over 16 MiB).
pub const CHUNK_BYTES: u64 = 8 << 20;

/// Chunk calls a worker keeps in flight.
const CHUNKS_IN_FLIGHT: usize = 3;

/// How long one manifest or chunk call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The head's weights server over one run folder.
pub struct WeightsServer;

pub struct ServerState {
    run_dir: PathBuf,
    manifests: HashMap<String, Vec<FileEntry>>,
}

/// `relative` under `root`, refused unless it stays under `root/weights`.
fn served_path(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let rel = Path::new(relative);
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain || rel.components().next() != Some(Component::Normal("weights".as_ref())) {
        return Err(format!(
            "{relative}: only folders under weights/ are served"
        ));
    }
    Ok(root.join(rel))
}

/// The regular files directly in `folder` (relative to `root`), sorted, with sizes and hashes.
fn manifest(root: &Path, folder: &str) -> Result<Vec<FileEntry>, String> {
    let dir = served_path(root, folder)?;
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let meta = entry.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        files.push(FileEntry {
            path: format!("{}/{name}", folder.trim_end_matches('/')),
            size: meta.len(),
            sha256: sha256_file(&path).map_err(|e| format!("{}: {e}", path.display()))?,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn chunk(root: &Path, request: &ChunkRequest) -> Result<Vec<u8>, String> {
    let path = served_path(root, &request.path)?;
    if request.len > CHUNK_BYTES {
        return Err(format!(
            "{} bytes asked, at most {CHUNK_BYTES}",
            request.len
        ));
    }
    let mut f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(request.offset))
        .map_err(|e| e.to_string())?;
    let mut out = vec![0u8];
    f.take(request.len)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

impl Actor for WeightsServer {
    type Msg = WeightsServerMsg;
    type State = ServerState;
    /// The run folder.
    type Arguments = PathBuf;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        run_dir: PathBuf,
    ) -> Result<ServerState, ActorProcessingErr> {
        ractor::pg::join(WEIGHTS_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(ServerState {
            run_dir,
            manifests: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut ServerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WeightsServerMsg::Manifest(bytes, reply) => {
                let answer = match wire::decode::<ManifestRequest>(&bytes) {
                    Err(e) => ManifestReply::Refused(e.to_string()),
                    Ok(r) => match st.manifests.get(&r.folder) {
                        Some(files) => ManifestReply::Files(files.clone()),
                        None => {
                            let root = st.run_dir.clone();
                            let folder = r.folder.clone();
                            match tokio::task::spawn_blocking(move || manifest(&root, &folder))
                                .await?
                            {
                                Ok(files) => {
                                    st.manifests.insert(r.folder, files.clone());
                                    ManifestReply::Files(files)
                                }
                                Err(e) => ManifestReply::Refused(e),
                            }
                        }
                    },
                };
                let _ = reply.send(wire::encode(&answer));
            }
            WeightsServerMsg::Chunk(bytes, reply) => {
                let root = st.run_dir.clone();
                let answer = tokio::task::spawn_blocking(move || {
                    match wire::decode::<ChunkRequest>(&bytes) {
                        Err(e) => Err(e.to_string()),
                        Ok(r) => chunk(&root, &r),
                    }
                })
                .await?;
                let raw = match answer {
                    Ok(data) => data,
                    Err(why) => {
                        let mut v = vec![1u8];
                        v.extend(why.into_bytes());
                        v
                    }
                };
                metrics::counter!("exspin_fleet_weight_bytes_served_total")
                    .increment(raw.len() as u64 - 1);
                let _ = reply.send(raw);
            }
        }
        Ok(())
    }
}

/// The head's weights server. Its group membership reaches a worker shortly after the worker
/// joins, so this waits for it (a few seconds at most).
async fn server() -> anyhow::Result<ActorRef<WeightsServerMsg>> {
    const WAIT: Duration = Duration::from_secs(10);
    let started = std::time::Instant::now();
    loop {
        if let Some(cell) = ractor::pg::get_members(&WEIGHTS_GROUP.to_string())
            .into_iter()
            .find(|c| !c.get_id().is_local())
        {
            return Ok(ActorRef::from(cell));
        }
        if started.elapsed() > WAIT {
            anyhow::bail!(
                "the head serves no weights (an older exspin, or not connected) after {WAIT:?}; \
                 run the same exspin version on head and workers, or drop --fetch-weights and \
                 share the run folder"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one [`mirror`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mirrored {
    pub files: usize,
    /// Bytes fetched over the link (files already in place with the right hash cost none).
    pub bytes: u64,
}

/// Copies the head's run folder's `folder` (e.g. `weights/v3`) into `local_root/folder` over the
/// link, file by file, each checked against the head's SHA-256 before it is moved into place.
pub async fn mirror(folder: &str, local_root: &Path) -> anyhow::Result<Mirrored> {
    let server = server().await?;
    let reply = ractor::call_t!(
        server,
        WeightsServerMsg::Manifest,
        CALL_TIMEOUT.as_millis() as u64,
        wire::encode(&ManifestRequest {
            folder: folder.to_string(),
        })
    )
    .map_err(|e| anyhow::anyhow!("asking the head for {folder}: {e}"))?;
    let files = match wire::decode::<ManifestReply>(&reply)? {
        ManifestReply::Files(f) => f,
        ManifestReply::Refused(why) => anyhow::bail!("the head refused {folder}: {why}"),
    };
    let mut done = Mirrored::default();
    for file in files {
        let target = served_path(local_root, &file.path).map_err(|e| anyhow::anyhow!(e))?;
        done.files += 1;
        let already = {
            let t = target.clone();
            tokio::task::spawn_blocking(move || sha256_file(&t).ok()).await?
        };
        if already.as_deref() == Some(file.sha256.as_str()) {
            continue;
        }
        let dir = target.parent().expect("a file under weights/");
        std::fs::create_dir_all(dir)?;
        let partial = dir.join(format!(
            ".{}.part",
            target.file_name().expect("a file").to_string_lossy()
        ));
        let mut out = std::fs::File::create(&partial)?;
        let mut hash = Sha256::new();
        // A few chunks in flight, so the head reads the next while this node hashes and writes
        // the last; they are consumed in order.
        let mut pending = std::collections::VecDeque::new();
        let mut next = 0;
        loop {
            while next < file.size && pending.len() < CHUNKS_IN_FLIGHT {
                let len = CHUNK_BYTES.min(file.size - next);
                let (server, request) = (
                    server.clone(),
                    wire::encode(&ChunkRequest {
                        path: file.path.clone(),
                        offset: next,
                        len,
                    }),
                );
                let call = tokio::spawn(async move {
                    ractor::call_t!(
                        server,
                        WeightsServerMsg::Chunk,
                        CALL_TIMEOUT.as_millis() as u64,
                        request
                    )
                    .map_err(|e| e.to_string())
                });
                pending.push_back((next, len, call));
                next += len;
            }
            let Some((offset, len, call)) = pending.pop_front() else {
                break;
            };
            let raw = call
                .await?
                .map_err(|e| anyhow::anyhow!("fetching {} at {offset}: {e}", file.path))?;
            match raw.split_first() {
                Some((0, data)) if data.len() as u64 == len => {
                    hash.update(data);
                    out.write_all(data)?;
                }
                Some((0, data)) => anyhow::bail!(
                    "{} at {offset}: {} bytes came, {len} were asked",
                    file.path,
                    data.len()
                ),
                Some((_, why)) => anyhow::bail!(
                    "the head refused {} at {offset}: {}",
                    file.path,
                    String::from_utf8_lossy(why)
                ),
                None => anyhow::bail!("{} at {offset}: an empty reply", file.path),
            }
            done.bytes += len;
        }
        out.sync_all()?;
        drop(out);
        let got = hex::encode(hash.finalize());
        if got != file.sha256 {
            let _ = std::fs::remove_file(&partial);
            anyhow::bail!(
                "{}: SHA-256 {got} after the transfer, the head has {}; nothing was kept",
                file.path,
                file.sha256
            );
        }
        std::fs::rename(&partial, &target)?;
    }
    metrics::counter!("exspin_fleet_weight_bytes_fetched_total").increment(done.bytes);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_folders_are_served() {
        let root = Path::new("/run");
        assert!(served_path(root, "weights/v3/model.safetensors").is_ok());
        for bad in [
            "config.toml",
            "weights/../config.toml",
            "/etc/passwd",
            "checkpoints/step-1",
            "./weights/v0",
        ] {
            assert!(served_path(root, bad).is_err(), "{bad} was served");
        }
    }

    #[test]
    fn a_manifest_lists_files_with_their_hashes_and_a_chunk_is_a_byte_range() {
        let tmp = tempfile::tempdir().unwrap();
        let v = tmp.path().join("weights/v1");
        std::fs::create_dir_all(v.join("sub")).unwrap();
        std::fs::write(v.join("b.bin"), b"0123456789").unwrap();
        std::fs::write(v.join("a.json"), b"{}").unwrap();
        let files = manifest(tmp.path(), "weights/v1").unwrap();
        let names: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["weights/v1/a.json", "weights/v1/b.bin"]);
        assert_eq!(files[1].size, 10);
        assert_eq!(files[1].sha256, hex::encode(Sha256::digest(b"0123456789")));
        let got = chunk(
            tmp.path(),
            &ChunkRequest {
                path: "weights/v1/b.bin".into(),
                offset: 3,
                len: 4,
            },
        )
        .unwrap();
        assert_eq!(got, b"\x003456");
    }
}

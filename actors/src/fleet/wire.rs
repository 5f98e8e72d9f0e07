//! What crosses nodes: serde types encoded as JSON inside a versioned envelope. A message of
//! another wire version is refused with both versions named, rather than misread.

use std::collections::BTreeMap;

use exspin::data::DatasetKind;
use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::protocol::seams::{Judged, PromptItem, Sample, WeightsHandle};

/// Bumped whenever a type below changes shape.
pub const WIRE_VERSION: u32 = 2;

/// A database as the head sees it: its path under the database root (the worker resolves it
/// under its own `--databases` folder) and the SHA-256 of its bytes (a worker whose copy
/// differs refuses to judge against it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbRef {
    pub relative: String,
    pub sha256: String,
}

/// Judge these generations against their prompts' gold results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeRequest {
    pub dataset: DatasetKind,
    /// Names the gold-result cache of the dataset (the head's dataset path).
    pub scope: String,
    /// Every database the items use, by db_id.
    pub databases: BTreeMap<String, DbRef>,
    pub items: Vec<(PromptItem, Sample)>,
}

/// A worker's answer to a [`JudgeRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JudgeReply {
    Judged(Vec<Judged>),
    /// The worker cannot judge this request (a database missing or different); the head judges
    /// it itself.
    Refused(String),
}

/// Generate `n_samples` answers per prompt of `batch` with version `weights` of the head's job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The head's job config (TOML): the worker builds the same opponent from it.
    pub config_toml: String,
    /// The head's run folder, absolute: a worker sees it at the same path (a shared
    /// filesystem), where version 0 and every published version are.
    pub run_dir: std::path::PathBuf,
    pub weights: WeightsHandle,
    pub batch: Vec<PromptItem>,
    pub n_samples: usize,
}

/// A worker's answer to a [`GenerateRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GenerateReply {
    Samples {
        samples: Vec<Sample>,
        /// Seconds this request spent bringing its version to the worker (copying it over the
        /// link, loading it); 0 when the worker held it already.
        weight_sync_s: f64,
    },
    Refused(String),
}

/// One file of a published folder, as the head's weights server lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path under the run folder, '/'-separated (e.g. `weights/v3/model.safetensors`).
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A worker asks the head which files a folder of the run holds (`weights`, `weights/v3`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRequest {
    pub folder: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ManifestReply {
    Files(Vec<FileEntry>),
    Refused(String),
}

/// A worker asks for `len` bytes of a listed file from `offset`. The reply is raw: a first byte
/// 0 and the bytes, or 1 and a UTF-8 reason (no JSON around megabytes of weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRequest {
    pub path: String,
    pub offset: u64,
    pub len: u64,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    wire: u32,
    body: T,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(
        "a message of wire version {found}, this build speaks {WIRE_VERSION}: run the same exspin version on the head and the workers"
    )]
    Version { found: u32 },
    #[error("a malformed message: {0}")]
    Malformed(String),
}

pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        wire: WIRE_VERSION,
        body,
    })
    .expect("wire types serialize")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    #[derive(Deserialize)]
    struct Version {
        wire: u32,
    }
    let v: Version =
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    if v.wire != WIRE_VERSION {
        return Err(WireError::Version { found: v.wire });
    }
    let e: Envelope<T> =
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok(e.body)
}

/// Messages of a worker's executor actor. The payloads are [`encode`]d [`JudgeRequest`] and
/// [`JudgeReply`].
#[derive(RactorClusterMessage)]
pub enum ExecutorHostMsg {
    #[rpc]
    Judge(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// Messages of a worker's opponent actor. The payloads are [`encode`]d [`GenerateRequest`] and
/// [`GenerateReply`].
#[derive(RactorClusterMessage)]
pub enum GeneratorHostMsg {
    #[rpc]
    Generate(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// Messages of the head's weights server: [`encode`]d [`ManifestRequest`] → [`ManifestReply`],
/// and [`encode`]d [`ChunkRequest`] → a raw chunk (see [`ChunkRequest`]).
#[derive(RactorClusterMessage)]
pub enum WeightsServerMsg {
    #[rpc]
    Manifest(Vec<u8>, RpcReplyPort<Vec<u8>>),
    #[rpc]
    Chunk(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_another_wire_version_is_refused_by_name() {
        let bytes = encode(&JudgeReply::Refused("x".into()));
        assert_eq!(
            decode::<JudgeReply>(&bytes).unwrap(),
            JudgeReply::Refused("x".into())
        );
        let other = br#"{"wire": 99, "body": {"Refused": "x"}}"#;
        let err = decode::<JudgeReply>(other).unwrap_err().to_string();
        assert!(
            err.contains("wire version 99") && err.contains("same exspin version"),
            "{err}"
        );
        assert!(matches!(
            decode::<JudgeReply>(b"not json"),
            Err(WireError::Malformed(_))
        ));
    }
}

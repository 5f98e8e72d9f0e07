//! SHA-256 of files: databases (computed once per file and process: Spider's databases are
//! read many times a round and their bytes do not change during a run) and published weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

static HASHES: LazyLock<Mutex<HashMap<PathBuf, String>>> = LazyLock::new(Default::default);

/// The file's SHA-256 in hex, remembered for the process (for files that do not change).
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    if let Some(h) = HASHES.lock().get(path) {
        return Ok(h.clone());
    }
    let h = sha256_file(path)?;
    HASHES.lock().insert(path.to_path_buf(), h.clone());
    Ok(h)
}

/// The file's SHA-256 in hex, read now.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

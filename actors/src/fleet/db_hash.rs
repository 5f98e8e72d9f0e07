//! SHA-256 of database files, computed once per file and process (Spider's databases are read
//! many times a round; their bytes do not change during a run).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

static HASHES: LazyLock<Mutex<HashMap<PathBuf, String>>> = LazyLock::new(Default::default);

/// The file's SHA-256 in hex.
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    if let Some(h) = HASHES.lock().get(path) {
        return Ok(h.clone());
    }
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    let h = hex::encode(hasher.finalize());
    HASHES.lock().insert(path.to_path_buf(), h.clone());
    Ok(h)
}

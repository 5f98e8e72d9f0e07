//! Helpers shared by the test modules.

use std::path::PathBuf;

/// The shared data folder (`EXSPIN_DATA`), or `None` with a note on stderr so a skip is visible.
#[allow(dead_code)]
pub fn shared_data(what: &str) -> Option<PathBuf> {
    match std::env::var_os("EXSPIN_DATA").map(PathBuf::from) {
        Some(dir) if dir.is_dir() => Some(dir),
        Some(dir) => {
            eprintln!("SKIP {what}: EXSPIN_DATA={} is not a folder", dir.display());
            None
        }
        None => {
            eprintln!(
                "SKIP {what}: set EXSPIN_DATA to the shared data folder (e.g. ../shared/data)"
            );
            None
        }
    }
}

/// The Spider folder inside the shared data, if present.
#[allow(dead_code)]
pub fn spider_dir(what: &str) -> Option<PathBuf> {
    let dir = shared_data(what)?.join("spider");
    if dir.join("dev.json").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIP {what}: {} has no dev.json", dir.display());
        None
    }
}

//! Atomic writes: a file or a folder is written under a temporary name beside its destination,
//! flushed to disk, then renamed into place, so a reader (or a run resumed after a crash) sees
//! the old content or the new one, never half of either. The one place this rule lives: caches,
//! synthetic databases, checkpoints, published weights and run summaries all go through it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` atomically (creating the parent folder), replacing any file there.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let staged = Staged::file(path)?;
    std::fs::write(staged.path(), bytes)?;
    staged.commit()
}

/// A file or folder being written under a temporary name; [`Staged::commit`] moves it to its
/// destination, and dropping it uncommitted removes what was written.
#[must_use = "nothing reaches the destination until `commit`"]
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    is_dir: bool,
    committed: bool,
}

/// Tells apart temporary names of one process (two threads may write the same destination).
static NEXT: AtomicU64 = AtomicU64::new(0);

impl Staged {
    /// A file to be written at [`Staged::path`] (by any means: `std::fs::write`, SQLite, ...).
    pub fn file(dest: &Path) -> io::Result<Staged> {
        Staged::new(dest, false)
    }

    /// An empty folder to be filled at [`Staged::path`].
    pub fn dir(dest: &Path) -> io::Result<Staged> {
        Staged::new(dest, true)
    }

    fn new(dest: &Path, is_dir: bool) -> io::Result<Staged> {
        let name = dest.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: an atomic write needs a file name", dest.display()),
            )
        })?;
        std::fs::create_dir_all(parent(dest))?;
        // Hidden, and unique per process and write, so no listing of the folder mistakes it for
        // a finished entry and no two writers share it.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = parent(dest).join(format!(
            ".{}.tmp-{}-{n}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let staged = Staged {
            tmp,
            dest: dest.to_path_buf(),
            is_dir,
            committed: false,
        };
        remove(&staged.tmp)?;
        if is_dir {
            std::fs::create_dir(&staged.tmp)?;
        }
        Ok(staged)
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes what was written to disk and renames it to the destination, replacing what was
    /// there (a folder is replaced by moving the old one aside first and removing it after).
    pub fn commit(mut self) -> io::Result<()> {
        sync_tree(&self.tmp)?;
        if self.is_dir && self.dest.exists() {
            let mut old = self.tmp.clone().into_os_string();
            old.push(".old");
            let old = PathBuf::from(old);
            remove(&old)?;
            std::fs::rename(&self.dest, &old)?;
            std::fs::rename(&self.tmp, &self.dest)?;
            self.committed = true;
            remove(&old)?;
        } else {
            std::fs::rename(&self.tmp, &self.dest)?;
            self.committed = true;
        }
        sync_dir(parent(&self.dest))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove(&self.tmp);
        }
    }
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Removes a file or a folder; absent is fine.
fn remove(path: &Path) -> io::Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// fsyncs a file, or every file in a folder and the folders themselves.
fn sync_tree(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            sync_tree(&entry?.path())?;
        }
        sync_dir(path)
    } else {
        std::fs::File::open(path)?.sync_all()
    }
}

/// fsyncs a folder, so the names in it (a rename) are on disk too.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

//! The ordered list of trained pair ids, on disk: `RUN/trained_ids.txt`, one id a line, appended
//! as the trainer trains (under the journal's lock, so a journal snapshot and the file agree) and
//! fsync'd before every checkpoint is written. The journal keeps only the count and the ids of
//! the rounds exactly-once still needs (see `state/journal.rs`), so memory stays flat over a long run.
//!
//! A checkpoint records the count; a resume cuts the file back to that many lines (ids trained
//! after the cut are trained again), as `metrics.jsonl` is cut back to the checkpoint's step.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub const FILE: &str = "trained_ids.txt";

pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(FILE)
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} holds {found} trained ids but the checkpoint counts {expected}; the run folder is \
         damaged (restore the file or start a new run)",
        path.display()
    )]
    Short {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
}

/// The append side, owned by the run (`Ctx::ledger`).
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: Option<File>,
}

impl Ledger {
    pub fn new(run_dir: &Path) -> Ledger {
        Ledger {
            path: path(run_dir),
            file: None,
        }
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
        move |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Cuts the file back to its first `n` ids (creating it empty when `n` is 0) and appends
    /// from there on. Fails when the file holds fewer than `n`.
    pub fn reset_to(&mut self, n: u64) -> Result<(), LedgerError> {
        self.file = None;
        let keep = match File::open(&self.path) {
            Ok(f) => {
                let mut bytes = 0u64;
                let mut lines = 0u64;
                let mut reader = BufReader::new(f);
                let mut line = Vec::new();
                while lines < n {
                    line.clear();
                    let got = reader.read_until(b'\n', &mut line).map_err(self.io())?;
                    if got == 0 || line.last() != Some(&b'\n') {
                        break;
                    }
                    bytes += got as u64;
                    lines += 1;
                }
                if lines < n {
                    return Err(LedgerError::Short {
                        path: self.path.clone(),
                        found: lines,
                        expected: n,
                    });
                }
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && n == 0 => 0,
            Err(e) => return Err(self.io()(e)),
        };
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(self.io())?;
        f.set_len(keep).map_err(self.io())?;
        self.file = Some(f);
        Ok(())
    }

    /// Appends ids in training order (one write).
    pub fn append<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), LedgerError> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(self.io())?;
            self.file = Some(f);
        }
        let mut text = String::new();
        for id in ids {
            debug_assert!(!id.contains('\n'));
            text.push_str(id);
            text.push('\n');
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(text.as_bytes())
            .map_err(|source| LedgerError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Makes every appended id durable (before a checkpoint that counts them is written).
    pub fn sync(&mut self) -> Result<(), LedgerError> {
        match &self.file {
            Some(f) => f.sync_data().map_err(self.io()),
            None => Ok(()),
        }
    }
}

/// The first `n` trained ids of a run folder, in training order (for `summary.json`).
pub fn read(run_dir: &Path, n: u64) -> Result<Vec<String>, LedgerError> {
    let p = path(run_dir);
    let io = |source| LedgerError::Io {
        path: p.clone(),
        source,
    };
    let f = match File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && n == 0 => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut out = Vec::with_capacity(n as usize);
    for line in BufReader::new(f).lines().take(n as usize) {
        out.push(line.map_err(io)?);
    }
    if (out.len() as u64) < n {
        return Err(LedgerError::Short {
            path: p,
            found: out.len() as u64,
            expected: n,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_reads_and_cuts_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::new(dir.path());
        l.reset_to(0).unwrap();
        l.append(["a#r0#s0", "b#r0#s1"]).unwrap();
        l.append(["c#r1#s0"]).unwrap();
        l.sync().unwrap();
        assert_eq!(
            read(dir.path(), 3).unwrap(),
            ["a#r0#s0", "b#r0#s1", "c#r1#s0"]
        );
        assert_eq!(read(dir.path(), 1).unwrap(), ["a#r0#s0"]);
        // A torn last line (kill -9 mid-write) is cut away with everything after the count.
        let mut f = OpenOptions::new()
            .append(true)
            .open(path(dir.path()))
            .unwrap();
        f.write_all(b"d#r1").unwrap();
        let mut l = Ledger::new(dir.path());
        l.reset_to(2).unwrap();
        l.append(["e#r1#s0"]).unwrap();
        assert_eq!(
            read(dir.path(), 3).unwrap(),
            ["a#r0#s0", "b#r0#s1", "e#r1#s0"]
        );
        let err = Ledger::new(dir.path()).reset_to(9).unwrap_err().to_string();
        assert!(err.contains("9") && err.contains(FILE), "{err}");
        assert!(read(dir.path(), 9).is_err());
    }
}

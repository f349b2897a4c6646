//! The seq floor: a number every seq ever given is below, kept outside the sled store, so that
//! seqs are never reused when the store (and `status.json`, which lives in it) is lost.
//!
//! The floor is reserved ahead in steps of [`STEP`] seqs: one small file write (temporary file,
//! fsync, rename, fsync of the folder) every `STEP` data messages, not every round. It lives
//! beside `data_dir` (`<data_dir>.next-seq`), where removing or moving aside the store does not
//! take it along; when that folder is not writable it lives inside `data_dir` instead, which still
//! survives a corrupt store (moved aside with it, read from there) and a power loss (`status.json`
//! is not fsynced, this file is). The second place is the documented one under the systemd unit
//! (`data_dir = "/var/lib/plantmeter"`, the `StateDirectory`: `ProtectSystem=strict` leaves `/var/lib`
//! read-only) and for an unprivileged user: taking it is logged at info, not as a warning.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Seqs reserved per write of the floor file.
pub const STEP: u64 = 10_000;

/// File name of the floor inside `data_dir` (the fallback place).
const INSIDE_NAME: &str = "next-seq";

/// Why the floor could not be kept.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the seq floor {path}: {source}")]
pub struct FloorError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Where the floor of the store in `data_dir` is kept: beside it, then inside it.
pub fn candidates(data_dir: &Path) -> [PathBuf; 2] {
    let mut beside = data_dir.as_os_str().to_owned();
    beside.push(".next-seq");
    [PathBuf::from(beside), data_dir.join(INSIDE_NAME)]
}

/// The floor kept in `file`, if it is there and readable. A damaged file is logged and ignored.
fn read_one(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    match text.trim().parse::<u64>() {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "unreadable seq floor file; ignored");
            None
        }
    }
}

/// The highest floor found for the store in `data_dir` (and in `aside`, the folder an
/// unreadable store was moved to, which took the inside floor along).
pub fn read(data_dir: &Path, aside: Option<&Path>) -> Option<u64> {
    let mut files = candidates(data_dir).to_vec();
    if let Some(a) = aside {
        files.push(a.join(INSIDE_NAME));
    }
    files.iter().filter_map(|f| read_one(f)).max()
}

/// The floor of one store: every seq given so far is below `value`.
#[derive(Debug)]
pub struct SeqFloor {
    data_dir: PathBuf,
    value: u64,
    /// Where the last write went (None: not written by this process yet).
    written_to: Option<PathBuf>,
}

impl SeqFloor {
    /// The floor of the store in `data_dir`, starting at `value` (what was read, or 0).
    pub fn new(data_dir: &Path, value: u64) -> SeqFloor {
        SeqFloor {
            data_dir: data_dir.to_path_buf(),
            value,
            written_to: None,
        }
    }

    /// Every seq below this may have been given.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// Make sure seqs up to `end` (exclusive) are below the floor on disk before any is given:
    /// if not, write `end + STEP`.
    pub fn reserve(&mut self, end: u64) -> Result<(), FloorError> {
        if end <= self.value {
            return Ok(());
        }
        let value = end.saturating_add(STEP);
        let [beside, inside] = candidates(&self.data_dir);
        let first = self.written_to.clone().unwrap_or(beside);
        match write_atomic(&first, value) {
            Ok(()) => {
                self.written_to = Some(first);
            }
            Err(e) if first != inside => {
                // A folder the agent may not write (the unit's sandbox, another owner) is the
                // documented set-up; any other failure (a full or broken disk) is worth a warning.
                let expected = matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                );
                if expected {
                    tracing::info!(
                        file = %inside.display(),
                        "the seq floor is kept inside the store's folder (the folder above it is not writable here)"
                    );
                } else {
                    tracing::warn!(
                        file = %first.display(),
                        error = %e,
                        fallback = %inside.display(),
                        "cannot keep the seq floor beside the store; keeping it inside (it then survives a corrupt store and a power loss, not the removal of the whole folder)"
                    );
                }
                write_atomic(&inside, value).map_err(|source| FloorError {
                    path: inside.clone(),
                    source,
                })?;
                self.written_to = Some(inside);
            }
            Err(source) => {
                return Err(FloorError {
                    path: first,
                    source,
                })
            }
        }
        self.value = value;
        Ok(())
    }
}

/// Write `value` to `file` so that after a crash it holds the old or the new value, whole.
fn write_atomic(file: &Path, value: u64) -> std::io::Result<()> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{value}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)?;
    // The rename itself is durable once the folder is (an empty parent is the working directory).
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_written_beside_the_store_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut f = SeqFloor::new(&data, 0);
        f.reserve(1).unwrap();
        assert_eq!(f.value(), 1 + STEP);
        assert_eq!(read(&data, None), Some(1 + STEP));
        let [beside, _] = candidates(&data);
        assert!(beside.exists(), "beside the store, not inside it");
        // Within the reserved range: no write.
        std::fs::remove_file(&beside).unwrap();
        f.reserve(STEP).unwrap();
        assert_eq!(read(&data, None), None);
        f.reserve(STEP + 5).unwrap();
        assert_eq!(read(&data, None), Some(2 * STEP + 5));
    }

    #[test]
    fn a_damaged_floor_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(&candidates(&data)[0], "garbage").unwrap();
        std::fs::write(&candidates(&data)[1], "42\n").unwrap();
        assert_eq!(read(&data, None), Some(42));
    }
}

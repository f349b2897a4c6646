//! Which instance this is: its MQTT client id must be stable across restarts (the broker keeps a
//! persistent session, with the messages not yet acknowledged, per client id) and different from
//! every other running instance (a broker disconnects the older of two clients with one id).
//!
//! `--instance NAME` gives it explicitly (a systemd template unit passes `%i`). Without it, the
//! instance takes the first free slot on this host, `{client_id}-{host}-{n}`, held by an exclusive
//! lock on a file in the runtime folder for as long as the process lives: two instances started
//! side by side get slots 0 and 1, and one restarted after a kill gets its own slot (and session) back.

use std::fs::File;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("--instance \"{0}\" must be 1..64 characters of A-Z a-z 0-9 _ -")]
    BadName(String),
    #[error("cannot create the instance lock folder {path}: {source}")]
    LockDir {
        path: String,
        source: std::io::Error,
    },
    #[error("no free instance slot in {0} (64 instances running?)")]
    NoSlot(String),
}

/// The claimed identity; the lock (if any) is held until this is dropped.
#[derive(Debug)]
pub struct Slot {
    pub client_id: String,
    _lock: Option<File>,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| {
            h.trim()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

fn lock_dir() -> PathBuf {
    match std::env::var_os("RUNTIME_DIRECTORY").or_else(|| std::env::var_os("XDG_RUNTIME_DIR")) {
        Some(d) => PathBuf::from(d).join("plantmeter-park"),
        None => std::env::temp_dir().join("plantmeter-park"),
    }
}

/// Claim an identity for this process.
pub fn claim(base: &str, instance: Option<String>) -> Result<Slot, InstanceError> {
    if let Some(name) = instance {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(InstanceError::BadName(name));
        }
        return Ok(Slot {
            client_id: format!("{base}-{name}"),
            _lock: None,
        });
    }
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).map_err(|source| InstanceError::LockDir {
        path: dir.display().to_string(),
        source,
    })?;
    let host = host();
    for n in 0..64 {
        let id = format!("{base}-{host}-{n}");
        let path = dir.join(format!("{id}.lock"));
        let Ok(f) = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        else {
            continue;
        };
        if f.try_lock().is_ok() {
            return Ok(Slot {
                client_id: id,
                _lock: Some(f),
            });
        }
    }
    Err(InstanceError::NoSlot(dir.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_claims_get_two_ids_and_a_released_one_comes_back() {
        let base = format!("test-{}", std::process::id());
        let a = claim(&base, None).expect("slot");
        let b = claim(&base, None).expect("slot");
        assert_ne!(a.client_id, b.client_id);
        let a_id = a.client_id.clone();
        drop(a);
        let c = claim(&base, None).expect("slot");
        assert_eq!(c.client_id, a_id);
        assert_eq!(
            claim("park", Some("b".into())).expect("named").client_id,
            "park-b"
        );
        assert!(claim("park", Some("a b".into())).is_err());
    }
}

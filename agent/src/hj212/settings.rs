//! What the platform sets on the running uplink and what must outlive a restart: the real-time
//! data interval (CN 1062 `RtdInterval`) and the minute data interval (CN 1064 `MinInterval`), in
//! `data_dir/hj212/settings.json`, and the password (CN 1072 `NewPW`) in the password file. Both
//! are written durably (temporary file, fsync, rename, fsync of the folder): a power cut leaves the
//! old file or the new one, never half of one.
//!
//! A setting keeps the config values it replaced: when `[hj212] realtime_s` or `minute` is edited
//! afterwards, the config wins again (the operator's latest word), logged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use plantmeter_common::plan::Hj212Plan;
use serde::{Deserialize, Serialize};

pub const FILE: &str = "settings.json";

/// The platform's settings as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// CN 1062, seconds.
    pub rtd_interval_s: Option<u32>,
    /// CN 1064, minutes.
    pub min_interval_min: Option<u32>,
    /// `[hj212] realtime_s` (ms, None: off) and `minute` when the platform set them.
    pub config_realtime_ms: Option<u64>,
    pub config_minute: u32,
}

fn realtime_ms(h: &Hj212Plan) -> Option<u64> {
    h.realtime
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Stored {
    /// A fresh record of the config's values (no platform setting yet).
    pub fn of(h: &Hj212Plan) -> Stored {
        Stored {
            rtd_interval_s: None,
            min_interval_min: None,
            config_realtime_ms: realtime_ms(h),
            config_minute: h.minute,
        }
    }

    /// Read `dir/settings.json` (a fresh record when there is none, or when the config changed
    /// since; an unreadable file is logged and ignored: the config's values serve).
    pub fn load(dir: &Path, h: &Hj212Plan) -> Stored {
        let path = dir.join(FILE);
        let stored: Stored = match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "HJ 212: the platform's settings are unreadable; the config's intervals serve");
                    return Stored::of(h);
                }
            },
            Err(_) => return Stored::of(h),
        };
        if stored.config_minute != h.minute || stored.config_realtime_ms != realtime_ms(h) {
            if stored.rtd_interval_s.is_some() || stored.min_interval_min.is_some() {
                tracing::warn!(file = %path.display(), "HJ 212: [hj212] realtime_s or minute changed in the config since the platform set its intervals; the config's values serve");
            }
            return Stored::of(h);
        }
        stored
    }

    /// The plan with the platform's intervals applied.
    pub fn apply(&self, h: &mut Hj212Plan) {
        if let Some(m) = self.min_interval_min {
            h.minute = m;
        }
        if let Some(s) = self.rtd_interval_s {
            if h.realtime.is_some() {
                h.realtime = Some(Duration::from_secs(u64::from(s)));
            }
        }
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).context("cannot encode the settings")?;
        write_durable(&dir.join(FILE), &bytes)
    }
}

/// Replace `path` with `bytes` so that a crash or power cut leaves the old or the new content:
/// write a temporary file beside it, fsync it, rename it over, fsync the folder. The file keeps
/// the permissions of the one it replaces (a password file stays 0600).
pub fn write_durable(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Makes the rename itself durable; a folder that cannot be opened (some filesystems) is
        // not worth failing for once the file is in place.
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan() -> Hj212Plan {
        Hj212Plan {
            address: "127.0.0.1:1".into(),
            mn: "M".into(),
            password_file: "pw".into(),
            st: 32,
            minute: 10,
            hour: true,
            day: true,
            realtime: Some(Duration::from_secs(60)),
            ack: true,
            version: 2017,
            sm4_key_file: None,
            sm4_form: Default::default(),
            sm4_length: Default::default(),
            allow_set_time: false,
            heartbeat: None,
            timezone: chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
            factors: Vec::new(),
        }
    }

    #[test]
    fn the_platforms_intervals_outlive_a_restart_until_the_config_changes() {
        let dir = tempfile::tempdir().unwrap();
        let h = plan();
        let mut s = Stored::load(dir.path(), &h);
        assert_eq!(s, Stored::of(&h));
        s.rtd_interval_s = Some(30);
        s.min_interval_min = Some(5);
        s.save(dir.path()).unwrap();
        let mut applied = h.clone();
        Stored::load(dir.path(), &h).apply(&mut applied);
        assert_eq!(
            (applied.minute, applied.realtime),
            (5, Some(Duration::from_secs(30)))
        );
        // The operator edits `minute`: the config wins.
        let mut edited = h.clone();
        edited.minute = 15;
        let s = Stored::load(dir.path(), &edited);
        s.apply(&mut edited);
        assert_eq!(edited.minute, 15);
        assert_eq!(s.min_interval_min, None);
    }

    #[cfg(unix)]
    #[test]
    fn a_durable_write_keeps_the_files_permissions_and_leaves_no_temporary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "123456\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_durable(&p, b"654321\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "654321\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

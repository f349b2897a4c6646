//! The files a config names besides itself (MQTT password, CA, client certificate and key): read and
//! checked by one reader, which `run` uses to connect and `check` uses to fail early, naming the file.

use std::path::{Path, PathBuf};

use super::diag::{into_sorted, ConfigErrors, Diag};
use crate::plan::{Mqtt, Plan};

/// The CA bundle read when `mqtts://` has no `ca_file`.
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What a file must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// A password (UTF-8, not empty; a trailing newline is not part of it).
    Password,
    /// PEM with at least one certificate.
    Certificates,
    /// PEM with a private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

/// A named file that cannot serve: `mqtt.ca_file /etc/plantmeter/ca.pem: no such file`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {}: {problem}", path.display())]
pub struct FileError {
    /// The config key naming the file (`mqtt.password_file`).
    pub key: String,
    pub path: PathBuf,
    pub problem: String,
}

/// Read a file a config names and check that it holds what it must.
pub fn read_named(key: &str, path: &Path, holds: Holds) -> Result<Vec<u8>, FileError> {
    let err = |problem: String| FileError {
        key: key.to_string(),
        path: path.to_path_buf(),
        problem,
    };
    if path.is_dir() {
        return Err(err("is a folder, not a file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        err(match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => format!("cannot read: {e}"),
        })
    })?;
    match holds {
        Holds::Password => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| err("the password is not UTF-8 text".into()))?;
            if text.trim_end_matches(['\r', '\n']).is_empty() {
                return Err(err("the password file is empty".into()));
            }
        }
        Holds::Certificates | Holds::PrivateKey => {
            let mut rest = bytes.as_slice();
            let mut found = false;
            loop {
                match rustls_pemfile::read_one_from_slice(rest) {
                    Ok(Some((item, next))) => {
                        use rustls_pemfile::Item;
                        found |= matches!(
                            (holds, item),
                            (Holds::Certificates, Item::X509Certificate(_))
                                | (
                                    Holds::PrivateKey,
                                    Item::Pkcs8Key(_) | Item::Pkcs1Key(_) | Item::Sec1Key(_)
                                )
                        );
                        rest = next;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(err(format!("not valid PEM ({e:?})"))),
                }
            }
            if !found {
                return Err(err(match holds {
                    Holds::Certificates => "no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
                    _ => "no PEM private key in it (-----BEGIN PRIVATE KEY-----, RSA or EC)",
                }
                .into()));
            }
        }
    }
    Ok(bytes)
}

/// What the MQTT connection reads from files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MqttFiles {
    /// From `password_file`, without its trailing newline.
    pub password: Option<String>,
    /// PEM: `ca_file`, or [`DEFAULT_CA_FILE`] for TLS without one. None without TLS.
    pub ca: Option<Vec<u8>>,
    /// PEM certificate and key for mutual TLS.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

/// Read every file the `[mqtt]` section names (and the default CA bundle for TLS without `ca_file`);
/// every problem, not only the first.
pub fn read_mqtt_files(m: &Mqtt) -> Result<MqttFiles, Vec<FileError>> {
    let mut errors = Vec::new();
    let mut keep = |r: Result<Vec<u8>, FileError>| match r {
        Ok(b) => Some(b),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let password = m
        .password_file
        .as_ref()
        .and_then(|f| keep(read_named("mqtt.password_file", f, Holds::Password)))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches(['\r', '\n'])
                .to_string()
        });
    let ca = if m.tls {
        match &m.ca_file {
            Some(f) => keep(read_named("mqtt.ca_file", f, Holds::Certificates)),
            None => keep(read_named(
                "the default CA bundle (no mqtt.ca_file)",
                Path::new(DEFAULT_CA_FILE),
                Holds::Certificates,
            )),
        }
    } else {
        None
    };
    let cert = m
        .client_cert_file
        .as_ref()
        .and_then(|f| keep(read_named("mqtt.client_cert_file", f, Holds::Certificates)));
    let key = m
        .client_key_file
        .as_ref()
        .and_then(|f| keep(read_named("mqtt.client_key_file", f, Holds::PrivateKey)));
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(MqttFiles {
        password,
        ca,
        client_auth: cert.zip(key),
    })
}

/// Warnings about the files of the `[mqtt]` section that work but should be fixed: a password file that
/// others may read. Group read is the documented set-up (root:plantmeter 0640, deploy/README.md).
pub fn mqtt_file_warnings(m: &Mqtt) -> Vec<String> {
    let mut out = Vec::new();
    #[cfg(unix)]
    if let Some(f) = &m.password_file {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(f) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                out.push(format!(
                    "warning: mqtt.password_file {} is readable by any user (mode {mode:04o}): chmod 640 with the agent's group, or 600 owned by the agent's user",
                    f.display(),
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = m;
    out
}

/// `check`'s view of the files a valid config names: Ok with warnings, or every file that cannot serve as
/// `FILE:LINE:COL: message`, located at the key naming it (at `url` for the default CA bundle).
pub fn check_files(plan: &Plan) -> Result<Vec<String>, ConfigErrors> {
    let warnings = mqtt_file_warnings(&plan.mqtt);
    let mut errors = read_mqtt_files(&plan.mqtt).err().unwrap_or_default();
    if let Some(Err(e)) = plan.hj212.as_ref().map(read_hj212_password) {
        errors.push(e);
    }
    if errors.is_empty() {
        return Ok(warnings);
    }
    let text = std::fs::read_to_string(&plan.source).unwrap_or_default();
    let doc = toml_edit::Document::parse(text.as_str()).ok();
    let mut d = Diag::new(&plan.source, &text);
    for e in errors {
        let (table, key) = match e.key.split_once('.') {
            Some(("hj212", k)) => ("hj212", k),
            Some((_, k)) => ("mqtt", k),
            None => ("mqtt", "url"),
        };
        let span = doc.as_ref().and_then(|doc| {
            let item = doc.as_table().get(table)?.as_table_like()?.get(key)?;
            item.span()
        });
        d.error(&span, e.to_string());
    }
    Err(into_sorted(d.errors))
}

/// The HJ 212 access password (PW) from `[hj212] password_file`, without its trailing newline; it
/// must not contain an HJ 212 separator (`; , = &`), which would break the data segment.
pub fn read_hj212_password(h: &crate::plan::Hj212Plan) -> Result<String, FileError> {
    const KEY: &str = "hj212.password_file";
    let bytes = read_named(KEY, &h.password_file, Holds::Password)?;
    let pw = String::from_utf8_lossy(&bytes)
        .trim_end_matches(['\r', '\n'])
        .to_string();
    if pw
        .chars()
        .any(|c| matches!(c, ';' | ',' | '=' | '&') || c.is_control())
    {
        return Err(FileError {
            key: KEY.to_string(),
            path: h.password_file.clone(),
            problem: "the HJ 212 password must not contain ; , = & or control characters".into(),
        });
    }
    Ok(pw)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIBAAAA\n-----END PRIVATE KEY-----\n";

    #[test]
    fn each_kind_of_file_is_checked_for_what_it_must_hold() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let (cert, key, junk) = (w("c.pem", CERT), w("k.pem", KEY), w("j.pem", "hello\n"));
        assert!(read_named("k", &cert, Holds::Certificates).is_ok());
        assert!(read_named("k", &key, Holds::PrivateKey).is_ok());
        let e = read_named("mqtt.ca_file", &junk, Holds::Certificates).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "mqtt.ca_file {}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
                junk.display()
            )
        );
        assert!(read_named("k", &key, Holds::Certificates).is_err());
        assert!(read_named("k", &cert, Holds::PrivateKey).is_err());
        let e = read_named("k", &dir.path().join("none"), Holds::Password).unwrap_err();
        assert_eq!(e.problem, "no such file");
        let empty = w("p", "\n");
        assert_eq!(
            read_named("k", &empty, Holds::Password)
                .unwrap_err()
                .problem,
            "the password file is empty"
        );
    }
}

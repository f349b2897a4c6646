//! Report integrity: the SHA-256 of a report's canonical JSON (the report without `integrity`, object keys
//! sorted at every level, numbers as serde_json writes them) and, with `[report] sign_key_file`, an ed25519
//! signature of that digest. `plantmeter verify` checks both and recomputes the figures from the store.

use std::path::Path;

use anyhow::Context;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use plantmeter_common::audit::report::{Integrity, Report};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use plantmeter_common::audit::canonical::digest_of_value;
use plantmeter_common::audit::canonical::hex;
#[cfg(test)]
use plantmeter_common::audit::canonical::{write_canonical, write_float};

/// Read the signing key (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes it).
pub fn load_key(path: &Path) -> anyhow::Result<SigningKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("[report] sign_key_file {}: cannot read", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "[report] sign_key_file {}: not an ed25519 private key in PKCS#8 PEM ({e})",
            path.display()
        )
    })
}

/// Read the key a report's signature is checked with: the signer's public key (SPKI PEM, `-----BEGIN
/// PUBLIC KEY-----`, as `plantmeter key` or `openssl pkey -pubout` write it), or the private key itself.
pub fn load_public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("--public-key {}: cannot read", path.display()))?;
    if let Ok(k) = VerifyingKey::from_public_key_pem(&pem) {
        return Ok(k);
    }
    SigningKey::from_pkcs8_pem(&pem)
        .map(|k| k.verifying_key())
        .map_err(|_| {
            anyhow::anyhow!(
                "--public-key {}: not an ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----, as `plantmeter key` prints it)",
                path.display()
            )
        })
}

/// The public key of `key` as SPKI PEM, to hand to whoever verifies the reports.
pub fn public_key_pem(key: &SigningKey) -> anyhow::Result<String> {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey};
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("writing the public key as PEM: {e}"))
}

/// The sidecar of a CSV rendering (`report.csv.sha256`): the CSV file's own SHA-256 as `sha256sum -c`
/// reads it, then a comment line (which `sha256sum -c` skips) naming the JSON it renders:
/// `# plantmeter report.json sha256=HEX signed=yes|no id=REPORT_ID`.
pub fn csv_sidecar(csv: &[u8], csv_name: &str, report: &Report) -> String {
    let seal = plantmeter_common::audit::render::seal_view(report);
    format!(
        "{}  {csv_name}\n# plantmeter report.json sha256={} signed={} id={}\n",
        hex(&Sha256::digest(csv)),
        seal.sha256.unwrap_or("none"),
        if seal.signed { "yes" } else { "no" },
        seal.id
    )
}

/// SHA-256 (lower-case hex) of a file's bytes.
pub fn file_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Seal a report: its digest and, with a key, the signature of the digest.
pub fn seal(report: &mut Report, key: Option<&SigningKey>) -> anyhow::Result<()> {
    report.integrity = None;
    let v = serde_json::to_value(&*report).context("serializing the report")?;
    let sha256 = digest_of_value(&v);
    let (signature, public_key) = match key {
        Some(k) => (
            Some(hex(&k.sign(sha256.as_bytes()).to_bytes())),
            Some(hex(k.verifying_key().as_bytes())),
        ),
        None => (None, None),
    };
    report.integrity = Some(Integrity {
        sha256,
        signature,
        public_key,
    });
    Ok(())
}

/// What checking a report file's own integrity found.
#[derive(Debug, PartialEq)]
pub enum Seal {
    /// The digest matches the content; `signed`: and the signature verifies with the key given.
    Intact { signed: bool },
    /// The digest matches the content; the report is signed but there was no key to check it with.
    SignedUnchecked,
    /// No `integrity` field.
    Unsealed,
    /// Why it does not hold: the digest or the signature.
    Broken(String),
}

/// Check a report file's digest and, with the signer's public key, its signature.
pub fn check_seal(v: &Value, key: Option<&VerifyingKey>) -> Seal {
    let Some(int) = v.get("integrity").filter(|i| !i.is_null()) else {
        return Seal::Unsealed;
    };
    let Some(claimed) = int.get("sha256").and_then(Value::as_str) else {
        return Seal::Broken("integrity.sha256 is missing".to_string());
    };
    let actual = digest_of_value(v);
    if actual != claimed {
        return Seal::Broken(format!(
            "integrity.sha256 {claimed} does not match the report's content (sha256 {actual}): the file was changed after it was written"
        ));
    }
    let Some(sig_hex) = int.get("signature").and_then(Value::as_str) else {
        return Seal::Intact { signed: false };
    };
    let Some(key) = key else {
        return Seal::SignedUnchecked;
    };
    let sig = match unhex(sig_hex).and_then(|b| <[u8; 64]>::try_from(b).ok()) {
        Some(b) => Signature::from_bytes(&b),
        None => return Seal::Broken("integrity.signature is not 64 bytes of hex".to_string()),
    };
    match key.verify(claimed.as_bytes(), &sig) {
        Ok(()) => Seal::Intact { signed: true },
        Err(_) => Seal::Broken(
            "integrity.signature does not verify with the given key: not signed by it, or changed"
                .to_string(),
        ),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn the_digest_ignores_key_order_and_the_integrity_field() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":null}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,2]},"integrity":{"sha256":"z"},"b":1}"#)
                .unwrap();
        assert_eq!(digest_of_value(&a), digest_of_value(&b));
        let c: Value = serde_json::from_str(r#"{"b":2,"a":{"y":[1,2],"x":null}}"#).unwrap();
        assert_ne!(digest_of_value(&a), digest_of_value(&c));
    }

    #[test]
    fn a_sealed_report_checks_and_any_change_breaks_it() {
        let mut r = crate::audit::render::fixture::report();
        seal(&mut r, Some(&key())).unwrap();
        // Through the text, as a file is read back.
        let text = serde_json::to_string_pretty(&r).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let direct = serde_json::to_value(&r).unwrap();
        let (mut a, mut b) = (String::new(), String::new());
        write_canonical(&v, &mut a);
        write_canonical(&direct, &mut b);
        assert!(
            a == b,
            "a report read back must give the same canonical text"
        );
        let vk = key().verifying_key();
        assert_eq!(check_seal(&v, Some(&vk)), Seal::Intact { signed: true });
        // A figure changed.
        let mut t = v.clone();
        t["indicators"]["energy"]["baseline"]["total"] = serde_json::json!(1.0);
        assert!(matches!(check_seal(&t, Some(&vk)), Seal::Broken(m) if m.contains("sha256")));
        // The digest recomputed by a forger, the signature left: the signature fails.
        let mut f = t.clone();
        f["integrity"]["sha256"] = Value::String(digest_of_value(&t));
        assert!(matches!(check_seal(&f, Some(&vk)), Seal::Broken(m) if m.contains("signature")));
        // Another key.
        let other = SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        assert!(matches!(check_seal(&v, Some(&other)), Seal::Broken(_)));
        // Unsigned: the digest still protects against accidents.
        let mut u = crate::audit::render::fixture::report();
        seal(&mut u, None).unwrap();
        let v = serde_json::to_value(&u).unwrap();
        assert_eq!(check_seal(&v, None), Seal::Intact { signed: false });
    }

    proptest::proptest! {
        /// Numbers in the canonical form are written as serde_json writes them today, so the digests of
        /// the reports sealed so far still verify.
        #[test]
        fn floats_are_written_as_serde_json_writes_them(bits in proptest::prelude::any::<u64>()) {
            let x = f64::from_bits(bits);
            proptest::prop_assume!(x.is_finite());
            let mut ours = String::new();
            write_float(x, &mut ours);
            proptest::prop_assert_eq!(ours, serde_json::to_string(&x).unwrap());
        }
    }

    #[test]
    fn floats_of_every_layout() {
        for x in [
            1.2866050715614669e-8,
            1e16,
            1e15,
            1.2345678901234568e17,
            0.0001,
            1e-5,
            1e-6,
            -0.0,
            0.0,
            5e-324,
            f64::MAX,
            0.1,
            100.0,
            37.0,
            1234.5,
            -2.5e-7,
            1e21,
            0.30000000000000004,
        ] {
            let mut ours = String::new();
            write_float(x, &mut ours);
            assert_eq!(ours, serde_json::to_string(&x).unwrap(), "{x}");
        }
    }

    #[test]
    fn keys_load_from_pkcs8_pem_and_bad_files_are_named() {
        use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        std::fs::write(&p, key().to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        assert_eq!(load_key(&p).unwrap().to_bytes(), key().to_bytes());
        std::fs::write(&p, "not a key").unwrap();
        let e = load_key(&p).unwrap_err().to_string();
        assert!(
            e.contains("not an ed25519 private key in PKCS#8 PEM"),
            "{e}"
        );
        let e = load_key(&dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem: cannot read"), "{e}");
    }
}

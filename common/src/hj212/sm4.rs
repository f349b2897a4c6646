//! HJ 212-2025's encryption of the data region: SM4 (GB/T 32907) in ECB mode without padding over
//! the text between `CP=&&` and the closing `&&`, of data uploads (CN 2000-2999), 1014 and 3020; a
//! tail shorter than a block stays plain, so the cipher text is as long as the plain text. The CRC
//! is computed over the plain data segment. On the wire the cipher text is the raw bytes (default)
//! or, as the standard's annex prints it, text `{0xE4,0x3E,...}`; whether the length field counts
//! the plain or the sent bytes is not settled among implementations, so both are settings.

use sm4::cipher::generic_array::GenericArray;
use sm4::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};

use super::{crc, Hj212Error, MAX_DATA_LEN};

const BLOCK: usize = 16;

/// Why an SM4 key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("an SM4 key is 16 characters (as the standard writes keys) or 32 hex digits; found {0} characters")]
    Length(usize),
    #[error("the SM4 key has 32 characters but they are not all hex digits")]
    NotHex,
}

/// A 128-bit SM4 key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; BLOCK]);

impl std::fmt::Debug for Key {
    // Never print a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// From a key file's text: 16 characters taken as bytes (annex A.2's key is "0" x 16), or 32
    /// hex digits; one trailing newline (LF or CRLF) is ignored.
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let t = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        let mut k = [0u8; BLOCK];
        match t.len() {
            16 => k.copy_from_slice(t.as_bytes()),
            32 => {
                for (i, b) in k.iter_mut().enumerate() {
                    *b = t
                        .get(2 * i..2 * i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or(KeyError::NotHex)?;
                }
            }
            n => return Err(KeyError::Length(n)),
        }
        Ok(Key(k))
    }

    pub fn from_bytes(k: [u8; BLOCK]) -> Key {
        Key(k)
    }

    fn cipher(&self) -> sm4::Sm4 {
        sm4::Sm4::new(GenericArray::from_slice(&self.0))
    }

    /// ECB over the whole blocks of `data`; the tail under 16 bytes is left as it is.
    pub fn encrypt(&self, data: &[u8]) -> Vec<u8> {
        let c = self.cipher();
        let mut out = data.to_vec();
        for block in out.chunks_exact_mut(BLOCK) {
            c.encrypt_block(GenericArray::from_mut_slice(block));
        }
        out
    }

    /// The inverse of [`Key::encrypt`].
    pub fn decrypt(&self, data: &[u8]) -> Vec<u8> {
        let c = self.cipher();
        let mut out = data.to_vec();
        for block in out.chunks_exact_mut(BLOCK) {
            c.decrypt_block(GenericArray::from_mut_slice(block));
        }
        out
    }
}

/// Whether HJ 212-2025 encrypts the data region of a packet with this CN.
pub fn encrypted_cn(cn: &str) -> bool {
    matches!(cn, "1014" | "3020") || (cn.len() == 4 && ("2000"..="2999").contains(&cn))
}

/// How cipher text goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum Form {
    /// The cipher bytes themselves.
    #[default]
    Raw,
    /// `{0xE4,0x3E,...}` as the annex prints it.
    Text,
}

/// What the length field counts when the data region is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum LengthOf {
    /// The plain data segment.
    #[default]
    Plain,
    /// The bytes sent.
    Sent,
}

/// The 2025 encryption settings of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct Wire {
    pub key: Key,
    pub form: Form,
    pub length: LengthOf,
}

/// `{0xE4,0x3E,...}`.
pub fn to_text(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("0x{b:02X}")).collect();
    format!("{{{}}}", parts.join(","))
}

/// The bytes of `{0xE4,0x3E,...}`.
pub fn from_text(s: &str) -> Option<Vec<u8>> {
    let inner = s.strip_prefix('{')?.strip_suffix('}')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|p| {
            let h = p.trim();
            let h = h.strip_prefix("0x").or_else(|| h.strip_prefix("0X"))?;
            u8::from_str_radix(h, 16).ok()
        })
        .collect()
}

/// Where the data region of a segment lies: (start, end) of the text between `CP=&&` and the final `&&`.
fn region(segment: &[u8]) -> Option<(usize, usize)> {
    let start = segment.windows(5).position(|w| w == b"CP=&&")? + 5;
    let end = segment.len().checked_sub(2)?;
    (end >= start && segment.get(end..) == Some(b"&&".as_slice())).then_some((start, end))
}

/// The CN of a segment (plain header).
fn cn_of(segment: &[u8]) -> Option<&str> {
    let head = &segment[..region(segment)?.0];
    let head = std::str::from_utf8(head).ok()?;
    head.split(';')
        .find_map(|f| f.strip_prefix("CN="))
        .map(|c| c.trim_end_matches("CP=&&"))
}

impl Wire {
    /// The frame of a plain data segment: its data region encrypted when its CN says so.
    pub fn encode(&self, segment: &str) -> Result<Vec<u8>, Hj212Error> {
        let plain = segment.as_bytes();
        let check = crc(plain);
        let (sent, declared) = match (region(plain), cn_of(plain).is_some_and(encrypted_cn)) {
            (Some((a, b)), true) => {
                let cipher = self.key.encrypt(&plain[a..b]);
                let body: Vec<u8> = match self.form {
                    Form::Raw => cipher,
                    Form::Text => to_text(&cipher).into_bytes(),
                };
                let mut s = plain[..a].to_vec();
                s.extend_from_slice(&body);
                s.extend_from_slice(b"&&");
                let declared = match self.length {
                    LengthOf::Plain => plain.len(),
                    LengthOf::Sent => s.len(),
                };
                (s, declared)
            }
            _ => (plain.to_vec(), plain.len()),
        };
        if declared > MAX_DATA_LEN || sent.len() > MAX_DATA_LEN * 6 {
            return Err(Hj212Error::TooLong { len: declared });
        }
        let mut f = format!("##{declared:04}").into_bytes();
        f.extend_from_slice(&sent);
        f.extend_from_slice(format!("{check:04X}\r\n").as_bytes());
        Ok(f)
    }

    /// A received segment as sent (the bytes between the length field and the CRC) back to plain
    /// text when its CN is one the standard encrypts; None when it cannot be decrypted.
    pub fn decode_segment(&self, sent: &[u8]) -> Option<Vec<u8>> {
        let Some((a, b)) = region(sent) else {
            return Some(sent.to_vec());
        };
        if !cn_of(sent).is_some_and(encrypted_cn) {
            return Some(sent.to_vec());
        }
        let cipher = match self.form {
            Form::Raw => sent[a..b].to_vec(),
            Form::Text => from_text(std::str::from_utf8(&sent[a..b]).ok()?)?,
        };
        let mut out = sent[..a].to_vec();
        out.extend_from_slice(&self.key.decrypt(&cipher));
        out.extend_from_slice(b"&&");
        Some(out)
    }
}

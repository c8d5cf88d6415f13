//! Sealing suspension images: authenticated encryption (XChaCha20-Poly1305), bound to the
//! suspension id and to the snapshot image the execution ran on.
//!
//! A store never holds handler state in the clear, and an image is trusted only because it
//! opens: the capabilities inside it are what the execution was granted, so an image that was
//! changed anywhere (one byte), cut short, sealed for another snapshot, moved to another
//! suspension id or sealed with a key this runtime does not hold is refused.
//!
//! ```text
//! sealed := "NXSI" | version (1 byte) | image identity (32) | nonce (24) | ciphertext + tag (16)
//! plaintext := expires at (u64 LE, ms since the Unix epoch) | the image (MessagePack)
//! associated data := "NXSI" | version | image identity | suspension id
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::engine::SuspensionId;
use crate::engine::image::SuspensionImage;

const MAGIC: &[u8; 4] = b"NXSI";
const VERSION: u8 = 1;
const HEADER: usize = MAGIC.len() + 1 + 32 + 24;
const TAG: usize = 16;

/// The keys suspension images are sealed with: the first seals, every one opens (so a key can
/// be rotated: add the new one first, drop the old one once its images expired).
#[derive(Clone)]
pub struct SuspensionKeys {
    ciphers: Vec<XChaCha20Poly1305>,
}

impl std::fmt::Debug for SuspensionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SuspensionKeys({} keys)", self.ciphers.len())
    }
}

impl SuspensionKeys {
    /// Keys from 32-byte secrets; at least one.
    pub fn new(keys: &[[u8; 32]]) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("at least one suspension key is needed".into());
        }
        Ok(SuspensionKeys { ciphers: keys.iter().map(|key| XChaCha20Poly1305::new(key.into())).collect() })
    }

    /// One random key, for images that never leave the process.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("host randomness is available");
        SuspensionKeys::new(&[key]).expect("one key")
    }

    /// Parses a key written as 64 hexadecimal characters.
    pub fn parse_hex(text: &str) -> Result<[u8; 32], String> {
        let text = text.trim();
        let bad = || format!("a suspension key is 64 hexadecimal characters (32 bytes), not {} characters", text.len());
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(key)
    }

    /// Seals `image` of suspension `id`, made on the snapshot `identity`, expiring at `expires_at`.
    pub fn seal(
        &self,
        image: &SuspensionImage,
        id: &SuspensionId,
        identity: &[u8; 32],
        expires_at: SystemTime,
    ) -> Vec<u8> {
        let image = nexus_abi::encode(image);
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).expect("host randomness is available");
        // Sealed in place: the header, then the plaintext encrypted where it lies, then the tag.
        let mut sealed = Vec::with_capacity(HEADER + 8 + image.len() + TAG);
        sealed.extend_from_slice(MAGIC);
        sealed.push(VERSION);
        sealed.extend_from_slice(identity);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&unix_millis(expires_at).to_le_bytes());
        sealed.extend_from_slice(&image);
        let aad = associated_data(&sealed[..MAGIC.len() + 1 + 32], id);
        let tag = self.ciphers[0]
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut sealed[HEADER..])
            .expect("sealing cannot fail for inputs this size");
        sealed.extend_from_slice(&tag);
        sealed
    }

    /// Opens an image sealed for suspension `id` on the snapshot `identity`: its expiry and the
    /// image. Every way it can fail says why, in a sentence.
    pub fn open(
        &self,
        sealed: &[u8],
        id: &SuspensionId,
        identity: &[u8; 32],
    ) -> Result<(SystemTime, SuspensionImage), String> {
        if sealed.len() < HEADER + TAG || &sealed[..MAGIC.len()] != MAGIC {
            return Err(format!("the stored value of suspension {id} is not a Nexus suspension image"));
        }
        if sealed[MAGIC.len()] != VERSION {
            return Err(format!("suspension {id} is an image of format {}, not {VERSION}", sealed[MAGIC.len()]));
        }
        let sealed_for = &sealed[MAGIC.len() + 1..MAGIC.len() + 1 + 32];
        if sealed_for != identity {
            return Err(format!(
                "suspension {id} was made on another guest image ({}), not this runtime's ({})",
                hex(sealed_for),
                hex(identity)
            ));
        }
        let aad = associated_data(&sealed[..MAGIC.len() + 1 + 32], id);
        let nonce = XNonce::from_slice(&sealed[MAGIC.len() + 1 + 32..HEADER]);
        let payload = || Payload { msg: &sealed[HEADER..], aad: &aad };
        let plaintext =
            self.ciphers.iter().find_map(|cipher| cipher.decrypt(nonce, payload()).ok()).ok_or_else(|| {
                format!(
                    "the image of suspension {id} does not authenticate: it was altered or cut short, belongs to \
                 another suspension, or was sealed with a key this runtime does not hold"
                )
            })?;
        let (expires, image) = plaintext.split_at(8);
        let expires = UNIX_EPOCH + Duration::from_millis(u64::from_le_bytes(expires.try_into().expect("8 bytes")));
        // Authenticated, so made by a runtime holding our key: a decoding failure is a bug or
        // another version, never handler input.
        let image =
            nexus_abi::decode(image).map_err(|e| format!("the image of suspension {id} cannot be read: {e}"))?;
        Ok((expires, image))
    }
}

/// The image identity a sealed image names in its header, if it is one of ours (unauthenticated
/// until it opens: only good for choosing which image to open it for).
pub fn sealed_for(sealed: &[u8]) -> Option<[u8; 32]> {
    if sealed.len() < HEADER + TAG || &sealed[..MAGIC.len()] != MAGIC || sealed[MAGIC.len()] != VERSION {
        return None;
    }
    sealed[MAGIC.len() + 1..MAGIC.len() + 1 + 32].try_into().ok()
}

fn associated_data(header: &[u8], id: &SuspensionId) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(id.0.as_bytes());
    aad
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// The first 8 bytes of an identity, in hex, for messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

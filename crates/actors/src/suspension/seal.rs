//! Sealing suspension images: authenticated encryption, bound to the suspension id and to the
//! snapshot image the execution ran on.
//!
//! A store never holds handler state in the clear, and an image is trusted only because it
//! opens: the capabilities inside it are what the execution was granted, so an image that was
//! changed anywhere (one byte), cut short, sealed for another snapshot, moved to another
//! suspension id or sealed with a key this runtime does not hold is refused.
//!
//! ```text
//! sealed := "NXSI" | format (1 byte) | image identity (32) | nonce (24) | ciphertext + tag (16)
//! plaintext := expires at (u64 LE, ms since the Unix epoch) | the image (MessagePack)
//! associated data := "NXSI" | format | image identity | suspension id
//! ```
//!
//! * Format 2, what this build seals: AES-256-GCM (`ring`) under a key made for this one
//!   image, HKDF-SHA256 of the configured key with the random nonce as salt, and a zero GCM
//!   nonce. AES-GCM because it is the cheapest AEAD on a CPU with AES instructions (an 11 KB
//!   image: ~1.3 µs against ~11 µs for XChaCha20-Poly1305, on the path of every hibernation
//!   and every restore); a key per image because a long-lived configured key may seal
//!   billions of images, more than GCM's random 96-bit nonces allow under one key.
//! * Format 1, what earlier builds sealed: XChaCha20-Poly1305 under the configured key with
//!   the 24-byte nonce. Still opened, so the images in a store outlive a deploy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};

use crate::engine::SuspensionId;
use crate::engine::image::SuspensionImage;

const MAGIC: &[u8; 4] = b"NXSI";
/// The format this build seals.
const FORMAT: u8 = 2;
/// The format of earlier builds, still opened.
const XCHACHA_FORMAT: u8 = 1;
const NONCE: usize = 24;
const HEADER: usize = MAGIC.len() + 1 + 32 + NONCE;
const TAG: usize = 16;
/// HKDF's `info` for the key of one image.
const KEY_INFO: &[u8] = b"nexus suspension image key";

/// The keys suspension images are sealed with: the first seals, every one opens (so a key can
/// be rotated: add the new one first, drop the old one once its images expired).
#[derive(Clone)]
pub struct SuspensionKeys {
    secrets: Vec<[u8; 32]>,
    /// The same keys for format 1.
    xchacha: Vec<XChaCha20Poly1305>,
}

impl std::fmt::Debug for SuspensionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SuspensionKeys({} keys)", self.secrets.len())
    }
}

impl SuspensionKeys {
    /// Keys from 32-byte secrets; at least one.
    pub fn new(keys: &[[u8; 32]]) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("at least one suspension key is needed".into());
        }
        let xchacha = keys.iter().map(|key| XChaCha20Poly1305::new(key.into())).collect();
        Ok(SuspensionKeys { secrets: keys.to_vec(), xchacha })
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
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).expect("host randomness is available");
        // Sealed in place: the header, then the plaintext encoded and encrypted where it lies,
        // then the tag. Room for the host state beyond the memory delta, then the excess given
        // back: a store keeps this vector, and one that had doubled would hold twice its size.
        let mut sealed = Vec::with_capacity(HEADER + 8 + image.memory.bytes.len() + (16 << 10) + TAG);
        sealed.extend_from_slice(MAGIC);
        sealed.push(FORMAT);
        sealed.extend_from_slice(identity);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&unix_millis(expires_at).to_le_bytes());
        rmp_serde::encode::write_named(&mut sealed, image).expect("an image is always serializable");
        let aad = associated_data(&sealed[..MAGIC.len() + 1 + 32], id);
        let tag = image_key(&self.secrets[0], &nonce)
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::from(&aad), &mut sealed[HEADER..])
            .expect("sealing cannot fail for inputs this size");
        sealed.extend_from_slice(tag.as_ref());
        sealed.shrink_to_fit();
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
        let format = sealed[MAGIC.len()];
        if !opens(format) {
            return Err(format!(
                "suspension {id} is an image of format {format}, which this runtime cannot open (formats \
                 {XCHACHA_FORMAT} and {FORMAT})"
            ));
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
        let nonce = &sealed[MAGIC.len() + 1 + 32..HEADER];
        let plaintext = if format == FORMAT {
            self.secrets.iter().find_map(|secret| {
                // A failed attempt leaves its buffer unspecified: each key gets its own copy.
                let mut buffer = sealed[HEADER..].to_vec();
                let key = image_key(secret, nonce);
                let len =
                    key.open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::from(&aad), &mut buffer).ok()?.len();
                buffer.truncate(len);
                Some(buffer)
            })
        } else {
            let payload = || Payload { msg: &sealed[HEADER..], aad: &aad };
            self.xchacha.iter().find_map(|cipher| cipher.decrypt(XNonce::from_slice(nonce), payload()).ok())
        };
        let plaintext = plaintext.ok_or_else(|| {
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

/// This build opens images of `format`.
fn opens(format: u8) -> bool {
    format == FORMAT || format == XCHACHA_FORMAT
}

/// The AES-256-GCM key of the one image whose nonce is `nonce`.
fn image_key(secret: &[u8; 32], nonce: &[u8]) -> LessSafeKey {
    let prk = Salt::new(HKDF_SHA256, nonce).extract(secret);
    let okm = prk.expand(&[KEY_INFO], &AES_256_GCM).expect("an AES-256 key is within what HKDF can make");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// The image identity a sealed image names in its header, if it is one of ours (unauthenticated
/// until it opens: only good for choosing which image to open it for).
pub fn sealed_for(sealed: &[u8]) -> Option<[u8; 32]> {
    if sealed.len() < HEADER + TAG || &sealed[..MAGIC.len()] != MAGIC || !opens(sealed[MAGIC.len()]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::image::{IMAGE_VERSION, MemoryDelta};
    use chacha20poly1305::aead::AeadInPlace;
    use nexus_host_fns::{Checker, HostState};

    const IDENTITY: [u8; 32] = [7; 32];

    fn image() -> SuspensionImage {
        SuspensionImage {
            version: IMAGE_VERSION,
            memory_size: 1 << 16,
            memory_limit: 16 << 20,
            globals: Vec::new(),
            memory: MemoryDelta { pages: vec![3], chunks: vec![1], bytes: vec![42; 100] },
            host: HostState::new(Default::default(), Checker::new([]), Default::default(), 0),
            denied: false,
            unknown_extension: false,
            source: None,
            time_left: Duration::from_millis(1234),
        }
    }

    fn expiry() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(4_000_000_000_000)
    }

    /// What earlier builds sealed (format 1): XChaCha20-Poly1305 under the key itself.
    fn sealed_as_format_1(key: &[u8; 32], image: &SuspensionImage, id: &SuspensionId) -> Vec<u8> {
        let mut sealed = MAGIC.to_vec();
        sealed.push(XCHACHA_FORMAT);
        sealed.extend_from_slice(&IDENTITY);
        sealed.extend_from_slice(&[9; NONCE]);
        sealed.extend_from_slice(&unix_millis(expiry()).to_le_bytes());
        sealed.extend_from_slice(&nexus_abi::encode(image));
        let aad = associated_data(&sealed[..MAGIC.len() + 1 + 32], id);
        let tag = XChaCha20Poly1305::new(key.into())
            .encrypt_in_place_detached(XNonce::from_slice(&[9; NONCE]), &aad, &mut sealed[HEADER..])
            .unwrap();
        sealed.extend_from_slice(&tag);
        sealed
    }

    #[test]
    fn an_image_opens_as_it_was_sealed_and_not_with_a_byte_changed_anywhere() {
        let keys = SuspensionKeys::new(&[[1; 32]]).unwrap();
        let id = SuspensionId::random();
        let sealed = keys.seal(&image(), &id, &IDENTITY, expiry());
        assert_eq!(sealed[MAGIC.len()], FORMAT);
        assert_eq!(sealed.capacity(), sealed.len(), "a store keeps the vector: no spare room in it");
        let (expires, opened) = keys.open(&sealed, &id, &IDENTITY).unwrap();
        assert_eq!((expires, opened.memory, opened.time_left), (expiry(), image().memory, image().time_left));
        for at in 0..sealed.len() {
            let mut changed = sealed.clone();
            changed[at] ^= 0x20;
            assert!(keys.open(&changed, &id, &IDENTITY).is_err(), "byte {at} changed and the image still opened");
        }
        assert!(keys.open(&sealed[..sealed.len() - 1], &id, &IDENTITY).is_err());
        let error = keys.open(&sealed, &SuspensionId::random(), &IDENTITY).unwrap_err();
        assert!(error.contains("does not authenticate"), "{error}");
    }

    #[test]
    fn each_image_is_sealed_under_a_key_of_its_own() {
        let keys = SuspensionKeys::new(&[[1; 32]]).unwrap();
        let id = SuspensionId::random();
        let (a, b) = (keys.seal(&image(), &id, &IDENTITY, expiry()), keys.seal(&image(), &id, &IDENTITY, expiry()));
        assert_ne!(a[HEADER..], b[HEADER..], "two seals of one image must not share a key stream");
    }

    #[test]
    fn an_image_sealed_by_an_earlier_build_in_format_1_still_opens_with_any_configured_key() {
        let (old, new) = ([1; 32], [2; 32]);
        let id = SuspensionId::random();
        let sealed = sealed_as_format_1(&old, &image(), &id);
        let rotated = SuspensionKeys::new(&[new, old]).unwrap();
        let (expires, opened) = rotated.open(&sealed, &id, &IDENTITY).unwrap();
        assert_eq!((expires, opened.memory), (expiry(), image().memory));
        assert_eq!(sealed_for(&sealed), Some(IDENTITY));
        let error = SuspensionKeys::new(&[new]).unwrap().open(&sealed, &id, &IDENTITY).unwrap_err();
        assert!(error.contains("does not authenticate"), "{error}");
    }

    #[test]
    fn an_image_of_an_unknown_format_is_refused_naming_it() {
        let keys = SuspensionKeys::new(&[[1; 32]]).unwrap();
        let id = SuspensionId::random();
        let mut sealed = keys.seal(&image(), &id, &IDENTITY, expiry());
        sealed[MAGIC.len()] = 3;
        let error = keys.open(&sealed, &id, &IDENTITY).unwrap_err();
        assert!(error.contains("format 3, which this runtime cannot open"), "{error}");
        assert_eq!(sealed_for(&sealed), None);
    }
}

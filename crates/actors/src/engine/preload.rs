//! Libraries preloaded into the snapshot every execution starts from.
//!
//! With libraries configured, the engine does not start from the committed guest but from an
//! image of its own: the committed guest with each library evaluated in order (the guest's
//! `nexus_preload` entry point), snapshotted with Wizer. A library costs nothing per execution
//! (its objects are in the copy-on-write memory image) and every execution still gets its own
//! copy of them: whatever one handler changes is gone in the next.
//!
//! * No host function is reachable while a library loads (see [`super::snapshot`]): a library
//!   that reaches one fails the start, naming it.
//! * What a library computes at load is frozen into the image and shared by every execution:
//!   `Math.random` is refused while it loads and the clock it sees is fixed at 0 (1970), so a
//!   library cannot mint a secret or a timestamp at load by mistake.
//! * The image is kept in the module cache directory (authenticated like every cache entry,
//!   and not trusted on read beyond that: wasmtime validates it), named by its identity: the
//!   guest's SHA-256 and each library's name and source SHA-256. A process that starts with a
//!   set it has built before skips the build ([`ImageOrigin::Cached`]).

use std::time::Instant;

use wasmtime::Result;

use super::disk_cache::{Digest, DiskCache, digest, hex};
use super::library::Library;
use super::module::GuestImage;
use super::snapshot;
use super::ticker::Ticker;

/// Where the image an engine starts from came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOrigin {
    /// The committed guest: no libraries.
    Committed,
    /// Built at this start (and written to the cache directory, when there is one).
    Built,
    /// Read from the cache directory: built by an earlier start with the same libraries.
    Cached,
}

/// How this build makes a preloaded image (2: without the empty passive data segments Wizer
/// leaves). It names the image in the cache directory and keys its compiled module, so an image
/// built another way is never read back. The image identity leaves it out: built either way, an
/// image starts executions from the same memory and globals, so suspensions and compiled
/// bytecode carry over from one build to the next.
const BUILD: &[u8] = b"nexus preloaded image build 2";

/// The image every execution of an engine on `base` starts from, and where it came from:
/// `base` itself when there are no libraries; otherwise `base` with them, from the cache
/// directory or built now (and cached).
pub fn start_image(
    engine: &wasmtime::Engine,
    base: &GuestImage,
    libraries: &[Library],
    disk: Option<&DiskCache>,
    ticker: &Ticker,
) -> Result<(GuestImage, ImageOrigin)> {
    if libraries.is_empty() {
        return Ok((base.clone(), ImageOrigin::Committed));
    }
    Library::check_names(libraries)?;
    let identity = start_identity(base, libraries);
    let module = digest(&[&identity, BUILD]);
    let file = format!("preload-{}.wasm", hex(&module));
    if let Some(wasm) = disk.and_then(|disk| disk.read(&file)) {
        tracing::info!(libraries = libraries.len(), image = %&hex(&identity)[..16], "preloaded image read from the cache");
        return Ok((GuestImage::built(wasm, identity, module), ImageOrigin::Cached));
    }
    let started = Instant::now();
    let wasm = snapshot::build(engine, base, libraries, disk, ticker)?;
    tracing::info!(
        libraries = libraries.len(),
        image = %&hex(&identity)[..16],
        build_ms = started.elapsed().as_millis() as u64,
        "preloaded image built"
    );
    if let Some(disk) = disk {
        // A cache that cannot be written only costs the next start a build.
        let _ = disk.write(&file, &wasm);
    }
    Ok((GuestImage::built(wasm, identity, module), ImageOrigin::Built))
}

/// The identity of the image an engine on `base` with `libraries` starts from: `base`'s own
/// without libraries; otherwise the digest of `base`'s identity and, in order, each library's
/// name and the digest of its source.
pub fn start_identity(base: &GuestImage, libraries: &[Library]) -> Digest {
    if libraries.is_empty() {
        return base.identity();
    }
    let guest = base.identity();
    let sources: Vec<Digest> = libraries.iter().map(|library| digest(&[library.source.as_bytes()])).collect();
    let mut parts: Vec<&[u8]> = vec![b"nexus preloaded image", &guest];
    for (library, source) in libraries.iter().zip(&sources) {
        parts.push(library.name.as_bytes());
        parts.push(source);
    }
    digest(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_depends_on_the_guest_and_every_name_source_and_their_order() {
        let identity = |libraries: &[Library]| start_identity(&GuestImage::committed(), libraries);
        let a = Library::new("a.js", "var a = 1;");
        let b = Library::new("b.js", "var b = 2;");
        let base = identity(&[a.clone(), b.clone()]);
        assert_eq!(identity(&[]), GuestImage::committed().identity(), "no libraries: the guest's own");
        assert_ne!(base, GuestImage::committed().identity());
        assert_eq!(base, identity(&[a.clone(), b.clone()]));
        assert_ne!(base, identity(&[b.clone(), a.clone()]), "order");
        assert_ne!(base, identity(&[Library::new("c.js", "var a = 1;"), b.clone()]), "name");
        assert_ne!(base, identity(&[Library::new("a.js", "var a = 3;"), b.clone()]), "source");
        assert_ne!(base, identity(std::slice::from_ref(&a)), "set");
        let other = GuestImage::built(b"\0asm another guest".to_vec(), [7; 32], [7; 32]);
        assert_ne!(base, start_identity(&other, &[a, b]), "guest");
    }
}

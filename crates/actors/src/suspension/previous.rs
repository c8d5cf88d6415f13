//! Rolling deploys: a suspension is resumed on the guest image it was made with.
//!
//! A new build of the product (a new guest) makes a new snapshot image, and a suspension image
//! only ever restores into the image it was sealed for. So that a deploy strands none, a
//! runtime is given the guest images of earlier deploys
//! ([`crate::RuntimeConfig::previous_guests`]); a stored suspension sealed for one of them is
//! restored and run on an engine of that image, built on its first use (a compilation of the
//! guest, unless the module cache has it) and kept. If it suspends again, it is hibernated on
//! the same image, so an execution finishes on the image it began on; new executions use the
//! current one. A suspension of an image the runtime was not given is refused with an error
//! naming that image, and stays claimable (another node may have it).
//!
//! These steps run on a thread of their own rather than on the pool's actors (whose instances
//! are of the current image): they happen only while a deploy drains.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use nexus_abi::{ErrorCode, ExtOutcome};

use super::seal::hex;
use super::store::{Claim, Stored, store_failed};
use super::{Sealer, Suspensions, open_claimed};
use crate::engine::{Engine, EngineConfig, ExecutionError, ExecutionResult, GuestImage, SuspensionId, start_identity};
use crate::refusal::Refusal;

/// Instances an engine of a previous image may hold at once.
const PREVIOUS_INSTANCES: u32 = 16;

/// The guest images of earlier deploys, and their engines once built.
pub struct PreviousImages {
    images: HashMap<[u8; 32], GuestImage>,
    engines: Mutex<HashMap<[u8; 32], Engine>>,
    config: EngineConfig,
}

impl PreviousImages {
    /// Reads the guests in `files` (their engines are built when first needed).
    pub fn load(files: &[PathBuf], config: &EngineConfig) -> Result<Self, String> {
        // Keyed by the identity their engines will have: with libraries, the snapshot of each
        // previous guest with the same libraries preloaded.
        let images = files
            .iter()
            .map(|file| GuestImage::load(file).map(|image| (start_identity(&image, &config.libraries), image)))
            .collect::<Result<_, _>>()?;
        // Only restores and resumes run on them: no new handler is compiled, so no bytecode
        // cache (its entries are the current guest's).
        let config = EngineConfig { compile_cache_dir: None, ..config.clone() };
        Ok(PreviousImages { images, engines: Mutex::default(), config })
    }

    /// The engine of image `identity`; `None` when the runtime was not given that image.
    pub(crate) fn engine(&self, identity: &[u8; 32]) -> Option<Result<Engine, String>> {
        let image = self.images.get(identity)?;
        let mut engines = self.engines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(engine) = engines.get(identity) {
            return Some(Ok(engine.clone()));
        }
        let built = Engine::with_image(self.config.clone(), image, PREVIOUS_INSTANCES)
            .map_err(|e| format!("starting an engine for the previous guest image {}: {e:#}", hex(identity)));
        if let Ok(engine) = &built {
            engines.insert(*identity, engine.clone());
        }
        Some(built)
    }
}

/// How a step on a previous image ended.
pub(crate) enum Stepped {
    /// It ran: its result, and the next suspension's sealed image when it suspended again.
    Ran(Box<ExecutionResult>, Option<Stored>),
    /// The resume was refused (no such pending call, a value nested too deep): nothing changed.
    Refused(ExecutionError),
}

/// Runs [`step_on`] on a thread of its own (the pool's actors hold instances of the current
/// image).
pub(crate) async fn step_on_previous(
    engine: Engine,
    sealer: Sealer,
    image: crate::engine::image::SuspensionImage,
    id: SuspensionId,
    call_id: u32,
    outcome: ExtOutcome,
    next_expiry: SystemTime,
) -> Stepped {
    let (done, stepped) = tokio::sync::oneshot::channel();
    let step = move || {
        let stepped = step_on(&engine, &sealer, image, id, call_id, outcome, next_expiry);
        let _ = done.send(stepped);
    };
    if let Err(e) = std::thread::Builder::new().name("nexus-previous-image".into()).spawn(step) {
        let error = ExecutionError::new(ErrorCode::Internal, format!("starting a thread for a previous image: {e}"));
        return Stepped::Refused(error);
    }
    stepped.await.unwrap_or_else(|_| {
        Stepped::Refused(ExecutionError::new(ErrorCode::Internal, "the step on a previous image panicked"))
    })
}

/// Restores `image` on `engine`, settles call `call_id`, and runs the step; a suspension it
/// ends in is hibernated on the same engine and sealed for its image.
fn step_on(
    engine: &Engine,
    sealer: &Sealer,
    image: crate::engine::image::SuspensionImage,
    id: SuspensionId,
    call_id: u32,
    outcome: ExtOutcome,
    next_expiry: SystemTime,
) -> Stepped {
    let parked = match engine.restore(image, id) {
        Ok(parked) => parked,
        Err(error) => return Stepped::Refused(error),
    };
    let stepped = match engine.resume(parked, call_id, outcome) {
        Ok(stepped) => stepped,
        Err(refused) => return Stepped::Refused(refused.error),
    };
    let mut result = Box::new(stepped.result);
    let Some(parked) = stepped.parked else { return Stepped::Ran(result, None) };
    let next_id = SuspensionId::random();
    match engine.hibernate(parked) {
        Ok((image, _spent)) => {
            let sealed = sealer.seal(&image, &next_id, next_expiry);
            if let Some(suspension) = result.suspension.as_mut() {
                suspension.id = next_id.clone();
            }
            Stepped::Ran(result, Some(Stored { id: next_id, image: sealed, expires_at: next_expiry }))
        }
        Err(e) => {
            let error = ExecutionError::new(ErrorCode::Internal, format!("hibernating on a previous image: {e:#}"));
            result.fail_keeping_records(error);
            Stepped::Ran(result, None)
        }
    }
}

impl Suspensions {
    /// Resumes the claimed suspension `claim`, sealed for the previous image `identity`, on
    /// that image; commits the claim when the step ran, releases it otherwise.
    pub(super) async fn resume_on_previous(
        &self,
        claim: Claim,
        identity: [u8; 32],
        call_id: u32,
        outcome: ExtOutcome,
        next_expiry: SystemTime,
    ) -> Result<ExecutionResult, Refusal> {
        let store = self.store.clone();
        let id = claim.id.clone();
        let engine = match self.previous.engine(&identity) {
            Some(Ok(engine)) => engine,
            unavailable => {
                let _ = store.release(claim).await;
                let message = match unavailable {
                    Some(Err(message)) => message,
                    _ => format!(
                        "suspension {id} was made on the image {} (SHA-256 prefix of its guest and preloaded \
                         libraries), which this runtime does not have: preload the same libraries in the same order \
                         (`nexus resume --preload`), give it that guest among its previous images \
                         (RuntimeConfig::previous_guests), or resume it on a node that runs it",
                        hex(&identity)
                    ),
                };
                return Err(Refusal::new(ErrorCode::InvalidArgument, message));
            }
        };
        let sealer = self.sealer.with_identity(identity);
        let (image, claim) = open_claimed(&*store, &sealer, claim).await?;
        let restoring = Instant::now();
        match step_on_previous(engine, sealer, image, id, call_id, outcome, next_expiry).await {
            Stepped::Refused(error) => {
                let _ = store.release(claim).await;
                Err(Refusal::from(error))
            }
            Stepped::Ran(mut result, next) => {
                self.metrics.restored(restoring.elapsed());
                if let Err(error) = store.commit(claim, next).await {
                    result.fail_keeping_records(store_failed(error));
                }
                Ok(*result)
            }
        }
    }
}

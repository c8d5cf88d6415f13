//! Suspended executions as data: what an execution holds survives hibernation (the engine's
//! image, sealed and opened), and a sealed image that was changed in any way is refused.

mod common;

use std::time::{Duration, SystemTime};

use common::{register, request};
use nexus::image::SuspensionImage;
use nexus::{ErrorCode, ExecutionRequest, ExecutionResult, ExtOutcome, ParkedExecution, Sealer, Status, SuspensionId};
use nexus::{SuspensionKeys, image_identity};
use serde_json::{Value, json};

fn sealer(key: u8) -> Sealer {
    Sealer::new(SuspensionKeys::new(&[[key; 32]]).unwrap())
}

fn extension_request(source: &str) -> ExecutionRequest {
    register(request(source, &["ext:kv"], json!({})), "kv", &["get"])
}

/// Hibernates a parked execution (sealed under `id`) and restores it from the sealed bytes.
fn through_an_image(parked: ParkedExecution, id: &SuspensionId) -> ParkedExecution {
    let engine = common::engine();
    let sealer = sealer(1);
    let (image, _) = engine.hibernate(parked).expect("hibernates");
    let sealed = sealer.seal(&image, id, SystemTime::now() + Duration::from_secs(60));
    let (_, image) = sealer.open(&sealed, id).expect("opens");
    engine.restore(image, id.clone()).expect("restores")
}

/// Runs `source` to its end, answering call n (1-based) with `answer(n)`; when `hibernate`,
/// every suspension goes through an image first.
fn run_to_end(source: &str, answer: impl Fn(u32) -> ExtOutcome, hibernate: bool) -> ExecutionResult {
    let engine = common::engine();
    let mut outcome = engine.execute(extension_request(source));
    loop {
        let Some(mut parked) = outcome.parked.take() else { return outcome.result };
        let suspension = outcome.result.suspension.clone().expect("suspended");
        if hibernate {
            parked = through_an_image(parked, &suspension.id);
        }
        let call_id = suspension.calls[0].call_id;
        outcome = engine.resume(parked, call_id, answer(call_id)).ok().expect("a pending call");
    }
}

#[test]
fn closures_caught_rejections_promise_all_and_a_big_heap_survive_hibernation() {
    let handlers = [
        // Closures over locals made before the suspension.
        "let n = 40; const add = (x) => n + x; n += 1; const v = await $ext.kv.get('a'); return add(v);",
        // try/catch around an await whose call is rejected.
        "try { await $ext.kv.get('a'); return 'no'; } catch (e) { return 'caught ' + e.message; }",
        // Promise.all with some calls settled before the next suspension.
        "const r = await Promise.all([$ext.kv.get(1), $ext.kv.get(2), $ext.kv.get(3)]); return r.join(',');",
        // A heap of 2,000 objects made before, read after.
        "const xs = []; for (let i = 0; i < 2000; i++) xs.push({ i, s: 'o' + i, inner: [i, i * 2] });\n\
         const v = await $ext.kv.get('a'); let sum = 0; for (const x of xs) sum += x.inner[1];\n\
         return [v, sum, xs[1999].s];",
        // Several suspensions in a row, with state kept between them.
        "let acc = []; for (let i = 0; i < 5; i++) { acc.push(await $ext.kv.get(i)); } return acc;",
    ];
    for (index, source) in handlers.iter().enumerate() {
        let answer = |call_id: u32| match index {
            1 => ExtOutcome::Err { code: None, message: format!("call {call_id} failed") },
            _ => ExtOutcome::Ok(json!(call_id)),
        };
        let live = run_to_end(source, answer, false);
        let hibernated = run_to_end(source, answer, true);
        assert_eq!(live.status, Status::Success, "{source}: {live:?}");
        assert_eq!(hibernated.status, live.status, "{source}");
        assert_eq!(hibernated.return_value, live.return_value, "{source}");
    }
}

#[test]
fn the_random_sequence_goes_on_after_a_restore_exactly_where_it_was() {
    let engine = common::engine();
    let source = "const before = Math.random(); await $ext.kv.get('a'); return [before, Math.random(), Math.random()];";
    let outcome = engine.execute(extension_request(source));
    let id = outcome.result.suspension.unwrap().id;
    let sealer = sealer(1);
    let (image, _) = engine.hibernate(outcome.parked.unwrap()).unwrap();
    let sealed = sealer.seal(&image, &id, SystemTime::now() + Duration::from_secs(60));
    // Two restores of one image continue one generator: the same values, not a re-seeded one.
    let results: Vec<Value> = (0..2)
        .map(|_| {
            let (_, image) = sealer.open(&sealed, &id).unwrap();
            let parked = engine.restore(image, id.clone()).unwrap();
            let done = engine.resume(parked, 1, ExtOutcome::Ok(json!(0))).ok().unwrap().result;
            done.return_value
        })
        .collect();
    assert_eq!(results[0], results[1]);
    let values = results[0].as_array().unwrap();
    assert_ne!(values[1], values[2]);
    assert_ne!(values[0], values[1]);
}

#[test]
fn the_memory_limit_holds_after_a_restore() {
    let engine = common::engine();
    let mut request = extension_request(
        "await $ext.kv.get('a'); const parts = []; for (;;) parts.push('x'.repeat(1 << 16) + parts.length);",
    );
    request.memory_limit = Some(16 << 20);
    let outcome = engine.execute(request);
    let id = outcome.result.suspension.unwrap().id;
    let (image, _) = engine.hibernate(outcome.parked.unwrap()).unwrap();
    assert_eq!(image.memory_limit, 16 << 20);
    let parked = engine.restore(image, id).unwrap();
    let done = engine.resume(parked, 1, ExtOutcome::Ok(json!(0))).ok().unwrap().result;
    assert_eq!(done.error.map(|e| e.code), Some(ErrorCode::MemoryLimit));
    assert!(done.metrics.memory_bytes <= 16 << 20, "{}", done.metrics.memory_bytes);
}

#[test]
fn an_image_is_small_and_keeps_only_the_pages_that_changed() {
    let engine = common::engine();
    let outcome = engine.execute(extension_request(
        "const objects = []; for (let i = 0; i < 40; i++) objects.push({ i, name: 'n' + i });\n\
         const v = await $ext.kv.get('a'); return objects.length + v;",
    ));
    let id = outcome.result.suspension.unwrap().id;
    let (image, _) = engine.hibernate(outcome.parked.unwrap()).unwrap();
    let sealed = sealer(1).seal(&image, &id, SystemTime::now());
    assert!(image.memory.pages.len() < 120, "{} pages differ", image.memory.pages.len());
    assert!(sealed.len() < 32 << 10, "a sealed image of {} bytes", sealed.len());
}

/// A sealed image of a suspended execution, its id, and the plain image for reference.
fn sealed_image() -> (Vec<u8>, SuspensionId) {
    let engine = common::engine();
    let outcome = engine.execute(register(
        request(
            "$state.n = 1; await $ext.kv.get('a'); return $state.n;",
            &["ext:kv", "state:write:n", "state:read:n"],
            json!({"secret": "hunter2"}),
        ),
        "kv",
        &["get"],
    ));
    let id = outcome.result.suspension.unwrap().id;
    let (image, _): (SuspensionImage, _) = engine.hibernate(outcome.parked.unwrap()).unwrap();
    (sealer(1).seal(&image, &id, SystemTime::now() + Duration::from_secs(60)), id)
}

#[test]
fn an_image_changed_anywhere_cut_short_relabelled_or_foreign_is_refused() {
    let (sealed, id) = sealed_image();
    let sealer = sealer(1);
    assert!(sealer.open(&sealed, &id).is_ok());
    // Handler state is never in the clear.
    assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "the state is encrypted");
    // One byte flipped anywhere: header, memory delta, capabilities, host state, tag.
    for position in 0..sealed.len() {
        let mut tampered = sealed.clone();
        tampered[position] ^= 0x01;
        let error = sealer.open(&tampered, &id).err().unwrap_or_else(|| panic!("byte {position} flipped opened"));
        assert!(!error.is_empty());
    }
    for length in [0, 10, sealed.len() / 2, sealed.len() - 1] {
        assert!(sealer.open(&sealed[..length], &id).is_err(), "cut to {length} bytes");
    }
    let moved = sealer.open(&sealed, &SuspensionId("0".repeat(32))).unwrap_err();
    assert!(moved.contains("does not authenticate"), "{moved}");
    let other_key = self::sealer(2).open(&sealed, &id).unwrap_err();
    assert!(other_key.contains("does not authenticate"), "{other_key}");
    let mut foreign = sealed.clone();
    foreign[5] ^= 0xff; // the image identity
    let foreign = sealer.open(&foreign, &id).unwrap_err();
    assert!(foreign.contains("another guest image") && foreign.contains(&identity_prefix()), "{foreign}");
    let not_ours = sealer.open(b"{\"status\":\"suspended\"} and more bytes than a header", &id).unwrap_err();
    assert!(not_ours.contains("not a Nexus suspension image"), "{not_ours}");
}

#[test]
fn an_image_sealed_with_an_old_key_opens_while_that_key_is_configured() {
    let (sealed, id) = sealed_image();
    let rotated = Sealer::new(SuspensionKeys::new(&[[9; 32], [1; 32]]).unwrap());
    assert!(rotated.open(&sealed, &id).is_ok(), "the old key still opens");
    let resealed = {
        let (_, image) = rotated.open(&sealed, &id).unwrap();
        rotated.seal(&image, &id, SystemTime::now() + Duration::from_secs(60))
    };
    assert!(sealer(9).open(&resealed, &id).is_ok(), "the first key seals");
    assert!(sealer(1).open(&resealed, &id).is_err());
}

/// How errors name this runtime's snapshot: the first 8 bytes of its identity, in hex.
fn identity_prefix() -> String {
    image_identity().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_denial_made_before_a_hibernation_is_still_the_evidence_for_permission_denied_after_it() {
    let source = "let denied; try { $state.secret; } catch (e) { denied = e; }\n\
                  await $ext.kv.get('a'); throw denied;";
    let hibernated = run_to_end(source, |_| ExtOutcome::Ok(json!(1)), true);
    let live = run_to_end(source, |_| ExtOutcome::Ok(json!(1)), false);
    assert_eq!(hibernated.error.as_ref().map(|e| e.code), Some(ErrorCode::PermissionDenied), "{hibernated:?}");
    assert_eq!(hibernated.error.map(|e| e.code), live.error.map(|e| e.code));
}

#[test]
fn hibernating_and_restoring_are_charged_to_the_time_the_execution_has_left() {
    // A handler holding 16 MiB written across its suspensions: each hibernation and restore of
    // it works through all of it, for the handler, so it is the handler's time (a loop of such
    // suspensions took ~250 ms of the host per cycle, none of it counted against its limit).
    let engine = common::engine();
    let outcome = engine.execute(extension_request(
        "const keep = new Uint8Array(16 << 20); for (let i = 0; i < keep.length; i += 4096) keep[i] = i & 255;\n\
         for (;;) await $ext.kv.get('a');",
    ));
    let id = outcome.result.suspension.unwrap().id;
    let (first, _) = engine.hibernate(outcome.parked.unwrap()).unwrap();
    let left = first.time_left;
    let (second, _) = engine.hibernate(engine.restore(first, id.clone()).unwrap()).unwrap();
    assert!(second.time_left < left, "nothing charged: {:?} then {:?}", left, second.time_left);
    // Once nothing is left, the next step ends as TIMEOUT.
    let mut spent = second;
    spent.time_left = Duration::ZERO;
    let parked = engine.restore(spent, id).unwrap();
    let done = engine.resume(parked, 1, ExtOutcome::Ok(json!(0))).ok().unwrap().result;
    assert_eq!(done.error.map(|e| e.code), Some(ErrorCode::Timeout));
}

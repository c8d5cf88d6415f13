//! Rolling deploys: a suspension made on one guest image is resumed on that image by a runtime
//! whose current image is another, finishes there even if it suspends again, while new
//! executions use the current image; without the old image, the resume is refused, naming it.
//! The "other build" is the committed guest with a custom section appended: another SHA-256,
//! the same behaviour.

use std::path::{Path, PathBuf};

use nexus::{
    ErrorCode, ExecutionRequest, ExtOutcome, Runtime, RuntimeConfig, Status, StoreConfig, SuspensionKeys,
    image_identity,
};
use serde_json::json;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nexus-rolling-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The committed guest with a custom section appended, written to `dir`.
fn other_build(dir: &Path) -> PathBuf {
    let name = b"nexus-test-build";
    let payload = b"build 2";
    let mut wasm = include_bytes!("../guest/nexus_guest.wasm").to_vec();
    wasm.push(0); // a custom section
    wasm.push((1 + name.len() + payload.len()) as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.extend_from_slice(payload);
    let file = dir.join("previous_guest.wasm");
    std::fs::write(&file, wasm).unwrap();
    file
}

fn runtime(store: &Path, guest: Option<&Path>, previous: &[&Path]) -> Runtime {
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Disk(store.to_owned());
    config.suspension_keys = Some(SuspensionKeys::new(&[[4; 32]]).unwrap());
    config.guest = guest.map(Path::to_owned);
    config.previous_guests = previous.iter().map(|p| p.to_path_buf()).collect();
    Runtime::start(config).expect("a runtime")
}

/// Two extension calls, one after the other.
fn request() -> ExecutionRequest {
    let mut request = ExecutionRequest::source(
        "const a = await $ext.kv.get('a'); const b = await $ext.kv.get('b'); return { a, b, sum: a + b };",
    );
    request.capabilities = vec!["ext:kv".parse().unwrap()];
    request.extension_registry.insert("kv".into(), ["get".to_owned()].into());
    request
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_resumes_on_the_image_it_was_made_with_and_without_it_is_refused_by_name() {
    let dir = scratch("deploy");
    let store = dir.join("store");
    let old = other_build(&dir);
    let old_identity = nexus::GuestImage::load(&old).unwrap().identity();
    assert_ne!(old_identity, image_identity());

    // Deploy 1 runs the old build.
    let before = runtime(&store, Some(&old), &[]);
    let first = before.execute(request()).await.expect("runs").suspension.expect("suspended").id;
    let second = before.execute(request()).await.expect("runs").suspension.expect("suspended").id;
    before.shutdown(std::time::Duration::from_secs(1)).await;

    // Deploy 2 runs the committed build and was not given the old one: refused, naming it.
    let stranded = runtime(&store, None, &[]);
    let refused = stranded.resume(&first, 1, ExtOutcome::Ok(json!(20))).await;
    let error = refused.expect_err("refused");
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    assert!(error.message.contains(&hex(&old_identity)), "names the image: {}", error.message);
    stranded.shutdown(std::time::Duration::from_secs(1)).await;

    // Deploy 2 given the old build: the suspensions finish on it, through a second suspension.
    let after = runtime(&store, None, &[&old]);
    let step = after.resume(&first, 1, ExtOutcome::Ok(json!(20))).await.expect("resumes");
    assert_eq!(step.status, Status::Suspended, "{step:?}");
    let done = after.resume(&step.suspension.unwrap().id, 2, ExtOutcome::Ok(json!(22))).await.expect("resumes");
    assert_eq!(done.return_value, json!({ "a": 20, "b": 22, "sum": 42 }), "{done:?}");
    let step = after.resume(&second, 1, ExtOutcome::Ok(json!(1))).await.expect("resumes");
    assert_eq!(step.status, Status::Suspended, "{step:?}");
    // Used once, as on the current image.
    let again = after.resume(&second, 1, ExtOutcome::Ok(json!(1))).await;
    assert_eq!(again.map_err(|e| e.code).err(), Some(ErrorCode::SuspensionNotFound));

    // New executions run the current image: a runtime with only the current one resumes them.
    let new = after.execute(request()).await.expect("runs").suspension.expect("suspended").id;
    after.shutdown(std::time::Duration::from_secs(1)).await;
    let current_only = runtime(&store, None, &[]);
    assert_eq!(
        current_only.resume(&new, 1, ExtOutcome::Ok(json!(1))).await.expect("resumes").status,
        Status::Suspended
    );
    let _ = std::fs::remove_dir_all(&dir);
}

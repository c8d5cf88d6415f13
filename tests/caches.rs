//! The compile cache on disk cannot serve the wrong code: an entry planted, swapped or
//! corrupted by whoever can write the directory is ignored and the source compiled again, and
//! a directory another user can write is not used at all.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use nexus::{Engine, EngineConfig, ExecutionRequest, ExecutionResult, Status};
use serde_json::json;

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nexus-caches-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A new engine (so an empty in-memory cache) keeping bytecode in `dir`.
fn engine(dir: &Path, key_file: &Path) -> Engine {
    let mut config = EngineConfig::default();
    config.compile_cache_dir = Some(dir.to_owned());
    config.cache_key_file = Some(key_file.to_owned());
    config.module_cache_dir = None;
    Engine::with_slots(config, 4).expect("engine starts")
}

fn run(engine: &Engine, source: &str) -> ExecutionResult {
    let result = engine.execute(ExecutionRequest::source(source)).result;
    assert_eq!(result.status, Status::Success, "{source}: {:?}", result.error);
    result
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    entries.sort();
    entries
}

#[test]
fn a_planted_or_swapped_entry_cannot_substitute_code() {
    let root = scratch("planted");
    let (dir, key) = (root.join("bytecode"), root.join("key/cache.key"));
    let first = engine(&dir, &key);
    run(&first, "return 'tenant a';");
    let [entry_a] = entries(&dir).try_into().expect("one entry written");

    // Someone who can write the directory plants another handler's bytecode under a's name.
    let foreign = first.precompile("return 'tenant b';").expect("compiles");
    std::fs::write(&entry_a, &foreign).unwrap();
    let planted = run(&engine(&dir, &key), "return 'tenant a';");
    assert_eq!(planted.return_value, json!("tenant a"), "the planted bytecode ran");
    assert!(!planted.metrics.cache_hit);

    // A genuine entry of another source, copied under a's name, does not verify either.
    run(&first, "return 'tenant b';");
    let entry_b = entries(&dir).into_iter().find(|entry| *entry != entry_a).expect("b's entry");
    std::fs::copy(&entry_b, &entry_a).unwrap();
    let swapped = run(&engine(&dir, &key), "return 'tenant a';");
    assert_eq!(swapped.return_value, json!("tenant a"), "b's entry was served for a");

    // Without the key file, the entries are someone else's: nothing verifies.
    let rekeyed = run(&engine(&dir, &root.join("other-key/cache.key")), "return 'tenant b';");
    assert!(!rekeyed.metrics.cache_hit, "an entry sealed with another key was used");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_corrupted_entry_is_compiled_again_and_rewritten() {
    let root = scratch("corrupted");
    let (dir, key) = (root.join("bytecode"), root.join("key/cache.key"));
    run(&engine(&dir, &key), "return 6 * 7;");
    let [entry] = entries(&dir).try_into().expect("one entry written");
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let recompiled = run(&engine(&dir, &key), "return 6 * 7;");
    assert_eq!(recompiled.return_value, json!(42));
    assert!(!recompiled.metrics.cache_hit, "the corrupted entry was used");
    let hit = run(&engine(&dir, &key), "return 6 * 7;");
    assert!(hit.metrics.cache_hit, "the entry was rewritten");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_cache_directory_another_user_can_write_is_not_used() {
    let root = scratch("shared");
    let (dir, key) = (root.join("bytecode"), root.join("key/cache.key"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    run(&engine(&dir, &key), "return 'shared';");
    let again = run(&engine(&dir, &key), "return 'shared';");
    assert!(entries(&dir).is_empty(), "bytecode was written where others can write");
    assert!(!again.metrics.cache_hit);

    // Below a directory others can write (and that is not sticky), the same.
    let open = root.join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    run(&engine(&open.join("bytecode"), &key), "return 'shared';");
    assert!(!open.join("bytecode").exists(), "a cache directory was made where others can write");
    let _ = std::fs::remove_dir_all(&root);
}

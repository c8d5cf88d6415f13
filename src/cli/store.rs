//! The suspension store of `nexus run --store`, `nexus resume` and `nexus cancel` (a directory,
//! or Redis), and its key.
//!
//! The key comes from `NEXUS_SUSPENSION_KEY` (64 hexadecimal characters), or else from a key
//! file in the user's data directory (`nexus/suspension.key`), created once with `O_EXCL` and
//! mode 0600: never inside the store it protects, so whoever can read the store cannot open it.
//! Not in the cache directory, which may be cleared at any time: every suspension stored with
//! the key would be lost with it. A key file an earlier version made there is moved over.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus::{Library, RedisConfig, Runtime, RuntimeConfig, StoreConfig, SuspensionKeys};

use super::UsageError;

/// A runtime for one execution at a time whose suspensions go to `store` (Redis when it is a
/// `redis://` or `rediss://` URL, a directory otherwise), starting from a snapshot with
/// `libraries`; a `memory_limit` (`--memory-mb`) above the usual default is also its default
/// (libraries may make the snapshot larger than the usual default).
pub fn runtime(
    store: Option<&str>,
    infer_caps: bool,
    libraries: Vec<Library>,
    memory_limit: Option<u64>,
) -> Result<Runtime, UsageError> {
    // One execution at a time: a small pool on one worker thread.
    let mut config = RuntimeConfig::default();
    config.pool_size = 2;
    config.workers = 1;
    config.engine.infer_missing_capabilities = infer_caps;
    config.engine.libraries = libraries;
    if let Some(limit) = memory_limit.filter(|&limit| limit > config.engine.default_memory_limit) {
        config.engine.default_memory_limit = limit;
    }
    if let Some(store) = store {
        config.suspension_store = store_config(store);
        config.suspension_keys = Some(SuspensionKeys::new(&[key(store)?]).map_err(UsageError)?);
    }
    Runtime::start(config).map_err(|e| UsageError(format!("starting the runtime: {e:#}")))
}

/// The store `--store` names.
pub fn store_config(store: &str) -> StoreConfig {
    if store.starts_with("redis://") || store.starts_with("rediss://") {
        StoreConfig::Redis(RedisConfig::new(store))
    } else {
        StoreConfig::Disk(PathBuf::from(store))
    }
}

/// Refuses a store directory that does not exist (`resume` and `cancel` use one `run` made: a
/// mistyped path would otherwise be created, empty, and the suspension not found in it).
pub fn existing(store: &str) -> Result<(), UsageError> {
    if matches!(store_config(store), StoreConfig::Disk(_)) && !Path::new(store).is_dir() {
        let what = if Path::new(store).exists() { "not a directory" } else { "no such directory" };
        return Err(UsageError(format!("--store {store}: {what} (the store `nexus run --store` made)")));
    }
    Ok(())
}

/// `path` made absolute, its existing part resolved (symbolic links, `..`).
fn resolved(path: &Path) -> Option<PathBuf> {
    let path = std::path::absolute(path).ok()?;
    let existing = path.ancestors().find(|ancestor| ancestor.exists())?;
    let rest = path.strip_prefix(existing).ok()?;
    let existing = existing.canonicalize().ok()?;
    // Joining an empty rest would end the path with a separator.
    Some(if rest.as_os_str().is_empty() { existing } else { existing.join(rest) })
}

/// Runs `work` on the runtime and shuts it down.
pub fn block_on<T>(runtime: &Runtime, work: impl Future<Output = T>) -> Result<T, UsageError> {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(tokio.block_on(async {
        let done = work.await;
        runtime.shutdown(Duration::from_secs(1)).await;
        done
    }))
}

/// The key of `store`: never one kept inside it.
fn key(store: &str) -> Result<[u8; 32], UsageError> {
    if let Some(text) = std::env::var_os("NEXUS_SUSPENSION_KEY") {
        let text = text.to_string_lossy();
        return SuspensionKeys::parse_hex(&text).map_err(|e| UsageError(format!("NEXUS_SUSPENSION_KEY: {e}")));
    }
    let file = key_file().ok_or_else(|| {
        UsageError("no suspension key: set NEXUS_SUSPENSION_KEY, or HOME for a key file in the data directory".into())
    })?;
    if let StoreConfig::Disk(dir) = store_config(store)
        && let (Some(file), Some(dir)) = (resolved(&file), resolved(&dir))
        && file.starts_with(&dir)
    {
        return Err(UsageError(format!(
            "the key file {} is inside the store {}, which it would not protect: use another store \
             directory, set XDG_DATA_HOME elsewhere, or set NEXUS_SUSPENSION_KEY",
            file.display(),
            dir.display()
        )));
    }
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| UsageError(format!("creating {}: {e}", parent.display())))?;
    }
    let mut key = [0u8; 32];
    match legacy_key_file().filter(|legacy| legacy.is_file() && !file.exists()) {
        Some(legacy) => key = read_key(&legacy)?,
        None => getrandom::fill(&mut key).map_err(|e| UsageError(format!("host randomness: {e}")))?,
    }
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file) {
        Ok(mut created) => {
            created.write_all(hex.as_bytes()).map_err(|e| UsageError(format!("writing {}: {e}", file.display())))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(&file),
        Err(e) => Err(UsageError(format!("creating the key file {}: {e}", file.display()))),
    }
}

/// Reads a key file (another process may be writing it right now).
fn read_key(file: &Path) -> Result<[u8; 32], UsageError> {
    let mut last = String::new();
    for _ in 0..50 {
        last = std::fs::read_to_string(file).map_err(|e| UsageError(format!("reading {}: {e}", file.display())))?;
        if last.trim().len() == 64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    SuspensionKeys::parse_hex(&last).map_err(|e| UsageError(format!("the key file {}: {e}", file.display())))
}

/// `$XDG_DATA_HOME/nexus/suspension.key`, or `~/.local/share/nexus/suspension.key`.
fn key_file() -> Option<PathBuf> {
    user_file("XDG_DATA_HOME", ".local/share")
}

/// Where earlier versions kept the key file: the cache directory.
fn legacy_key_file() -> Option<PathBuf> {
    user_file("XDG_CACHE_HOME", ".cache")
}

fn user_file(variable: &str, under_home: &str) -> Option<PathBuf> {
    let base = match std::env::var_os(variable) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(under_home),
    };
    Some(base.join("nexus").join("suspension.key"))
}

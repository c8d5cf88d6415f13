//! Suspensions in a store that outlives the process: a process holding a thousand of them is
//! killed, and another resumes every one; hibernation through the runtime gives the results a
//! live suspension gives.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nexus::{
    ErrorCode, ExecutionRequest, ExecutionResult, ExtOutcome, Refusal, Runtime, RuntimeConfig, StartError, Status,
    StoreConfig, SuspensionId, SuspensionKeys,
};
use serde_json::json;

const CHILD: &str = "NEXUS_TEST_STORE_CHILD";

fn keys() -> SuspensionKeys {
    SuspensionKeys::new(&[[7; 32]]).unwrap()
}

fn disk_runtime(dir: &Path) -> Runtime {
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Disk(dir.to_owned());
    config.suspension_keys = Some(keys());
    config.pool_size = 8;
    Runtime::start(config).expect("a runtime on the disk store")
}

/// Execution `n`: some state before the suspension, some work after it.
fn request(n: u64) -> ExecutionRequest {
    let mut request = ExecutionRequest::source(
        "const seen = []; for (let i = 0; i < $args.n % 17; i++) seen.push({ i, sq: i * i });\n\
         const v = await $ext.kv.get($args.n);\n\
         $state.last = v; return { n: $args.n, v, total: seen.reduce((a, s) => a + s.sq, 0) };",
    );
    request.args = json!({ "n": n });
    request.capabilities = vec!["ext:kv".parse().unwrap(), "state:write:last".parse().unwrap()];
    request.extension_registry.insert("kv".into(), ["get".to_owned()].into());
    request
}

fn answer(n: u64) -> ExtOutcome {
    ExtOutcome::Ok(json!(format!("value {n}")))
}

/// Not a test on its own: the killed process of the test below (it does nothing unless that
/// test started it).
#[tokio::test]
async fn child_that_suspends_a_thousand_executions_and_waits_to_be_killed() {
    let Some(dir) = std::env::var_os(CHILD) else { return };
    let runtime = disk_runtime(Path::new(&dir));
    for n in 0..1000 {
        let result = runtime.execute(request(n)).await.expect("runs");
        assert_eq!(result.status, Status::Suspended, "{result:?}");
        println!("SUSPENDED {n} {}", result.suspension.unwrap().id);
    }
    println!("READY");
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nexus-durable-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stored_suspensions_survive_sigkill_and_resume_in_another_runtime() {
    let dir = temp_dir("sigkill");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_that_suspends_a_thousand_executions_and_waits_to_be_killed", "--exact", "--nocapture"])
        .env(CHILD, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary starts again as the child");
    let mut suspended = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "READY" {
            break;
        }
        if let Some(rest) = line.strip_prefix("SUSPENDED ") {
            let (n, id) = rest.split_once(' ').unwrap();
            suspended.push((n.parse::<u64>().unwrap(), SuspensionId(id.to_owned())));
        }
    }
    assert_eq!(suspended.len(), 1000, "the child suspended a thousand executions");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    // What a run that was never killed gives.
    let clean = Runtime::start(RuntimeConfig::default()).unwrap();
    let runtime = disk_runtime(&dir);
    for (n, id) in suspended {
        let resumed = runtime.resume(&id, 1, answer(n)).await.expect("resumes");
        let expected = {
            let first = clean.execute(request(n)).await.expect("runs");
            clean.resume(&first.suspension.unwrap().id, 1, answer(n)).await.expect("resumes")
        };
        assert_eq!(resumed.status, Status::Success, "{n}: {resumed:?}");
        assert_eq!(resumed.return_value, expected.return_value, "{n}");
        assert_eq!(resumed.records, expected.records, "{n}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_store_needs_configured_keys() {
    let dir = temp_dir("nokeys");
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Disk(dir.clone());
    let refused = Runtime::start(config).err().expect("refused without keys");
    let StartError::Config(message) = refused else { panic!("not a configuration error: {refused:?}") };
    assert!(message.contains("suspension keys"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The code of a refusal; `None` when it ran.
fn refusal_code(answer: &Result<ExecutionResult, Refusal>) -> Option<ErrorCode> {
    answer.as_ref().err().map(|refusal| refusal.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hibernated_suspension_is_used_once_cancelled_or_expired_like_a_live_one() {
    let mut config = RuntimeConfig::default();
    config.hibernate_after = Duration::ZERO;
    config.suspension_timeout = Duration::from_millis(400);
    let runtime = Runtime::start(config).unwrap();
    let hibernated = || async {
        let result = runtime.execute(request(3)).await.expect("runs");
        let id = result.suspension.unwrap().id;
        // Hibernated right after the result went back.
        for _ in 0..200 {
            if runtime.stats().await.pool.hibernated > 0 && runtime.stats().await.pool.parked == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        id
    };
    let id = hibernated().await;
    let refused = runtime.resume(&id, 9, answer(3)).await;
    assert_eq!(refusal_code(&refused), Some(ErrorCode::InvalidArgument), "no call 9");
    let done = runtime.resume(&id, 1, answer(3)).await.expect("resumes");
    assert_eq!(done.status, Status::Success, "{done:?}");
    assert_eq!(refusal_code(&runtime.resume(&id, 1, answer(3)).await), Some(ErrorCode::SuspensionNotFound));

    let id = hibernated().await;
    assert_eq!(runtime.cancel(&id).await, Ok(true));
    assert_eq!(runtime.cancel(&id).await, Ok(false));
    assert_eq!(refusal_code(&runtime.resume(&id, 1, answer(3)).await), Some(ErrorCode::SuspensionNotFound));

    // A refused resume does not extend the expiry.
    let id = hibernated().await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(refusal_code(&runtime.resume(&id, 9, answer(3)).await), Some(ErrorCode::InvalidArgument));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(refusal_code(&runtime.resume(&id, 1, answer(3)).await), Some(ErrorCode::SuspensionNotFound));

    let stats = runtime.stats().await;
    assert!(stats.hibernations >= 3 && stats.restores >= 1 && stats.cancellations == 1, "{stats:?}");
    let text = runtime.prometheus().await;
    for metric in
        ["nexus_hibernations_total", "nexus_restores_total", "nexus_hibernated", "nexus_suspension_store_bytes"]
    {
        assert!(text.contains(metric), "{metric} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_store_bound_a_new_suspension_fails_with_overloaded() {
    let mut config = RuntimeConfig::default();
    config.store_limits.max_suspensions = 3;
    config.store_limits.max_bytes = 1 << 30;
    let runtime = Runtime::start(config).unwrap();
    let mut codes = Vec::new();
    for n in 0..5 {
        codes.push(refusal_code(&runtime.execute(request(n)).await));
    }
    assert_eq!(codes, vec![None, None, None, Some(ErrorCode::Overloaded), Some(ErrorCode::Overloaded)]);
}

/// Two thousand clients whose handler awaits one 100 ms extension call: with hibernation the
/// pool of 256 actors is no cap, and nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_clients_with_slow_extension_calls_are_never_overloaded() {
    let mut config = RuntimeConfig::default();
    config.queue_bound = 4096;
    let runtime = Runtime::start(config).unwrap();
    let client = |n: u64| {
        let runtime = runtime.clone();
        async move {
            let first = runtime.execute(request(n)).await.expect("runs");
            let Some(suspension) = first.suspension else { return first };
            tokio::time::sleep(Duration::from_millis(100)).await;
            runtime.resume(&suspension.id, 1, answer(n)).await.expect("resumes")
        }
    };
    let results = futures::future::join_all((0..2000).map(client)).await;
    let failed: Vec<_> = results.iter().filter(|r| r.status != Status::Success).collect();
    assert!(failed.is_empty(), "{} failed, first: {:?}", failed.len(), failed.first());
    assert!(runtime.stats().await.hibernations > 0, "the pool needed its actors back");
}

/// With the in-memory store a suspension is hibernated after its result went back: one the
/// store then refuses (past its bytes) is gone, and its resume says so, as the execution's
/// error, rather than not finding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_the_store_refuses_at_hibernation_fails_its_resume_saying_why() {
    let mut config = RuntimeConfig::default();
    config.hibernate_after = Duration::ZERO;
    config.store_limits.max_bytes = 1024;
    let runtime = Runtime::start(config).unwrap();
    let first = runtime.execute(request(1)).await.expect("runs");
    assert_eq!(first.status, Status::Suspended, "{first:?}");
    let id = first.suspension.unwrap().id;
    let lost = loop {
        let stats = runtime.stats().await;
        if stats.pool.parked == 0 {
            break runtime.resume(&id, 1, answer(1)).await.expect("a result, not a refusal");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(lost.status, Status::Error);
    let error = lost.error.unwrap();
    assert_eq!(error.code, ErrorCode::Overloaded, "{error:?}");
    assert!(error.message.starts_with("the suspended execution could not be kept, and is lost: "), "{}", error.message);
    // Used: a second resume finds nothing, and a cancel of another lost one drops it.
    assert_eq!(refusal_code(&runtime.resume(&id, 1, answer(1)).await), Some(ErrorCode::SuspensionNotFound));
    let second = runtime.execute(request(2)).await.expect("runs").suspension.unwrap().id;
    while runtime.stats().await.pool.parked > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(runtime.cancel(&second).await.unwrap());
    assert_eq!(refusal_code(&runtime.resume(&second, 1, answer(2)).await), Some(ErrorCode::SuspensionNotFound));
}

/// A resume that claimed its hibernated suspension before the expiry runs to its end even when
/// the expiry passes while it runs (or waits for an instance): the sweep of expired suspensions
/// spares what a resume holds, and the step's result is the handler's, not a failed commit.
async fn a_resume_in_time_outlives_the_expiry(config: RuntimeConfig) {
    let runtime = Runtime::start(config).unwrap();
    let mut request = ExecutionRequest::source(
        "const v = await $ext.kv.get(1);\nconst end = Date.now() + 5300; while (Date.now() < end) {}\nreturn v;",
    );
    request.timeout = Duration::from_secs(20);
    request.capabilities = vec!["ext:kv".parse().unwrap()];
    request.extension_registry.insert("kv".into(), ["get".to_owned()].into());
    let suspended = runtime.execute(request).await.expect("runs");
    let id = suspended.suspension.expect("suspended").id;
    for _ in 0..200 {
        if runtime.stats().await.pool.hibernated > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(runtime.stats().await.pool.hibernated, 1, "hibernated");
    // The suspension expires 300 ms after it was made; the store's expired suspensions are
    // purged every 5 s (the first time at the runtime's first sweep): the step spans a purge.
    let done = runtime.resume(&id, 1, answer(1)).await.expect("claimed in time");
    assert_eq!(done.status, Status::Success, "{done:?}");
    assert_eq!(done.return_value, json!("value 1"));
    assert_eq!(refusal_code(&runtime.resume(&id, 1, answer(1)).await), Some(ErrorCode::SuspensionNotFound), "used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_claimed_before_the_expiry_is_not_failed_by_it_in_memory_or_on_disk() {
    let mut config = RuntimeConfig::default();
    config.hibernate_after = Duration::ZERO;
    config.suspension_timeout = Duration::from_millis(300);
    a_resume_in_time_outlives_the_expiry(config.clone()).await;

    let dir = temp_dir("resume-past-expiry");
    config.suspension_store = StoreConfig::Disk(dir.clone());
    config.suspension_keys = Some(keys());
    a_resume_in_time_outlives_the_expiry(config).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A resume that arrives while its live suspension is being hibernated is served, however long
/// the hibernation takes: here it waits behind an 800 ms step on the only worker thread, and
/// ends past the suspension's expiry. A second resume meanwhile finds nothing, as it would
/// while a live one runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_that_arrives_while_its_suspension_hibernates_is_served_past_the_expiry() {
    let (runtime, id, busy) = hibernating_behind_a_busy_step(Duration::from_millis(300), 800).await;
    let first = tokio::spawn({
        let (runtime, id) = (runtime.clone(), id.clone());
        async move { runtime.resume(&id, 1, answer(3)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = runtime.resume(&id, 1, answer(3)).await;
    let done = first.await.unwrap().expect("served: it arrived in time");
    assert_eq!(done.status, Status::Success, "{done:?}");
    assert_eq!(done.return_value["v"], json!("value 3"), "{done:?}");
    assert_eq!(refusal_code(&second), Some(ErrorCode::SuspensionNotFound), "{second:?}");
    assert_eq!(busy.await.unwrap().expect("runs").status, Status::Success);
    assert_eq!(refusal_code(&runtime.resume(&id, 1, answer(3)).await), Some(ErrorCode::SuspensionNotFound), "used");
    assert_eq!(runtime.stats().await.hibernations, 1);
}

/// A runtime of one worker thread whose suspensions expire after `timeout`, holding one whose
/// hibernation started and waits behind a step of `busy_ms` on that worker; the suspension's id
/// and the busy step.
async fn hibernating_behind_a_busy_step(
    timeout: Duration,
    busy_ms: u64,
) -> (Runtime, SuspensionId, tokio::task::JoinHandle<Result<ExecutionResult, Refusal>>) {
    let mut config = RuntimeConfig::default();
    config.workers = 1;
    config.pool_size = 2;
    config.hibernate_after = Duration::from_millis(20);
    config.suspension_timeout = timeout;
    let runtime = Runtime::start(config).unwrap();
    let id = runtime.execute(request(3)).await.expect("runs").suspension.expect("suspended").id;
    let source = format!("const end = Date.now() + {busy_ms}; while (Date.now() < end) {{}}\nreturn 1;");
    let mut busy = ExecutionRequest::source(source);
    busy.timeout = Duration::from_secs(10);
    let busy = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.execute(busy).await }
    });
    // The hibernation starts at 20 ms; its actor's message waits behind the busy step.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runtime.stats().await.hibernations, 0, "still hibernating");
    (runtime, id, busy)
}

/// The resume handed a hibernating suspension's image is refused (no such call): the
/// suspension stays, and the right resume before its expiry is served from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_resume_handed_a_hibernating_suspension_leaves_it_to_the_next() {
    let (runtime, id, busy) = hibernating_behind_a_busy_step(Duration::from_secs(5), 300).await;
    assert_eq!(refusal_code(&runtime.resume(&id, 9, answer(3)).await), Some(ErrorCode::InvalidArgument));
    assert_eq!(runtime.stats().await.pool.hibernated, 1, "given back to the store");
    let done = runtime.resume(&id, 1, answer(3)).await.expect("served");
    assert_eq!(done.return_value["v"], json!("value 3"), "{done:?}");
    assert_eq!(busy.await.unwrap().expect("runs").status, Status::Success);
}

/// Requests that queue while every actor runs (none parked to hibernate yet) take the actors as
/// soon as they park their suspensions, not `hibernate_after` later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_queued_while_every_actor_runs_gets_one_when_they_park() {
    let mut config = RuntimeConfig::default();
    config.pool_size = 2;
    config.hibernate_after = Duration::from_secs(30);
    let runtime = Runtime::start(config).unwrap();
    let started = std::time::Instant::now();
    let results = futures::future::join_all((0..6).map(|n| runtime.execute(request(n)))).await;
    for result in &results {
        assert_eq!(result.as_ref().map(|r| r.status).ok(), Some(Status::Suspended), "{result:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(runtime.stats().await.hibernations >= 4, "{:?}", runtime.stats().await);
}

/// A disk store whose commits of a step that suspended again fail, as a store that is full or
/// unreachable at that moment would.
struct RefusingNext(nexus::DiskStore);

impl nexus::SuspensionStore for RefusingNext {
    fn durable(&self) -> bool {
        true
    }
    fn put(&self, image: nexus_actors::suspension::Stored) -> nexus_actors::suspension::store::StoreFuture<'_, ()> {
        self.0.put(image)
    }
    fn claim(
        &self,
        id: &SuspensionId,
        lease: Duration,
    ) -> nexus_actors::suspension::store::StoreFuture<'_, Option<nexus_actors::suspension::Claim>> {
        self.0.claim(id, lease)
    }
    fn release(&self, claim: nexus_actors::suspension::Claim) -> nexus_actors::suspension::store::StoreFuture<'_, ()> {
        self.0.release(claim)
    }
    fn commit(
        &self,
        claim: nexus_actors::suspension::Claim,
        next: Option<nexus_actors::suspension::Stored>,
    ) -> nexus_actors::suspension::store::StoreFuture<'_, ()> {
        match next {
            Some(_) => Box::pin(async { Err(nexus::StoreError::Unavailable("the store is full".into())) }),
            None => self.0.commit(claim, None),
        }
    }
    fn cancel(&self, id: &SuspensionId) -> nexus_actors::suspension::store::StoreFuture<'_, bool> {
        self.0.cancel(id)
    }
    fn purge_expired(&self) -> nexus_actors::suspension::store::StoreFuture<'_, ()> {
        self.0.purge_expired()
    }
    fn usage(&self) -> nexus::StoreUsage {
        self.0.usage()
    }
}

/// A resume whose step ran, and whose commit then failed, still used its suspension: once its
/// lease passed, the same id does not run the step a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_commit_failed_is_not_run_again_after_its_lease() {
    let dir = temp_dir("commit-fails");
    let store = nexus::DiskStore::open(&dir, nexus::StoreLimits::default()).unwrap();
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Custom(std::sync::Arc::new(RefusingNext(store)));
    config.suspension_keys = Some(keys());
    config.claim_lease = Duration::from_millis(200);
    let runtime = Runtime::start(config).unwrap();
    let mut twice =
        ExecutionRequest::source("const a = await $ext.kv.get(1);\n$emit('charged', a);\nreturn await $ext.kv.get(2);");
    twice.capabilities = vec!["ext:kv".parse().unwrap(), "events:emit:charged".parse().unwrap()];
    twice.extension_registry.insert("kv".into(), ["get".to_owned()].into());
    let id = runtime.execute(twice).await.expect("runs").suspension.expect("suspended").id;
    let failed = runtime.resume(&id, 1, answer(1)).await.expect("the step ran");
    assert_eq!(failed.error.as_ref().map(|e| e.code), Some(ErrorCode::StoreUnavailable), "{failed:?}");
    assert_eq!(failed.records.events.len(), 1, "its records are reported");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = runtime.resume(&id, 1, answer(1)).await;
    assert_eq!(refusal_code(&again), Some(ErrorCode::SuspensionNotFound), "ran twice: {again:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A runtime with other keys can neither resume nor cancel a stored suspension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_with_other_keys_cannot_cancel_a_suspension() {
    let dir = temp_dir("other-keys-cancel");
    let ours = disk_runtime(&dir);
    let id = ours.execute(request(4)).await.expect("runs").suspension.expect("suspended").id;
    assert_eq!(ours.stats().await.hibernations, 1, "written to the store: a hibernation");
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Disk(dir.clone());
    config.suspension_keys = Some(SuspensionKeys::new(&[[8; 32]]).unwrap());
    let theirs = Runtime::start(config).unwrap();
    let refused = theirs.cancel(&id).await;
    assert_eq!(refused.as_ref().map_err(|e| e.code), Err(ErrorCode::InvalidArgument), "{refused:?}");
    let done = ours.resume(&id, 1, answer(4)).await.expect("still there");
    assert_eq!(done.status, Status::Success, "{done:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A store directory another user could write (to delete or replace suspensions) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = temp_dir("shared-store");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Disk(dir.clone());
    config.suspension_keys = Some(keys());
    let refused = Runtime::start(config).err().expect("refused");
    assert!(format!("{refused}").contains("another user can write this directory"), "{refused}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A store path that names a file is refused saying so (it said "File exists").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_path_that_is_a_file_is_refused_as_not_a_directory() {
    let file = temp_dir("store-file");
    std::fs::write(&file, "not a store").unwrap();
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Disk(file.clone());
    config.suspension_keys = Some(keys());
    let refused = Runtime::start(config).err().expect("refused");
    assert!(format!("{refused}").contains("is not a directory"), "{refused}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a store", "the file is left as it was");
    let _ = std::fs::remove_file(file);
}

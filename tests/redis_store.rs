//! Suspensions shared through Redis by several OS processes: made in one, resumed in another;
//! resumed by two at once, exactly once; fenced when the claiming process stalls past its
//! lease; not lost when it is killed mid-step; expired by Redis itself; refused when what Redis
//! holds is not ours. Each test has a Redis of its own (see `redis_server`); the other
//! processes are this test binary started again as a child (see [`child`]).

mod redis_server;

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nexus::{
    ErrorCode, ExecutionRequest, ExecutionResult, ExtOutcome, RedisConfig, Refusal, Runtime, RuntimeConfig, Status,
    StoreConfig, SuspensionId, SuspensionKeys,
};
use redis::Commands;
use redis_server::RedisServer;
use serde_json::json;

/// What a child process does (`suspend N`, `race START_MS IDS`, `resume ID SPIN_MS`); the
/// child's Redis is in `CHILD_URL`.
const CHILD: &str = "NEXUS_TEST_REDIS_CHILD";
const CHILD_URL: &str = "NEXUS_TEST_REDIS_CHILD_URL";

fn runtime(url: &str, lease: Duration) -> Runtime {
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Redis(RedisConfig::new(url));
    config.suspension_keys = Some(SuspensionKeys::new(&[[7; 32]]).unwrap());
    config.claim_lease = lease;
    config.pool_size = 16;
    Runtime::start(config).expect("a runtime on the Redis store")
}

/// Execution `n`: some state before the suspension; after it, `spin_ms` of work.
fn request(n: u64, spin_ms: u64) -> ExecutionRequest {
    let mut request = ExecutionRequest::source(
        "const seen = []; for (let i = 0; i < $args.n % 17; i++) seen.push({ i, sq: i * i });\n\
         const v = await $ext.kv.get($args.n);\n\
         const end = Date.now() + $args.spin; while (Date.now() < end) {}\n\
         $state.last = v; return { n: $args.n, v, total: seen.reduce((a, s) => a + s.sq, 0) };",
    );
    request.args = json!({ "n": n, "spin": spin_ms });
    request.capabilities = vec!["ext:kv".parse().unwrap(), "state:write:last".parse().unwrap()];
    request.extension_registry.insert("kv".into(), ["get".to_owned()].into());
    request
}

fn answer(n: u64) -> ExtOutcome {
    ExtOutcome::Ok(json!(format!("value {n}")))
}

/// The code of a refusal; `None` when it ran.
fn code(answer: &Result<ExecutionResult, Refusal>) -> Option<ErrorCode> {
    answer.as_ref().err().map(|refusal| refusal.code)
}

/// The line a child prints for a result: `RESULT <id> <status> <code> <message>`.
fn report(id: &str, answer: &Result<ExecutionResult, Refusal>) -> String {
    let (status, error) = match answer {
        Ok(result) => (format!("{:?}", result.status), result.error.as_ref().map(|e| (e.code, e.message.as_str()))),
        Err(refusal) => ("Refused".to_owned(), Some((refusal.code, refusal.message.as_str()))),
    };
    let (code, message) =
        error.map_or(("-", String::new()), |(code, message)| (code.as_str(), message.replace('\n', " ")));
    format!("RESULT {id} {status} {code} {message}")
}

/// Not a test on its own: the other process of the tests below (it does nothing unless one of
/// them started it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child() {
    let (Ok(command), Ok(url)) = (std::env::var(CHILD), std::env::var(CHILD_URL)) else { return };
    let words: Vec<&str> = command.split(' ').collect();
    let runtime = runtime(&url, Duration::from_millis(1500));
    // Ends the test harness's line ("test child ... "): what follows is ours, a line each.
    println!();
    match words[..] {
        ["suspend", count] => {
            for n in 0..count.parse().unwrap() {
                let result = runtime.execute(request(n, 0)).await.expect("runs");
                assert_eq!(result.status, Status::Suspended, "{result:?}");
                println!("SUSPENDED {n} {}", result.suspension.unwrap().id);
            }
        }
        ["race", start, ids] => {
            let start = UNIX_EPOCH + Duration::from_millis(start.parse().unwrap());
            tokio::time::sleep(start.duration_since(SystemTime::now()).unwrap_or_default()).await;
            let resumes = ids.split(',').map(|id| {
                let runtime = runtime.clone();
                async move { report(id, &runtime.resume(&SuspensionId(id.into()), 1, answer(0)).await) }
            });
            for line in futures::future::join_all(resumes).await {
                println!("{line}");
            }
        }
        ["resume", id, n] => {
            println!("CLAIMING");
            let resumed = runtime.resume(&SuspensionId(id.into()), 1, answer(n.parse().unwrap())).await;
            println!("{}", report(id, &resumed));
        }
        _ => panic!("unknown child command {command:?}"),
    }
    println!("DONE");
}

/// This test binary again, as a child doing `command` against `redis`.
fn spawn_child(redis: &RedisServer, command: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, command)
        .env(CHILD_URL, &redis.url)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary starts again as the child");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The lines a child printed that start with `prefix`, until it printed `until`.
fn read_until(lines: &mut Lines<BufReader<ChildStdout>>, prefix: &str, until: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == until {
            return found;
        }
        if let Some(rest) = line.strip_prefix(prefix) {
            found.push(rest.to_owned());
        }
    }
    panic!("the child ended before printing {until}; it printed {found:?}")
}

/// Has another process suspend `count` executions: `(n, id)` of each.
fn suspend_in_another_process(redis: &RedisServer, count: u64) -> Vec<(u64, SuspensionId)> {
    let (mut child, mut lines) = spawn_child(redis, &format!("suspend {count}"));
    let suspended = read_until(&mut lines, "SUSPENDED ", "DONE")
        .iter()
        .map(|line| {
            let (n, id) = line.split_once(' ').unwrap();
            (n.parse().unwrap(), SuspensionId(id.to_owned()))
        })
        .collect::<Vec<_>>();
    assert!(child.wait().unwrap().success());
    assert_eq!(suspended.len() as u64, count);
    suspended
}

/// What a run that never left one process gives for execution `n`.
async fn clean_run(n: u64) -> ExecutionResult {
    let clean = Runtime::start(RuntimeConfig::default()).unwrap();
    let first = clean.execute(request(n, 0)).await.expect("runs");
    clean.resume(&first.suspension.unwrap().id, 1, answer(n)).await.expect("resumes")
}

fn key(id: &SuspensionId) -> String {
    format!("nexus:{{{}}}", id.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_made_in_one_process_is_resumed_in_another() {
    let redis = RedisServer::start();
    let suspended = suspend_in_another_process(&redis, 20);
    let runtime = runtime(&redis.url, Duration::from_secs(30));
    for (n, id) in suspended {
        let resumed = runtime.resume(&id, 1, answer(n)).await.expect("resumes");
        let expected = clean_run(n).await;
        assert_eq!(resumed.status, Status::Success, "{n}: {resumed:?}");
        assert_eq!((resumed.return_value, resumed.records), (expected.return_value, expected.records), "{n}");
        assert_eq!(code(&runtime.resume(&id, 1, answer(n)).await), Some(ErrorCode::SuspensionNotFound));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_resuming_the_same_suspensions_at_once_succeed_exactly_once_each() {
    let redis = RedisServer::start();
    let runtime = runtime(&redis.url, Duration::from_secs(30));
    let mut ids = Vec::new();
    for n in 0..200 {
        ids.push(runtime.execute(request(n, 0)).await.expect("runs").suspension.expect("suspended").id.0);
    }
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 1500;
    let (mut child, mut lines) = spawn_child(&redis, &format!("race {start} {}", ids.join(",")));
    let start = UNIX_EPOCH + Duration::from_millis(start);
    tokio::time::sleep(start.duration_since(SystemTime::now()).unwrap_or_default()).await;
    let ours = futures::future::join_all(ids.iter().map(|id| {
        let runtime = runtime.clone();
        async move { report(id, &runtime.resume(&SuspensionId(id.clone()), 1, answer(0)).await) }
    }))
    .await;
    let theirs = read_until(&mut lines, "RESULT ", "DONE");
    assert!(child.wait().unwrap().success());
    let (mut ours_won, mut theirs_won) = (0, 0);
    for id in &ids {
        let outcome = |lines: &[String], prefix: &str| {
            let line = lines.iter().find(|line| line.starts_with(id.as_str())).expect("every id has a result");
            let won = line.contains(" Success ");
            assert!(won || line.contains(" SUSPENSION_NOT_FOUND "), "{prefix}: {line}");
            won
        };
        let ours: Vec<String> = ours.iter().map(|line| line.trim_start_matches("RESULT ").to_owned()).collect();
        let (a, b) = (outcome(&ours, "ours"), outcome(&theirs, "theirs"));
        assert!(a ^ b, "exactly one process resumes {id}: ours {a}, theirs {b}");
        ours_won += u32::from(a);
        theirs_won += u32::from(b);
    }
    eprintln!("of 200 races, this process won {ours_won} and the other {theirs_won}");
}

/// Waits until `id` is claimed in Redis (a resume is running its step).
fn wait_for_claim(redis: &RedisServer, id: &SuspensionId) {
    let mut connection = redis.connection();
    let deadline = Instant::now() + Duration::from_secs(20);
    while connection.hget::<_, _, Option<String>>(key(id), "state").unwrap().as_deref() != Some("claimed") {
        assert!(Instant::now() < deadline, "the child never claimed {id}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child this test started and has not waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_paused_past_its_lease_cannot_commit_and_the_later_claim_wins() {
    let redis = RedisServer::start();
    let runtime = runtime(&redis.url, Duration::from_millis(1500));
    // A step of 2.5 s: the child is surely inside it when it is stopped, and after it is
    // continued, it still has some to run before it tries to commit.
    let id = runtime.execute(request(5, 2500)).await.expect("runs").suspension.expect("suspended").id;
    let (mut child, mut lines) = spawn_child(&redis, &format!("resume {id} 5"));
    read_until(&mut lines, "", "CLAIMING");
    wait_for_claim(&redis, &id);
    signal(&child, libc::SIGSTOP);
    // The child's lease (1.5 s) passes while it is stopped mid-step.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let ours = runtime.resume(&id, 1, answer(5)).await.expect("resumes");
    signal(&child, libc::SIGCONT);
    let theirs = read_until(&mut lines, "RESULT ", "DONE");
    assert!(child.wait().unwrap().success());
    assert_eq!(ours.status, Status::Success, "{ours:?}");
    assert_eq!(ours.return_value, clean_run(5).await.return_value);
    let theirs = &theirs[0];
    assert!(theirs.contains(" Error INTERNAL ") && theirs.contains("lease passed"), "the paused one failed: {theirs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_step_loses_nothing_once_its_lease_passed() {
    let redis = RedisServer::start();
    let runtime = runtime(&redis.url, Duration::from_millis(1500));
    let id = runtime.execute(request(9, 1000)).await.expect("runs").suspension.expect("suspended").id;
    let (mut child, mut lines) = spawn_child(&redis, &format!("resume {id} 9"));
    read_until(&mut lines, "", "CLAIMING");
    wait_for_claim(&redis, &id);
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert_eq!(
        code(&runtime.resume(&id, 1, answer(9)).await),
        Some(ErrorCode::SuspensionNotFound),
        "still claimed within the lease"
    );
    assert_eq!(runtime.cancel(&id).await, Ok(false), "nor cancelled: the resume within its lease has it");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let resumed = runtime.resume(&id, 1, answer(9)).await.expect("resumes");
    let expected = clean_run(9).await;
    assert_eq!(resumed.status, Status::Success, "{resumed:?}");
    assert_eq!((resumed.return_value, resumed.records), (expected.return_value, expected.records));
}

/// A runtime on `redis` whose suspensions expire 300 ms after they are made.
fn expiring_in_300_ms(redis: &RedisServer) -> Runtime {
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Redis(RedisConfig::new(&redis.url));
    config.suspension_keys = Some(SuspensionKeys::new(&[[7; 32]]).unwrap());
    config.suspension_timeout = Duration::from_millis(300);
    Runtime::start(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_suspension_is_gone_from_redis_and_not_found() {
    let redis = RedisServer::start();
    let runtime = expiring_in_300_ms(&redis);
    let id = runtime.execute(request(1, 0)).await.expect("runs").suspension.expect("suspended").id;
    let mut connection = redis.connection();
    let ttl: i64 = connection.pttl(key(&id)).unwrap();
    assert!(ttl > 0 && ttl <= 300, "Redis expires it with the suspension: {ttl} ms");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!connection.exists::<_, bool>(key(&id)).unwrap(), "Redis deleted it");
    assert_eq!(code(&runtime.resume(&id, 1, answer(1)).await), Some(ErrorCode::SuspensionNotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_claimed_before_the_expiry_outlives_it_and_a_refused_one_does_not_extend_it() {
    let redis = RedisServer::start();
    let runtime = expiring_in_300_ms(&redis);
    let mut connection = redis.connection();

    // Claimed in time, the step runs 700 ms: Redis keeps the key for the claim's lease.
    let id = runtime.execute(request(1, 700)).await.expect("runs").suspension.expect("suspended").id;
    let done = runtime.resume(&id, 1, answer(1)).await.expect("claimed in time");
    assert_eq!(done.status, Status::Success, "{done:?}");
    assert_eq!(code(&runtime.resume(&id, 1, answer(1)).await), Some(ErrorCode::SuspensionNotFound), "used");

    // A refused resume puts the expiry back where it was.
    let id = runtime.execute(request(2, 0)).await.expect("runs").suspension.expect("suspended").id;
    assert_eq!(code(&runtime.resume(&id, 9, answer(2)).await), Some(ErrorCode::InvalidArgument), "no call 9");
    let ttl: i64 = connection.pttl(key(&id)).unwrap();
    assert!(ttl > 0 && ttl <= 300, "the suspension's own expiry, not the lease: {ttl} ms");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(code(&runtime.resume(&id, 1, answer(2)).await), Some(ErrorCode::SuspensionNotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_or_tampered_value_under_a_suspension_key_is_refused() {
    let redis = RedisServer::start();
    let runtime = runtime(&redis.url, Duration::from_secs(30));
    let mut connection = redis.connection();
    let refused = |answer: Result<ExecutionResult, Refusal>, what: &str| {
        let refusal = answer.expect_err(what);
        assert_eq!(refusal.code, ErrorCode::InvalidArgument, "{what}: {refusal:?}");
        refusal.message
    };

    let foreign = SuspensionId("0123abcd".into());
    let () = connection.set(key(&foreign), "not ours").unwrap();
    let message = refused(runtime.resume(&foreign, 1, answer(1)).await, "a string");
    assert!(message.contains("not a Nexus suspension") && message.contains("string"), "{message}");
    let () = connection.hset(key(&foreign).replace("0123", "4567"), "state", "ready").unwrap();
    let message = refused(runtime.resume(&SuspensionId("4567abcd".into()), 1, answer(1)).await, "another hash");
    assert!(message.contains("not a Nexus suspension"), "{message}");
    // Claimed, but with no lease: not ours either (it made the script fail on a nil).
    let claimed = key(&foreign).replace("0123", "89ab");
    let () = redis::cmd("HSET")
        .arg(&claimed)
        .arg(&["kind", "nexus-suspension/1", "state", "claimed", "image", "x", "token", "1"])
        .query(&mut connection)
        .unwrap();
    let message =
        refused(runtime.resume(&SuspensionId("89ababcd".into()), 1, answer(1)).await, "a claim without a lease");
    assert!(message.contains("not a Nexus suspension"), "{message}");

    let id = runtime.execute(request(2, 0)).await.expect("runs").suspension.expect("suspended").id;
    let mut image: Vec<u8> = connection.hget(key(&id), "image").unwrap();
    let last = image.len() - 1;
    image[last] ^= 1;
    let () = connection.hset(key(&id), "image", image).unwrap();
    let message = refused(runtime.resume(&id, 1, answer(2)).await, "a tampered image");
    assert!(message.contains("does not authenticate"), "{message}");

    // Moved under another suspension's id: refused too (the seal binds the id).
    let other = runtime.execute(request(3, 0)).await.expect("runs").suspension.expect("suspended").id;
    let moved: Vec<u8> = connection.hget(key(&other), "image").unwrap();
    let () = connection.hset(key(&id), "image", moved).unwrap();
    let message = refused(runtime.resume(&id, 1, answer(2)).await, "a moved image");
    assert!(message.contains("does not authenticate"), "{message}");
    assert_eq!(runtime.resume(&other, 1, answer(3)).await.expect("resumes").status, Status::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_requests_that_need_it_fail_promptly_and_the_rest_run() {
    let mut redis = RedisServer::own();
    let mut store = RedisConfig::new(&redis.url);
    store.timeout = Duration::from_millis(300);
    let mut config = RuntimeConfig::default();
    config.suspension_store = StoreConfig::Redis(store);
    config.suspension_keys = Some(SuspensionKeys::new(&[[7; 32]]).unwrap());
    let runtime = Runtime::start(config).unwrap();
    let before = runtime.execute(request(1, 0)).await.expect("runs").suspension.expect("suspended").id;
    redis.stop();

    let started = Instant::now();
    let suspending = runtime.execute(request(2, 0)).await;
    let resuming = runtime.resume(&before, 1, answer(1)).await;
    let cancelling = runtime.cancel(&before).await;
    let elapsed = started.elapsed();
    assert_eq!(code(&suspending), Some(ErrorCode::StoreUnavailable), "{suspending:?}");
    assert_eq!(code(&resuming), Some(ErrorCode::StoreUnavailable), "{resuming:?}");
    assert_eq!(cancelling.map_err(|e| e.code), Err(ErrorCode::StoreUnavailable));
    // Bounded by the store's timeout (300 ms each), not hanging: a generous bound.
    assert!(elapsed < Duration::from_secs(5), "three requests took {elapsed:?}");
    let stateless = runtime.execute(ExecutionRequest::source("return 6 * 7;")).await.expect("runs");
    assert_eq!(stateless.return_value, json!(42), "{stateless:?}");

    redis.restart();
    let mut again = None;
    for _ in 0..100 {
        let answer = runtime.execute(request(3, 0)).await;
        if let Ok(result) = &answer
            && result.status == Status::Suspended
        {
            again = result.suspension.clone();
            break;
        }
        assert_eq!(code(&answer), Some(ErrorCode::StoreUnavailable), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = again.expect("the store reconnected by itself");
    assert_eq!(runtime.resume(&again.id, 1, answer(3)).await.expect("resumes").status, Status::Success);
}

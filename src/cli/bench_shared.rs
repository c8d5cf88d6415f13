//! `nexus bench --suspensions shared --store redis://…`: nodes sharing one Redis. Each node is
//! a process (this binary again) running closed-loop clients whose handler awaits one 100 ms
//! extension call. With a store every node reaches, each suspension is written to Redis
//! before its result returns and each resume claims, restores and commits it there, whichever
//! node runs it: a resume costs the same on any node, so the clients resume on their own.
//! One node runs alone, then two at once; each reports its executions and the CPU it used.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nexus::{ExtOutcome, Runtime, RuntimeConfig, Status, SuspensionKeys};
use serde_json::json;

use super::UsageError;
use super::bench_suspensions::request;

/// Set in a node's environment.
const NODE: &str = "NEXUS_BENCH_SHARED_NODE";
const CLIENTS: usize = 1000;
const CALL: Duration = Duration::from_millis(100);
/// Counted after a second of warm-up.
const MEASURED: Duration = Duration::from_secs(5);

/// Whether this process is a node started by [`run`].
pub fn is_node() -> bool {
    std::env::var_os(NODE).is_some()
}

/// Runs one node alone, then two at once, against the Redis at `url`.
pub fn run(url: &str) -> Result<(), UsageError> {
    for nodes in [1, 2] {
        let children = (0..nodes)
            .map(|_| {
                Command::new(std::env::current_exe()?)
                    .args(["bench", "--suspensions", "shared", "--store", url])
                    .env(NODE, "1")
                    .stdout(Stdio::piped())
                    .spawn()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (mut executions, mut cpu) = (0u64, 0.0f64);
        for mut child in children {
            let stdout = child.stdout.take().expect("piped");
            for line in BufReader::new(stdout).lines() {
                let line = line?;
                let mut words = line.split_whitespace();
                if words.next() == Some("NODE") {
                    executions += words.next().and_then(|w| w.parse::<u64>().ok()).unwrap_or(0);
                    cpu += words.next().and_then(|w| w.parse::<f64>().ok()).unwrap_or(0.0);
                }
            }
            if !child.wait()?.success() {
                return Err(UsageError("a benchmark node failed".into()));
            }
        }
        println!(
            "shared: {nodes} process(es) x {CLIENTS} clients, {CALL:?} extension calls, one Redis: {:.0} executions/s \
             ({:.2} CPU cores used by the nodes)",
            executions as f64 / MEASURED.as_secs_f64(),
            cpu / (MEASURED + Duration::from_secs(1)).as_secs_f64()
        );
    }
    Ok(())
}

/// One node: `CLIENTS` closed-loop clients for a second of warm-up and `MEASURED`; prints
/// `NODE <executions> <CPU seconds>`.
pub async fn node(url: &str) {
    let mut config = RuntimeConfig::default();
    config.suspension_store = super::store::store_config(url);
    config.suspension_keys = Some(SuspensionKeys::new(&[[3; 32]]).unwrap());
    config.queue_bound = 8192;
    let runtime = Runtime::start(config).expect("a runtime on the shared store");
    let cpu_before = cpu_seconds();
    let counted_from = Instant::now() + Duration::from_secs(1);
    let until = counted_from + MEASURED;
    let clients = (0..CLIENTS).map(|_| {
        let runtime = runtime.clone();
        async move {
            let mut done = 0u64;
            while Instant::now() < until {
                let suspended = runtime.execute(request()).await.expect("runs");
                assert_eq!(suspended.status, Status::Suspended, "{suspended:?}");
                let id = suspended.suspension.expect("a suspended result has its suspension").id;
                tokio::time::sleep(CALL).await;
                let result = runtime.resume(&id, 1, ExtOutcome::Ok(json!({"temp": 21}))).await.expect("resumes");
                assert_eq!(result.status, Status::Success, "{result:?}");
                if Instant::now() >= counted_from && Instant::now() < until {
                    done += 1;
                }
            }
            done
        }
    });
    let total: u64 = futures::future::join_all(clients).await.into_iter().sum();
    println!("NODE {total} {:.2}", cpu_seconds() - cpu_before);
    runtime.shutdown(Duration::from_secs(1)).await;
}

/// CPU time this process used (user + system), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th
    // and 13th, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

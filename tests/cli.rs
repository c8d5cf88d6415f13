//! The `nexus` command line: `run` with canned extension answers, `check`, and exit codes
//! (0 success, 1 handler failed with JSON still printed, 2 usage or input error).

mod redis_server;

use std::process::{Command, Output};

use serde_json::{Value, json};

fn nexus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the nexus binary runs")
}

fn json_out(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn handler(name: &str, source: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nexus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap();
    path
}

/// Runs examples/counter.js with the capabilities it needs, plus `extra`.
fn counter(extra: &[&str]) -> Output {
    let mut args = vec!["run", "examples/counter.js"];
    for cap in ["state:read:count", "state:write:count", "events:emit:changed", "view:update:counter-label"] {
        args.extend(["--cap", cap]);
    }
    args.extend(extra);
    nexus(&args)
}

#[test]
fn run_counter_example_succeeds_with_accumulated_records() {
    let output = counter(&["--state", r#"{"count": 1}"#, "--args", r#"{"step": 2}"#]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let result = json_out(&output);
    assert_eq!(result["status"], "success");
    assert_eq!(result["returnValue"], 3);
    assert_eq!(result["stateMutations"], json!([{"op": "set", "key": "count", "value": 3}]));
    assert_eq!(result["events"], json!([{"name": "changed", "payload": {"value": 3}}]));
    assert_eq!(
        result["viewCommands"],
        json!([{"type": "update", "componentId": "counter-label", "args": {"text": "Count: 3"}}])
    );
    assert_eq!(result["logs"], json!([{"level": "info", "message": "count is now 3"}]));
    assert_eq!(result["suspensions"], json!([]));
}

#[test]
fn run_answers_extension_calls_and_lists_suspensions_in_order() {
    let path = handler(
        "two-calls.js",
        "$state.step = 1;\nconst a = await $ext.geo.find('x');\n$state.step = 2;\n\
         const [b, c] = await Promise.all([$ext.geo.find('y'), $ext.geo.near('z')]);\n$state.step = 3;\nreturn [a, b, c];",
    );
    let output = nexus(&[
        "run",
        path.to_str().unwrap(),
        "--cap",
        "ext:geo",
        "--cap",
        "state:write:step",
        "--ext",
        r#"geo.find={"lat": 1}"#,
        "--ext",
        "geo.near=[2]",
    ]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let result = json_out(&output);
    assert_eq!(result["returnValue"], json!([{"lat": 1}, {"lat": 1}, [2]]));
    let steps: Vec<Value> = result["stateMutations"].as_array().unwrap().iter().map(|m| m["value"].clone()).collect();
    assert_eq!(steps, vec![json!(1), json!(2), json!(3)], "mutations from every stretch, in order");
    let suspensions = result["suspensions"].as_array().unwrap();
    assert_eq!(suspensions.len(), 2, "{suspensions:?}");
    assert_eq!(suspensions[0]["calls"].as_array().unwrap().len(), 1);
    let second: Vec<&str> =
        suspensions[1]["calls"].as_array().unwrap().iter().map(|c| c["method"].as_str().unwrap()).collect();
    assert_eq!(second, vec!["find", "near"], "Promise.all suspends once with both calls");
    // The metrics are the whole run's: three writes and three extension calls over three steps.
    let metrics = &result["metrics"];
    assert_eq!(metrics["hostCalls"], json!(6), "{metrics}");
    let (total, compile) = (metrics["executionTimeUs"].as_u64().unwrap(), metrics["compileTimeUs"].as_u64().unwrap());
    assert!(compile > 0 && total >= compile, "{metrics}");
}

#[test]
fn the_printed_result_stays_near_the_size_of_what_the_handler_made() {
    // A call left pending (its argument 400 KB) while 40 others are awaited one by one: each
    // call is listed once, by the suspension that made it, not by every suspension after.
    let path = handler(
        "pending-across-steps.js",
        "$ext.slow.get('x'.repeat(400000)).catch(() => {});
         for (let i = 0; i < 40; i++) await $ext.fast.get(i);
return 'done';",
    );
    let output = nexus(&[
        "run",
        path.to_str().unwrap(),
        "--cap",
        "ext:slow",
        "--cap",
        "ext:fast",
        "--ext",
        "slow.get=1",
        "--ext-delay",
        "slow.get=500",
        "--ext",
        "fast.get=2",
    ]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.len() < 1_000_000, "{} bytes printed", output.stdout.len());
    let result = json_out(&output);
    let listed: usize =
        result["suspensions"].as_array().unwrap().iter().map(|s| s["calls"].as_array().unwrap().len()).sum();
    assert_eq!(listed, 41, "every call once");

    // 100 levels of nesting around many leaves: indented, 200 KB printed as ~20 MB.
    let path = handler(
        "deep.js",
        "let v = []; for (let i = 0; i < 100; i++) v = [v];
return Array.from({ length: 2000 }, () => v);",
    );
    let output = nexus(&["run", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.len() < 1_000_000, "{} bytes printed", output.stdout.len());
    assert_eq!(json_out(&output)["returnValue"].as_array().unwrap().len(), 2000);
}

#[test]
fn run_resumes_each_call_as_soon_as_its_delayed_answer_is_there() {
    // The slow call is listed first; resumed in list order, or only once both had answered,
    // its result would arrive first.
    let path = handler(
        "arrival-order.js",
        "const arrived = [];\nconst record = (call) => call.then((value) => { arrived.push(value); });\n\
         await Promise.all([record($ext.slow.call()), record($ext.fast.call())]);\nreturn arrived;",
    );
    let output = nexus(&[
        "run",
        path.to_str().unwrap(),
        "--cap",
        "ext:slow",
        "--cap",
        "ext:fast",
        "--ext",
        r#"slow.call="slow""#,
        "--ext-delay",
        "slow.call=200",
        "--ext",
        r#"fast.call="fast""#,
        "--ext-delay",
        "fast.call=10",
    ]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let result = json_out(&output);
    assert_eq!(result["returnValue"], json!(["fast", "slow"]), "the first answered is the first resumed: {result}");
    let calls = result["suspensions"][0]["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "both calls pending at once: {result}");
}

/// Runs examples/weather.js for Paris with the capabilities it needs, plus `extra`.
fn weather(extra: &[&str]) -> Output {
    let mut args = vec!["run", "examples/weather.js", "--state", r#"{"city": "Paris"}"#];
    for cap in ["ext:weather", "state:read:city", "state:write:status"] {
        args.extend(["--cap", cap]);
    }
    args.extend(extra);
    nexus(&args)
}

#[test]
fn run_ext_error_rejects_the_call_inside_the_handler() {
    let output = weather(&["--ext-error", "weather.get=service down"]);
    assert_eq!(output.status.code(), Some(0));
    let result = json_out(&output);
    assert_eq!(result["returnValue"], Value::Null);
    assert_eq!(result["stateMutations"][1], json!({"op": "set", "key": "status", "value": "failed"}));
    assert_eq!(result["logs"][0]["message"], "weather unavailable: service down");
}

#[test]
fn run_without_an_answer_reports_unknown_extension() {
    let output = weather(&[]);
    let result = json_out(&output);
    assert_eq!(result["logs"][0]["message"], "weather unavailable: unknown extension: weather.get", "{result}");
}

#[test]
fn a_failing_handler_exits_1_and_still_prints_the_result() {
    let path = handler("fails.js", "const a = 1;\nreturn $state.secret;");
    let output = nexus(&["run", path.to_str().unwrap(), "--state", r#"{"secret": 1}"#]);
    assert_eq!(output.status.code(), Some(1));
    let result = json_out(&output);
    assert_eq!(result["status"], "error");
    assert_eq!(result["error"]["code"], "PERMISSION_DENIED");
    assert_eq!(result["error"]["location"]["line"], 2);
    assert_eq!(
        result["denials"],
        json!([{"capability": "state:read:secret", "kind": "state:read", "resource": "secret", "operation": "state.get"}])
    );
}

#[test]
fn a_malformed_capability_exits_2_naming_the_token() {
    let output = nexus(&["run", "examples/counter.js", "--cap", "state:raed:count"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("state:raed:count"), "{stderr}");
}

#[test]
fn a_reader_that_stops_reading_ends_the_run_quietly_not_with_a_panic() {
    // More output than a pipe holds (64 KiB), to a reader that closed its end at once.
    let source = "for (let i = 0; i < 2000; i++) $log.info('x'.repeat(500)); return 1;";
    let path = handler("chatty.js", source);
    let mut child = Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(["run", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the nexus binary runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "stderr: {stderr}");
}

#[test]
fn bad_inputs_exit_2_with_a_message() {
    for args in [
        vec!["run", "examples/counter.js", "--state", "{not json"],
        vec!["run", "examples/counter.js", "--state", "[1]"],
        vec!["run", "examples/counter.js", "--args", "@/nonexistent/args.json"],
        vec!["run", "/nonexistent/handler.js"],
        vec!["run", "examples/counter.js", "--ext", "nomethod=1"],
        vec!["run", "examples/counter.js", "--ext-delay", "w.get=5"],
        vec!["run", "examples/counter.js", "--ext", "w.get=1", "--ext-delay", "w.get=soon"],
        vec!["run"],
    ] {
        let output = nexus(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
    // Two answers for one method, or an answer for a method to defer: refused rather than one
    // silently winning; a resume with nothing to deliver likewise.
    let store = store_dir("conflicts");
    let store = store.to_str().unwrap();
    for (args, says) in [
        (vec!["run", "examples/counter.js", "--ext", "w.get=1", "--ext", "w.get=2"], "w.get already has an answer"),
        (
            vec!["run", "examples/counter.js", "--ext", "w.get=1", "--ext-error", "w.get=no"],
            "w.get already has an answer",
        ),
        (
            vec!["run", "examples/counter.js", "--ext", "w.get=1", "--defer", "w.get", "--store", store],
            "w.get has an answer here",
        ),
        (vec!["resume", "--store", store, "0123"], "at least one --call"),
        (
            vec!["resume", "--store", store, "0123", "--call", "1=1", "--call-error", "1=no"],
            "call 1 is given an outcome twice",
        ),
    ] {
        let output = nexus(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn run_reads_json_from_files() {
    let state = handler("state.json", r#"{"count": 41}"#);
    let output = counter(&["--state", &format!("@{}", state.display())]);
    assert_eq!(json_out(&output)["returnValue"], 42);
}

#[test]
fn infer_caps_grants_literal_accesses_only() {
    let path = handler(
        "infer.js",
        "const k = 'count';\n$state.count = 1;\ntry { return $state[k]; } catch (e) { return e.code; }",
    );
    let output = nexus(&["run", path.to_str().unwrap(), "--infer-caps"]);
    let result = json_out(&output);
    assert_eq!(result["returnValue"], "PERMISSION_DENIED", "{result}");
    assert_eq!(result["stateMutations"], json!([{"op": "set", "key": "count", "value": 1}]));
}

#[test]
fn check_prints_capabilities_and_warnings() {
    let path = handler("check.js", "$state.a = $state.b;\n$emit('done');\nconst k = 'x';\nreturn $state[k];");
    let output = nexus(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let result = json_out(&output);
    assert_eq!(result["capabilities"], json!(["state:read:b", "state:write:a", "events:emit:done"]));
    let warnings = result["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0]["line"], 4);
}

#[test]
fn check_reports_syntax_errors_with_location() {
    let path = handler("broken.js", "const a = 1;\nconst = 2;");
    let output = nexus(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let result = json_out(&output);
    assert_eq!(result["error"]["code"], "SYNTAX_ERROR");
    assert_eq!(result["error"]["location"]["line"], 2);
}

#[test]
fn bench_json_reports_every_workload() {
    let output = nexus(&["bench", "--json", "--iterations", "2", "--duration-ms", "1", "--concurrency", "2"]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let report = json_out(&output);
    let names: Vec<&str> =
        report["workloads"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["trivial", "state", "compute", "suspend", "cold"]);
    for workload in report["workloads"].as_array().unwrap() {
        for figure in ["engine", "runtime"] {
            for field in ["p50Us", "p99Us", "meanUs"] {
                assert!(workload[figure][field].as_f64().unwrap() > 0.0, "{figure}.{field} in {workload}");
            }
            assert!(workload[figure]["executions"].as_u64().unwrap() >= 1, "{workload}");
        }
        assert!(workload["throughput"]["perSecond"].as_f64().unwrap() > 0.0, "{workload}");
        assert_eq!(workload["throughput"]["concurrency"], 2);
    }
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
}

#[test]
fn bench_typescript_reports_first_cached_and_precompiled_executions_of_both_languages() {
    let output = nexus(&["bench", "--typescript", "--iterations", "2", "--duration-ms", "1"]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for language in ["typescript", "javascript"] {
        for figure in ["first execution", "from the cache", "precompiled"] {
            let line = stdout
                .lines()
                .find(|line| line.contains(language) && line.contains(figure))
                .unwrap_or_else(|| panic!("no {language} {figure} line in {stdout}"));
            assert!(line.contains("p50") && line.contains("µs"), "{line}");
        }
    }
    assert!(stdout.contains("stripping the types alone"), "{stdout}");
}

/// Runs `nexus` with a suspension key in its environment (`key` as 64 hex characters).
fn nexus_keyed(args: &[&str], key: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(args)
        .env("NEXUS_SUSPENSION_KEY", key)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the nexus binary runs")
}

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn store_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nexus-cli-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_suspension_left_in_a_store_is_resumed_by_other_processes_and_used_once() {
    let store = store_dir("flow");
    stored_flow(store.to_str().unwrap());
    let _ = std::fs::remove_dir_all(store);
}

#[test]
fn a_suspension_left_in_redis_is_resumed_by_other_processes_and_used_once() {
    let redis = redis_server::RedisServer::start();
    stored_flow(&redis.url);
    let down = redis_server::RedisServer::own();
    let url = down.url.clone();
    drop(down);
    let unreachable = nexus_keyed(&["resume", "--store", &url, "0123abcd", "--call", "1=0"], KEY);
    assert_eq!(unreachable.status.code(), Some(1));
    assert_eq!(json_out(&unreachable)["error"]["code"], "STORE_UNAVAILABLE");
}

/// run, then resume twice, in separate processes, through `store` (a directory or a URL).
fn stored_flow(store: &str) {
    let source = "$state.step = 'asked';\nconst w = await $ext.weather.get('Paris');\n\
                  const x = await $ext.db.load(w.temp);\n$emit('done', x); return { temp: w.temp, x };";
    let path = handler("stored.js", source);
    let caps = ["--cap", "ext:weather", "--cap", "ext:db", "--cap", "state:write:step", "--cap", "events:emit:done"];
    let mut args =
        vec!["run", path.to_str().unwrap(), "--store", store, "--defer", "weather.get", "--defer", "db.load"];
    args.extend(caps);
    let ran = nexus_keyed(&args, KEY);
    assert_eq!(ran.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&ran.stderr));
    let ran = json_out(&ran);
    assert_eq!(ran["status"], "suspended");
    assert_eq!(ran["stateMutations"][0]["value"], "asked");
    let first = ran["suspension"]["id"].as_str().unwrap().to_owned();
    assert_eq!(ran["suspension"]["calls"][0]["callId"], 1);

    // A second process settles the first call; the execution suspends again, stored again.
    let resumed = nexus_keyed(&["resume", "--store", store, &first, "--call", r#"1={"temp": 21}"#], KEY);
    assert_eq!(resumed.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&resumed.stderr));
    let resumed = json_out(&resumed);
    assert_eq!(resumed["status"], "suspended");
    let second = resumed["suspension"]["id"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(resumed["suspension"]["calls"][0]["args"], json!([21]));

    // The first id is used: refused, exit 1, the JSON says why.
    let again = nexus_keyed(&["resume", "--store", store, &first, "--call", "1=0"], KEY);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(json_out(&again)["error"]["code"], "SUSPENSION_NOT_FOUND");
    // A call id that is not pending is refused and leaves the suspension where it was.
    let wrong_call = nexus_keyed(&["resume", "--store", store, &second, "--call", "7=0"], KEY);
    assert_eq!(wrong_call.status.code(), Some(1));
    assert_eq!(json_out(&wrong_call)["error"]["code"], "INVALID_ARGUMENT");
    // A third process finishes it.
    let done = nexus_keyed(&["resume", "--store", store, &second, "--call", r#"2={"rows": 3}"#], KEY);
    assert_eq!(done.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&done.stderr));
    let done = json_out(&done);
    assert_eq!(done["status"], "success");
    assert_eq!(done["returnValue"], json!({"temp": 21, "x": {"rows": 3}}));
    assert_eq!(done["events"], json!([{"name": "done", "payload": {"rows": 3}}]));
}

#[test]
fn resume_with_several_calls_reports_the_metrics_of_all_its_steps() {
    let source = "const a = $ext.kv.get('a');\nconst b = $ext.kv.get('b');\nconst x = await a;\n$state.s = x;\n\
                  const y = await b;\n$state.t = y;\nreturn x + y;";
    let path = handler("two-pending.js", source);
    let store = store_dir("two-pending");
    let store = store.to_str().unwrap();
    let caps = ["--cap", "ext:kv", "--cap", "state:write:s", "--cap", "state:write:t"];
    let mut args = vec!["run", path.to_str().unwrap(), "--store", store, "--defer", "kv.get"];
    args.extend(caps);
    let ran = json_out(&nexus_keyed(&args, KEY));
    assert_eq!((ran["status"].as_str(), ran["metrics"]["hostCalls"].as_u64()), (Some("suspended"), Some(2)));
    let id = ran["suspension"]["id"].as_str().unwrap();
    let done = nexus_keyed(&["resume", "--store", store, id, "--call", "1=1", "--call", "2=2"], KEY);
    assert_eq!(done.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&done.stderr));
    let done = json_out(&done);
    assert_eq!(done["returnValue"], json!(3));
    // Two steps, one write each: the whole resume's metrics, not its last step's.
    assert_eq!(done["metrics"]["hostCalls"], json!(2), "{}", done["metrics"]);
    let values: Vec<&Value> = done["stateMutations"].as_array().unwrap().iter().map(|m| &m["value"]).collect();
    assert_eq!(values, [&json!(1), &json!(2)]);
}

#[test]
fn a_stored_suspension_is_refused_with_another_key_when_tampered_and_after_cancel() {
    let path = handler("cancel.js", "return await $ext.kv.get('a');");
    let store = store_dir("cancel");
    let store_str = store.to_str().unwrap();
    let run = |key| {
        let args = ["run", path.to_str().unwrap(), "--store", store_str, "--defer", "kv.get", "--cap", "ext:kv"];
        json_out(&nexus_keyed(&args, key))["suspension"]["id"].as_str().unwrap().to_owned()
    };
    let id = run(KEY);
    let other_key = "f".repeat(64);
    let refused = nexus_keyed(&["resume", "--store", store_str, &id, "--call", "1=5"], &other_key);
    assert_eq!(refused.status.code(), Some(1));
    assert!(json_out(&refused)["error"]["message"].as_str().unwrap().contains("does not authenticate"));
    // Refused, not used: with the right key it still resumes.
    let resumed = nexus_keyed(&["resume", "--store", store_str, &id, "--call", "1=5"], KEY);
    assert_eq!(json_out(&resumed)["returnValue"], 5);

    let id = run(KEY);
    let image = store.join(&id).join("image");
    let mut bytes = std::fs::read(&image).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&image, &bytes).unwrap();
    let tampered = nexus_keyed(&["resume", "--store", store_str, &id, "--call", "1=5"], KEY);
    assert_eq!(tampered.status.code(), Some(1));
    assert!(json_out(&tampered)["error"]["message"].as_str().unwrap().contains("does not authenticate"));

    let id = run(KEY);
    let cancelled = nexus_keyed(&["cancel", "--store", store_str, &id], KEY);
    assert_eq!(cancelled.status.code(), Some(0));
    assert_eq!(json_out(&cancelled)["cancelled"], true);
    let after = nexus_keyed(&["resume", "--store", store_str, &id, "--call", "1=5"], KEY);
    assert_eq!(json_out(&after)["error"]["code"], "SUSPENSION_NOT_FOUND");
    let _ = std::fs::remove_dir_all(store);
}

#[test]
fn defer_without_a_store_is_a_usage_error() {
    let path = handler("defer.js", "return await $ext.kv.get('a');");
    let output = nexus(&["run", path.to_str().unwrap(), "--defer", "kv.get", "--cap", "ext:kv"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--store"));
}

/// A scratch cache and key directory, so a test sees its own preload cache.
fn isolated_caches(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nexus-cli-caches-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nexus_with_caches(args: &[&str], caches: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("XDG_CACHE_HOME", caches.join("cache"))
        .env("XDG_DATA_HOME", caches.join("data"))
        .env("RUST_LOG", "nexus_actors=info")
        .output()
        .expect("the nexus binary runs")
}

#[test]
fn run_preload_example_uses_the_libraries_and_the_cached_image_the_second_time() {
    let caches = isolated_caches("preload");
    let args = [
        "run",
        "examples/preload/handler.js",
        "--preload",
        "benches/libraries/lodash-4.17.21.min.js",
        "--preload",
        "examples/preload/panel-sdk.js",
        "--args",
        r#"{"items": [{"category": "tea", "cents": 450}, {"category": "cake", "cents": 300}, {"category": "tea", "cents": 250}]}"#,
    ];
    let first = nexus_with_caches(&args, &caches);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(
        json_out(&first)["returnValue"],
        json!([{"category": "cake", "total": "3.00 EUR"}, {"category": "tea", "total": "7.00 EUR"}])
    );
    assert!(stderr.contains("preloaded image built"), "{stderr}");
    let second = nexus_with_caches(&args, &caches);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("preloaded image read from the cache"), "{stderr}");
    assert_eq!(json_out(&second)["returnValue"], json_out(&first)["returnValue"]);
    let _ = std::fs::remove_dir_all(&caches);
}

#[test]
fn run_with_a_library_that_throws_fails_naming_its_path_and_line() {
    let library = handler("broken-lib.js", "var fine = 1;\n\nundefinedHelper();\n");
    let path = library.to_string_lossy().into_owned();
    let output = nexus(&["run", "examples/counter.js", "--preload", &path]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(&format!("preloading library {path} at line 3")), "{stderr}");
    assert!(stderr.contains("ReferenceError") && stderr.contains("undefinedHelper"), "{stderr}");
}

#[test]
fn an_outcome_refused_after_others_were_applied_names_the_suspension_left() {
    let source = "const a = await $ext.kv.get('a');\n$state.a = a;\nconst b = await $ext.kv.get('b');\nreturn a + b;";
    let path = handler("refused-later.js", source);
    let store = store_dir("refused-later");
    let store = store.to_str().unwrap();
    let run = ["run", path.to_str().unwrap(), "--store", store, "--defer", "kv.get", "--cap", "ext:kv"];
    let ran = json_out(&nexus_keyed(&[&run[..], &["--cap", "state:write:a"]].concat(), KEY));
    let id = ran["suspension"]["id"].as_str().unwrap();
    // Call 1 is applied (the execution then waits on call 2, under a new id); call 3 never exists.
    let refused = nexus_keyed(&["resume", "--store", store, id, "--call", "1=1", "--call", "3=3"], KEY);
    assert_eq!(refused.status.code(), Some(1));
    let refused = json_out(&refused);
    assert_eq!(refused["error"]["code"], "INVALID_ARGUMENT");
    let left = refused["suspension"]["id"].as_str().expect("the suspension left is named").to_owned();
    assert_ne!(left, id);
    assert!(refused["error"]["message"].as_str().unwrap().contains(&left), "{refused}");
    assert_eq!(refused["suspension"]["calls"][0]["callId"], 2);
    assert_eq!(refused["stateMutations"][0]["value"], 1, "what call 1's step did is reported");
    assert_eq!(refused["metrics"]["hostCalls"], 2, "and what it cost: {refused}");
    let done = json_out(&nexus_keyed(&["resume", "--store", store, &left, "--call", "2=2"], KEY));
    assert_eq!((done["status"].as_str(), &done["returnValue"]), (Some("success"), &json!(3)));
}

#[test]
fn a_store_that_is_not_there_a_key_inside_its_store_or_an_overflowing_limit_are_usage_errors() {
    let missing = store_dir("missing");
    let missing = missing.to_str().unwrap();
    for args in [vec!["cancel", "--store", missing, "x-0"], vec!["resume", "--store", missing, "x-0", "--call", "1=1"]]
    {
        let output = nexus_keyed(&args, KEY);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("no such directory"), "{args:?}");
        assert!(!std::path::Path::new(missing).exists(), "not created: {args:?}");
    }
    // A store path naming a file says so.
    let file = handler("not-a-store.txt", "text");
    let output = nexus_keyed(&["resume", "--store", file.to_str().unwrap(), "x-0", "--call", "1=1"], KEY);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a directory"), "{output:?}");

    // The key file would be made in the data directory, here inside the store.
    let data = store_dir("data-home");
    let store = data.join("nexus");
    let output = Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(["run", "examples/counter.js", "--store", store.to_str().unwrap(), "--defer", "w.get"])
        .env_remove("NEXUS_SUSPENSION_KEY")
        .env("XDG_DATA_HOME", &data)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is inside the store") && stderr.contains("suspension.key is"), "{output:?}");
    let _ = std::fs::remove_dir_all(&data);

    let path = handler("one.js", "return 1;");
    for mb in ["17592186044432", "18446744073709551615"] {
        let output = nexus(&["run", path.to_str().unwrap(), "--memory-mb", mb]);
        assert_eq!(output.status.code(), Some(2), "--memory-mb {mb} wrapped around: {output:?}");
    }
}

#[test]
fn a_resume_without_the_libraries_its_run_preloaded_says_to_preload_them() {
    let library = handler("greet-lib.js", "var greet = function (name) { return 'hi ' + name; };");
    let path = handler("greets.js", "const name = await $ext.kv.get('name');\nreturn greet(name);");
    let store = store_dir("preload-mismatch");
    let store = store.to_str().unwrap();
    let (library, path) = (library.to_str().unwrap(), path.to_str().unwrap());
    let run = ["run", path, "--store", store, "--defer", "kv.get", "--cap", "ext:kv", "--preload", library];
    let ran = json_out(&nexus_keyed(&run, KEY));
    let id = ran["suspension"]["id"].as_str().expect("suspended").to_owned();
    let refused = nexus_keyed(&["resume", "--store", store, &id, "--call", "1=\"ada\""], KEY);
    assert_eq!(refused.status.code(), Some(1));
    let message = json_out(&refused)["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("nexus resume --preload"), "{message}");
    let done =
        json_out(&nexus_keyed(&["resume", "--store", store, &id, "--call", "1=\"ada\"", "--preload", library], KEY));
    assert_eq!(done["returnValue"], "hi ada", "{done}");
}

#[test]
fn a_snapshot_larger_than_the_default_memory_limit_runs_with_memory_mb() {
    // The library's garbage grows the snapshot's memory past the default 64 MiB limit.
    let library = handler("grows.js", "var junk = []; for (let i = 0; i < 1e6; i++) junk.push({ i }); junk = null;");
    let path = handler("small.js", "return 1;");
    let (library, path) = (library.to_str().unwrap(), path.to_str().unwrap());
    let refused = nexus(&["run", path, "--preload", library]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--memory-mb"), "{refused:?}");
    let ran = nexus(&["run", path, "--preload", library, "--memory-mb", "200"]);
    assert_eq!(ran.status.code(), Some(0), "{}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(json_out(&ran)["returnValue"], 1);
}

#[test]
fn the_key_file_is_kept_out_of_the_cache_directory_so_clearing_the_cache_loses_no_suspension() {
    let home = store_dir("key-home");
    let (cache, data) = (home.join("cache"), home.join("data"));
    let store = home.join("store");
    let store = store.to_str().unwrap();
    let nexus_at = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nexus"))
            .args(args)
            .env_remove("NEXUS_SUSPENSION_KEY")
            .env("XDG_CACHE_HOME", &cache)
            .env("XDG_DATA_HOME", &data)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    // A key file an earlier version left in the cache directory is carried over.
    let legacy = "ab".repeat(32);
    std::fs::create_dir_all(cache.join("nexus")).unwrap();
    std::fs::write(cache.join("nexus/suspension.key"), &legacy).unwrap();
    let path = handler("keyed.js", "return await $ext.kv.get('k');");
    let ran =
        json_out(&nexus_at(&["run", path.to_str().unwrap(), "--store", store, "--defer", "kv.get", "--cap", "ext:kv"]));
    let id = ran["suspension"]["id"].as_str().expect("suspended").to_owned();
    assert_eq!(std::fs::read_to_string(data.join("nexus/suspension.key")).unwrap(), legacy);
    // The cache is cleared: the suspension still opens.
    std::fs::remove_dir_all(&cache).unwrap();
    let done = json_out(&nexus_at(&["resume", "--store", store, &id, "--call", "1=7"]));
    assert_eq!(done["returnValue"], 7, "{done}");
    let _ = std::fs::remove_dir_all(&home);
}

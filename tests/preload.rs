//! Libraries preloaded into the snapshot: visible to every handler, fresh in every execution,
//! refused at start when they fail or reach the host, cached on disk by identity.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use nexus::{
    Engine, EngineConfig, ExecutionRequest, ExecutionResult, ImageOrigin, Library, LibrarySlotReset, PreloadError,
    SlotReset, Status,
};
use nexus::{ExtOutcome, Runtime, RuntimeConfig, Sealer, StartError, SuspensionKeys};
use serde_json::{Value, json};

const LODASH: &str = include_str!("../benches/libraries/lodash-4.17.21.min.js");

/// A small library of the platform's own, after lodash (so it may use it).
const HELPERS: &str = r#"
var helpers = {
  greeting: 'hello',
  counter: { value: 0 },
  shout: function (text) { return _.toUpper(text) + '!'; },
  loadedAt: Date.now(),
};
function twice(x) { return 2 * x; }
"#;

fn libraries() -> Vec<Library> {
    vec![Library::new("lodash.min.js", LODASH), Library::new("helpers.js", HELPERS)]
}

fn config(libraries: Vec<Library>) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.libraries = libraries;
    config
}

/// One engine with the libraries for the tests that only run handlers (a build compiles a module).
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::with_slots(config(libraries()), 8).expect("the engine starts with its libraries"))
}

fn run(engine: &Engine, source: &str) -> ExecutionResult {
    let result = engine.execute(ExecutionRequest::source(source)).result;
    assert_eq!(result.status, Status::Success, "{source}: {:?}", result.error);
    result
}

fn value(source: &str) -> Value {
    run(engine(), source).return_value
}

/// The error that stopped an engine's start with `libraries`.
fn refused(libraries: Vec<Library>) -> PreloadError {
    let error = match Engine::with_slots(config(libraries), 8) {
        Ok(_) => panic!("the engine started"),
        Err(error) => error,
    };
    error.downcast_ref::<PreloadError>().cloned().unwrap_or_else(|| panic!("not a preload error: {error:#}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nexus-preload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_handler_calls_a_preloaded_librarys_functions() {
    assert_eq!(value("return _.chunk([1, 2, 3, 4, 5], 2);"), json!([[1, 2], [3, 4], [5]]));
    assert_eq!(value("return _.sortBy([{n: 3}, {n: 1}, {n: 2}], 'n').map(o => o.n);"), json!([1, 2, 3]));
    assert_eq!(value("return [helpers.shout('hi'), twice(21)];"), json!(["HI!", 42]));
}

/// Page faults this thread has taken so far.
fn minor_faults() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    usage.ru_minflt
}

/// The fewest and the most page faults one of 40 executions of a lodash handler took.
fn faults(engine: &Engine) -> (i64, i64) {
    let source = "return _.map(_.sortBy(_.keys(_.groupBy($args.xs, 'k'))), _.toUpper);";
    let args = json!({ "xs": [{ "k": "b" }, { "k": "a" }, { "k": "b" }] });
    let faults: Vec<i64> = (0..40)
        .map(|_| {
            let request = ExecutionRequest { args: args.clone(), ..ExecutionRequest::source(source) };
            let before = minor_faults();
            let outcome = engine.execute(request);
            let faults = minor_faults() - before;
            assert_eq!(outcome.result.return_value, json!(["A", "B"]));
            faults
        })
        .collect();
    (*faults.iter().min().unwrap(), *faults.iter().max().unwrap())
}

#[test]
fn an_execution_using_a_library_does_not_fault_the_snapshot_in_again() {
    // A slot reset that released the snapshot's pages (a page-table scan reporting only so many
    // runs of written pages) made every lodash execution fault 36 to 64 pages in again, each a
    // copy of the file's page (~4 us). Copied back whole, the slot takes none.
    let mut whole = config(libraries());
    whole.library_slot_reset = LibrarySlotReset::WholeSlot;
    let whole = Engine::with_slots(whole, 8).unwrap();
    assert_eq!(whole.slot_reset(), SlotReset::WholeSlot);
    let (fewest, _) = faults(&whole);
    assert!(fewest < 16, "every execution took {fewest} page faults or more");

    // Reset page by page, the pages written are write-protected again, and the ones the slot's
    // executions keep writing made writable again after the reset: an execution takes a fault
    // (which copies nothing) only for a page written first, as after a reset that relearns
    // them, one in 8 per slot. This machine's kernel must track them (CI runs where it can).
    let mut tracked = config(libraries());
    tracked.library_slot_reset = LibrarySlotReset::WrittenPages;
    let tracked = &Engine::with_slots(tracked, 8).unwrap();
    assert_eq!(
        tracked.slot_reset(),
        SlotReset::WrittenPages,
        "written pages are not tracked here: Linux 6.7 or later with userfaultfd allowed is needed"
    );
    let (fewest, most) = faults(tracked);
    assert!(fewest < 16, "every execution took {fewest} page faults or more");
    assert!(most >= 16, "no execution took a fault for a page it wrote first: are the pages protected?");
}

#[test]
fn what_a_handler_changes_in_a_library_is_gone_in_the_next_execution() {
    let mutate = "helpers.counter.value += 1; helpers.greeting = 'changed'; _.chunk = () => 'patched';\n\
                  globalThis.twice = null; delete globalThis.helpers.shout; globalThis.leaked = 1;\n\
                  return [helpers.counter.value, helpers.greeting, _.chunk([1])];";
    assert_eq!(value(mutate), json!([1, "changed", "patched"]));
    assert_eq!(value(mutate), json!([1, "changed", "patched"]), "the second run starts from the image again");
    let fresh = "return [helpers.counter.value, helpers.greeting, _.chunk([1, 2], 1), twice(2),\n\
                 typeof helpers.shout, typeof leaked];";
    assert_eq!(value(fresh), json!([0, "hello", [[1], [2]], 4, "function", "undefined"]));
}

#[test]
fn a_library_sees_a_clock_fixed_at_zero_and_a_handler_the_real_time() {
    let [loaded_at, now] =
        value("return [helpers.loadedAt, Date.now()];").as_array().cloned().unwrap().try_into().unwrap();
    assert_eq!(loaded_at, json!(0));
    let real = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as f64;
    assert!((now.as_f64().unwrap() - real).abs() < 60_000.0, "{now} is not the time");
}

#[test]
fn the_image_identity_names_the_libraries() {
    let plain = Engine::with_slots(EngineConfig::default(), 4).unwrap();
    assert_ne!(engine().image_identity(), plain.image_identity());
    assert_eq!(plain.image_origin(), ImageOrigin::Committed);
    // A suspension sealed on one image is never restored into another.
    let mut request = ExecutionRequest::source("return await $ext.kv.get('a');");
    request.capabilities = vec!["ext:kv".parse().unwrap()];
    request.extension_registry.entry("kv".into()).or_default().insert("get".into());
    let outcome = engine().execute(request);
    let id = outcome.result.suspension.expect("suspends").id;
    let (image, _spent) = engine().hibernate(outcome.parked.unwrap()).unwrap();
    let key = || SuspensionKeys::new(&[[5; 32]]).unwrap();
    let sealed = Sealer::for_image(key(), engine().image_identity()).seal(
        &image,
        &id,
        SystemTime::now() + Duration::from_secs(60),
    );
    let refused = Sealer::for_image(key(), plain.image_identity()).open(&sealed, &id).unwrap_err();
    assert!(refused.contains("another guest image"), "{refused}");
    let (_, image) = Sealer::for_image(key(), engine().image_identity()).open(&sealed, &id).unwrap();
    let parked = engine().restore(image, id).unwrap();
    let resumed = engine().resume(parked, 1, ExtOutcome::Ok(json!(7))).ok().unwrap();
    assert_eq!(resumed.result.return_value, json!(7));
}

#[test]
fn a_library_that_throws_at_load_stops_the_start_with_its_name_and_line() {
    let error = refused(vec![
        Library::new("fine.js", "var fine = 1;"),
        Library::new("lib/broken.js", "var a = 1;\nvar b = 2;\nnotDefined.call();\n"),
    ]);
    assert_eq!(error.library, "lib/broken.js");
    assert_eq!(error.line, Some(3));
    assert!(error.message.contains("ReferenceError") && error.message.contains("notDefined"), "{error}");
    let thrown = refused(vec![Library::new("t.js", "\n\nthrow new Error('not today');")]);
    assert_eq!((thrown.library.as_str(), thrown.line), ("t.js", Some(3)));
    assert_eq!(thrown.message, "Error: not today");
}

#[test]
fn an_error_in_a_library_called_by_the_handler_is_located_in_the_handler() {
    // A name ending like the handler's own file: its frames are still the library's.
    let library = Library::new("lib/my-handler.js", "function helper(x) {\n  return x.y.z;\n}\n");
    let engine = Engine::with_slots(config(vec![library]), 2).expect("the engine starts");
    let error = engine.execute(ExecutionRequest::source("\n\nreturn helper({});")).result.error.expect("it fails");
    assert_eq!(error.location.map(|l| (l.line, l.column)), Some((3, 8)));
    assert_eq!(error.snippet.as_deref(), Some("return helper({});"));
    assert_eq!(
        error.stack.as_deref(),
        Some("    at helper (lib/my-handler.js:2:10)\n    at <anonymous> (handler.js:3:8)\n"),
        "the library's frame, the handler's, and none of the runtime's"
    );
    let own = refused(vec![Library::new("handler.js", "var x = 1;")]);
    assert!(own.message.contains("stack frames of the handler or of the runtime"), "{own}");
}

#[test]
fn a_library_that_does_not_parse_stops_the_start_with_its_name_and_line() {
    let error = refused(vec![Library::new("syntax.js", "var ok = 1;\nvar = ;\n")]);
    assert_eq!((error.library.as_str(), error.line), ("syntax.js", Some(2)));
    assert!(error.message.starts_with("SyntaxError"), "{error}");
}

#[test]
fn a_library_that_reaches_the_host_at_load_stops_the_start_naming_it() {
    for (source, reached) in [
        ("console.log('loading');", "console"),
        ("var id = Math.random();", "Math.random"),
        // Caught: the start fails all the same.
        ("try { console.warn('x'); } catch (e) {}", "console"),
        // From a job the library queued.
        ("Promise.resolve().then(() => console.error('later'));", "console"),
        // Through the stack's call sites: the prelude's functions are not handed out.
        (
            "Error.prepareStackTrace = (_, sites) => sites;\n\
             var sites = (function () { return new Error().stack; })();\n\
             var f = sites[0] && sites[0].getFunction && sites[0].getFunction();\n\
             if (f) f('x');\nconsole.info(typeof f);",
            "console",
        ),
    ] {
        let error = refused(vec![Library::new("sneaky.js", source)]);
        assert_eq!(error.library, "sneaky.js", "{source}");
        assert!(error.message.contains(reached) && error.message.contains("reached the host"), "{source}: {error}");
    }
}

#[test]
fn a_rejection_nothing_handles_at_load_stops_the_start() {
    let error = refused(vec![Library::new("async.js", "Promise.reject(new TypeError('nope'));")]);
    assert_eq!(error.library, "async.js");
    assert!(error.message.contains("nope"), "{error}");
}

fn cached_engine(cache: &Path, key: &Path) -> Engine {
    let mut config = config(libraries());
    config.module_cache_dir = Some(cache.to_owned());
    config.cache_key_file = Some(key.to_owned());
    Engine::with_slots(config, 8).expect("the engine starts")
}

#[test]
fn a_second_start_with_the_same_libraries_uses_the_cached_image() {
    let root = scratch("cache");
    let (cache, key) = (root.join("cache"), root.join("key/cache.key"));
    let first = cached_engine(&cache, &key);
    assert_eq!(first.image_origin(), ImageOrigin::Built);
    let second = cached_engine(&cache, &key);
    assert_eq!(second.image_origin(), ImageOrigin::Cached);
    assert_eq!(second.image_identity(), first.image_identity());
    assert_eq!(run(&second, "return _.sum([1, 2, twice(3)]);").return_value, json!(9));

    // A changed image file does not verify: the image is built again.
    let image = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.file_name().unwrap().to_string_lossy().starts_with("preload-"))
        .expect("the image is in the cache directory");
    let mut bytes = std::fs::read(&image).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&image, &bytes).unwrap();
    let third = cached_engine(&cache, &key);
    assert_eq!(third.image_origin(), ImageOrigin::Built);
    assert_eq!(run(&third, "return twice(5);").return_value, json!(10));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_runtime_whose_library_throws_does_not_start_and_says_which() {
    let libraries = vec![Library::new("platform/sdk.js", "var sdk = {};\nthrow new Error('no config');")];
    let mut runtime = RuntimeConfig::default();
    runtime.engine = config(libraries);
    let refused = Runtime::start(runtime).err().expect("refused");
    let StartError::Preload(error) = &refused else { panic!("not a preload error: {refused:?}") };
    assert_eq!((error.library.as_str(), error.line), ("platform/sdk.js", Some(2)), "{error:?}");
    assert!(refused.to_string().contains("no config"), "{refused}");
}

/// A library that hardens the built-ins (a frozen `Error.prototype`, a read-only `code` on
/// `Object.prototype`) changes nothing in the errors the runtime raises: a denial is still
/// `PERMISSION_DENIED`, and an extension's error still carries its code into the handler.
#[test]
fn errors_the_runtime_raises_survive_a_library_that_freezes_the_built_ins() {
    let hardening = "Object.freeze(Error.prototype);\n\
                     Object.defineProperty(Object.prototype, 'code', { value: 'frozen', writable: false });";
    let engine = Engine::with_slots(config(vec![Library::new("harden.js", hardening)]), 4).expect("starts");
    let denied = engine.execute(ExecutionRequest::source("$state.secret = 1;")).result;
    let error = denied.error.expect("denied");
    assert_eq!(error.code, nexus::ErrorCode::PermissionDenied, "{error:?}");
    assert_eq!(error.message, "permission denied: requires capability state:write:secret");

    let mut request =
        ExecutionRequest::source("try { await $ext.pay.charge(1); } catch (e) { return [e.message, e.code]; }");
    request.capabilities = vec!["ext:pay".parse().unwrap()];
    request.extension_registry.insert("pay".into(), ["charge".to_owned()].into());
    let outcome = engine.execute(request);
    let parked = outcome.parked.expect("suspended");
    let failure = ExtOutcome::Err { code: Some("DECLINED".into()), message: "card declined".into() };
    let resumed = engine.resume(parked, 1, failure).unwrap_or_else(|refused| panic!("{:?}", refused.error)).result;
    let error = resumed.error.as_ref().map(|e| e.message.clone());
    assert_eq!(resumed.status, Status::Success, "{error:?}");
    assert_eq!(resumed.return_value[0], json!("card declined"));
    assert_eq!(resumed.return_value[1], json!("DECLINED"));
}

//! TypeScript handlers: their types are stripped (never checked) and they run like JavaScript;
//! every location an execution reports (syntax errors, runtime errors, denials) is in the
//! TypeScript, from source, from the compile cache and precompiled; `nexus run` and `nexus
//! check` take a `.ts` file.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use nexus::{
    ErrorCode, ExecutionError, ExecutionRequest, ExecutionResult, ExtOutcome, Handler, Sealer, Status, SuspensionKeys,
};
use serde_json::{Value, json};

/// A TypeScript request holding `caps`, with `state` as its snapshot.
fn typescript(source: &str, caps: &[&str], state: Value) -> ExecutionRequest {
    let mut request = common::request(source, caps, state);
    request.handler = Handler::TypeScript(source.to_owned());
    request
}

fn run(source: &str, caps: &[&str], state: Value) -> ExecutionResult {
    common::execute(typescript(source, caps, state)).result
}

fn error(result: &ExecutionResult) -> &ExecutionError {
    result.error.as_ref().unwrap_or_else(|| panic!("expected an error, got {result:?}"))
}

/// The first stack frame in the handler, as `handler.ts:LINE`.
fn handler_frame(error: &ExecutionError) -> &str {
    let stack = error.stack.as_deref().expect("a stack");
    let frame = stack.lines().find(|frame| frame.contains("handler.")).unwrap_or_else(|| panic!("{stack}"));
    assert!(frame.contains("handler.ts:"), "the frame is in the TypeScript: {stack}");
    frame
}

const FEATURES: &str = r#"interface Point {
  x: number;
  y?: number;
}
type Pair<T> = [T, T];
enum Direction { Up = 1, Down }
function pair<T>(value: T): Pair<T> {
  return [value, value];
}
class Box<T> {
  constructor(private readonly value: T) {}
  get(): T { return this.value; }
}
const point = ($args as Point);
const y: number = point?.y ?? -1;
const label = ($state.label as string | undefined)?.toUpperCase();
return { pair: pair<number>(point.x), y, down: Direction.Down, name: Direction[1], label, boxed: new Box('b').get() };
"#;

#[test]
fn interfaces_aliases_generics_casts_optional_chaining_and_enums_run() {
    let mut request = typescript(FEATURES, &["state:read:label"], json!({ "label": "ok" }));
    request.args = json!({ "x": 7 });
    let result = common::execute(request).result;
    assert_eq!(result.status, Status::Success, "{:?}", result.error);
    assert_eq!(
        result.return_value,
        json!({ "pair": [7, 7], "y": -1, "down": 2, "name": "Up", "label": "OK", "boxed": "b" })
    );
}

/// Line 6 throws, after types that strip to nothing and a multi-line interface.
const THROWS_ON_LINE_6: &str = "interface Input {\n  n: number;\n}\ntype N = number;\nconst input = $args as Input;\nconst v: N = (input as any).missing.deep;\nreturn v;";

fn assert_runtime_error_on_line_6(result: &ExecutionResult) {
    let error = error(result);
    assert_eq!(error.code, ErrorCode::RuntimeError, "{error:?}");
    assert_eq!(error.location.map(|l| l.line), Some(6), "{error:?}");
    assert_eq!(error.snippet.as_deref(), Some("const v: N = (input as any).missing.deep;"));
    assert!(handler_frame(error).contains("handler.ts:6:"), "{:?}", error.stack);
}

#[test]
fn a_runtime_error_on_line_n_of_the_typescript_reports_line_n() {
    assert_runtime_error_on_line_6(&run(THROWS_ON_LINE_6, &[], Value::Null));
    // From the compile cache too (the second execution does not strip to compile).
    let cached = run(THROWS_ON_LINE_6, &[], Value::Null);
    assert!(cached.metrics.cache_hit);
    assert_runtime_error_on_line_6(&cached);
}

#[test]
fn a_thrown_error_in_a_function_reports_every_frame_in_the_typescript() {
    let source = "type Reason = string;\nfunction fail(reason: Reason): never {\n  throw new Error(reason);\n}\n\nfail('no' as Reason);";
    let result = run(source, &[], Value::Null);
    let error = error(&result);
    assert_eq!(error.location.map(|l| l.line), Some(3), "{error:?}");
    assert_eq!(error.snippet.as_deref(), Some("  throw new Error(reason);"));
    let stack = error.stack.as_deref().unwrap();
    assert!(stack.contains("handler.ts:3:") && stack.contains("handler.ts:6:"), "{stack}");
    assert!(!stack.contains("handler.js"), "{stack}");
}

#[test]
fn a_syntax_error_on_line_n_of_the_typescript_reports_line_n() {
    let result =
        run("interface A {\n  x: number;\n}\nconst a: A = { x: 1 };\nconst b: = 2;\nreturn a;", &[], Value::Null);
    let error = error(&result);
    assert_eq!(error.code, ErrorCode::SyntaxError, "{error:?}");
    assert_eq!(error.location.map(|l| l.line), Some(5), "{error:?}");
    assert_eq!(error.snippet.as_deref(), Some("const b: = 2;"));
}

#[test]
fn an_import_or_export_is_a_syntax_error_saying_a_handler_is_not_a_module() {
    let hint = "(a handler is the body of an async function, not a module: it cannot import or export; shared code \
                goes in preloaded libraries)";
    let typescript = run("const a = 1;\nimport type { T } from './t';\nreturn a;", &[], Value::Null);
    let javascript = common::execute(common::request("import { x } from './x';\nreturn x;", &[], json!({}))).result;
    let exported = common::execute(common::request("export default 1;", &[], json!({}))).result;
    for (result, line) in [(&typescript, 2), (&javascript, 1), (&exported, 1)] {
        let error = error(result);
        assert_eq!(error.code, ErrorCode::SyntaxError, "{error:?}");
        assert_eq!(error.location.map(|l| l.line), Some(line), "{error:?}");
        assert!(error.message.ends_with(hint), "{}", error.message);
    }
    // A dynamic import is an expression: no such note.
    let dynamic = common::execute(common::request("return await import('x');", &[], json!({}))).result;
    assert!(!error(&dynamic).message.contains("not a module"), "{:?}", dynamic.error);
}

#[test]
fn a_decorator_is_a_syntax_error_saying_so_in_both_languages_and_in_check() {
    let hint =
        "a decorator (decorators are not handler code: QuickJS does not run them and no transform rewrites them)";
    let source = "function dec(c: any) {\n  return c;\n}\nclass A {\n  @dec m() {}\n}\nreturn 1;";
    let javascript = source.replace(": any", "");
    let typescript = run(source, &[], Value::Null);
    let javascript = common::execute(common::request(&javascript, &[], json!({}))).result;
    for result in [&typescript, &javascript] {
        let error = error(result);
        assert_eq!(error.code, ErrorCode::SyntaxError, "{error:?}");
        assert_eq!(error.location, Some(nexus::Location { line: 5, column: 3 }), "{error:?}");
        assert!(error.message.ends_with(hint), "{}", error.message);
    }
    let inferred = nexus::infer_capabilities("@dec class A {}\nreturn 1;").unwrap_err();
    assert!(inferred.to_string().contains(hint), "{inferred}");
}

#[test]
fn a_redeclaration_is_a_syntax_error_at_the_second_declaration() {
    // A duplicate `let`, after lines of types that the stripped code no longer has.
    let source = "type A = number;\ninterface B {\n  b: A;\n}\nlet x: A = 1;\nlet x: A = 2;\nreturn x;";
    let result = run(source, &[], Value::Null);
    let error = error(&result);
    assert_eq!(error.code, ErrorCode::SyntaxError, "{error:?}");
    assert_eq!(error.location.map(|l| l.line), Some(6), "{error:?}");
    assert_eq!(error.snippet.as_deref(), Some("let x: A = 2;"));
}

#[test]
fn a_denial_is_located_in_the_typescript() {
    let source =
        "interface S {\n  secret: string;\n}\ntype K = keyof S;\nconst key: K = 'secret';\nreturn ($state as S)[key];";
    let result = run(source, &[], json!({ "secret": "s" }));
    let error = error(&result);
    assert_eq!(error.code, ErrorCode::PermissionDenied, "{error:?}");
    assert_eq!(error.location.map(|l| l.line), Some(6), "{error:?}");
    assert_eq!(error.snippet.as_deref(), Some("return ($state as S)[key];"));
    assert_eq!(result.records.denials.len(), 1);
}

#[test]
fn an_error_after_hibernation_is_still_in_the_typescript() {
    let source = "interface Row {\n  v: number;\n}\nconst row = (await $ext.kv.get('a')) as Row;\n\nthrow new Error('after ' + row.v);";
    let engine = common::engine();
    let request = common::register(typescript(source, &["ext:kv"], Value::Null), "kv", &["get"]);
    let outcome = engine.execute(request);
    let id = outcome.result.suspension.expect("suspended").id;
    let sealer = Sealer::new(SuspensionKeys::random());
    let sealed = sealer.seal(&engine.hibernate(outcome.parked.expect("parked")).unwrap().0, &id, far());
    let (_, image) = sealer.open(&sealed, &id).expect("opens");
    let parked = engine.restore(image, id).expect("restores");
    let result = engine.resume(parked, 1, ExtOutcome::Ok(json!({ "v": 1 }))).ok().expect("resumes").result;
    let error = error(&result);
    assert_eq!(error.message, "Error: after 1");
    assert_eq!(error.location.map(|l| l.line), Some(6), "{error:?}");
    assert_eq!(error.snippet.as_deref(), Some("throw new Error('after ' + row.v);"));
}

fn far() -> std::time::SystemTime {
    std::time::SystemTime::now() + Duration::from_secs(60)
}

#[test]
fn precompiled_typescript_keeps_its_source_map_with_its_bytecode() {
    let bytecode = common::engine().precompile_typescript(THROWS_ON_LINE_6).expect("compiles");
    let mut request = common::request("", &[], Value::Null);
    request.handler = Handler::Bytecode(bytecode.clone());
    assert_runtime_error_on_line_6(&common::execute(request.clone()).result);

    // A damaged map is refused, never reported in the wrong coordinates.
    let mut damaged = bytecode;
    damaged[8] = b'!';
    request.handler = Handler::Bytecode(damaged);
    let result = common::execute(request).result;
    assert_eq!(error(&result).code, ErrorCode::InvalidArgument, "{:?}", result.error);

    let refused = common::engine().precompile_typescript("const a: = 1;").unwrap_err();
    assert_eq!((refused.code, refused.location.map(|l| l.line)), (ErrorCode::SyntaxError, Some(1)));
}

#[test]
fn typescript_and_javascript_of_the_same_text_are_cached_apart() {
    // Both languages compile it, to different code: `f<b>(c)` is a generic call in
    // TypeScript and `(f < b) > c` in JavaScript. Whichever is cached first must not serve
    // the other.
    let source = "const f = (x) => 'call', b = 1, c = 2;\nreturn f<b>(c);";
    let javascript = common::execute(common::request(source, &[], Value::Null)).result;
    assert_eq!(javascript.return_value, json!(false), "{:?}", javascript.error);
    let typescript = run(source, &[], Value::Null);
    assert_eq!(typescript.return_value, json!("call"), "{:?}", typescript.error);
    assert!(!typescript.metrics.cache_hit);
    assert!(run(source, &[], Value::Null).metrics.cache_hit);
}

#[test]
fn inferred_capabilities_of_typescript_are_granted() {
    let mut config = nexus::EngineConfig::default();
    config.infer_missing_capabilities = true;
    let engine = nexus::Engine::with_slots(config, 4).unwrap();
    let mut request = typescript("const n = $state.count as number;\nreturn n + 1;", &[], json!({ "count": 1 }));
    request.timeout = Duration::from_secs(2);
    let result = engine.execute(request).result;
    assert_eq!(result.return_value, json!(2), "{:?}", result.error);
}

#[test]
fn a_typescript_source_over_the_limit_is_refused_as_javascript_is() {
    let huge = format!("return 1;{}", " ".repeat(1 << 20)); // over the documented 1 MiB
    for result in [run(&huge, &[], json!({})), common::execute(common::request(&huge, &[], json!({}))).result] {
        let error = error(&result);
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{error:?}");
        assert!(error.message.contains("at most 1048576 are accepted"), "{}", error.message);
        assert_eq!((error.location, error.snippet.as_deref()), (None, None), "nothing of the source comes back");
    }
}

#[test]
fn an_error_in_a_long_line_comes_with_the_part_of_it_around_the_column() {
    // A bundled handler: one line of ~300 KB.
    let line = format!("const a: number = 1;{}throw new Error('deep in the bundle');", " ".repeat(300_000));
    let javascript = line.replace(": number", "");
    let results = [run(&line, &[], json!({})), common::execute(common::request(&javascript, &[], json!({}))).result];
    for result in results {
        let error = error(&result);
        let location = error.location.unwrap_or_else(|| panic!("{error:?}"));
        assert!(location.line == 1 && location.column > 300_000, "{location:?}");
        let snippet = error.snippet.as_deref().unwrap();
        assert!(snippet.chars().count() <= 202, "{} characters", snippet.len());
        assert!(snippet.starts_with('…') && snippet.ends_with("throw new Error('deep in the bundle');"), "{snippet}");
    }
}

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
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn file(name: &str, source: &str) -> String {
    let dir = std::env::temp_dir().join(format!("nexus-typescript-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn nexus_run_takes_a_ts_file_and_reports_its_lines() {
    let caps = ["state:read:count", "state:write:count", "events:emit:changed", "view:update:counter-label"];
    let mut args = vec!["run", "examples/counter.ts", "--state", r#"{"count": 4}"#, "--args", r#"{"step": 2}"#];
    caps.iter().for_each(|cap| args.extend(["--cap", cap]));
    let output = nexus(&args);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let result = json_out(&output);
    assert_eq!(result["returnValue"], 6);
    assert_eq!(result["events"][0]["payload"], json!({ "value": 6, "direction": "up" }));

    let output = nexus(&["run", &file("throws.ts", THROWS_ON_LINE_6)]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(json_out(&output)["error"]["location"]["line"], 6);
}

#[test]
fn nexus_check_infers_from_typescript_with_typescript_locations() {
    let source = "interface S {\n  count: number;\n}\nconst n = ($state.count as number) + 1;\n$emit('done', n);\nconst k: string = $args.k;\nreturn $state[k];";
    let output = nexus(&["check", &file("check.ts", source)]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let result = json_out(&output);
    assert_eq!(result["capabilities"], json!(["state:read:count", "events:emit:done"]));
    assert_eq!(result["warnings"][0]["line"], 7, "{result}");

    let output = nexus(&["check", &file("broken.ts", "type A = number;\nconst a: A = ;")]);
    assert_eq!(output.status.code(), Some(1));
    let result = json_out(&output);
    assert_eq!(result["error"]["code"], "SYNTAX_ERROR");
    assert_eq!(result["error"]["location"]["line"], 2);
    assert_eq!(result["error"]["snippet"], "const a: A = ;");
}

#[test]
fn columns_count_characters_after_text_beyond_ascii_on_the_same_line() {
    // `q.abc` is character 18 of line 2 in both; the emoji are two UTF-16 units each, eight bytes
    // in all, and é two bytes.
    for (source, column) in [
        ("const q: any = null;\nconst t = \"😀😀\" + q.abc;", 18),
        ("const q: any = null;\nconst t = \"ééé\" + q.abc;", 19),
    ] {
        let result = common::execute(typescript(source, &[], Value::Null)).result;
        let location = error(&result).location.map(|l| (l.line, l.column));
        assert_eq!(location, Some((2, column)), "{source}: {:?}", result.error);
    }
}

#[test]
fn typescript_whose_javascript_is_over_the_limit_says_so() {
    // 800 KB of TypeScript; printed back with a space after each comma, 1.2 MB.
    let source = format!("const a = [{}0];\nreturn a.length;", "1,".repeat(400_000));
    let result = common::execute(typescript(&source, &[], Value::Null)).result;
    let error = error(&result);
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    assert!(error.message.contains("bytes of JavaScript once its types are stripped"), "{}", error.message);
}

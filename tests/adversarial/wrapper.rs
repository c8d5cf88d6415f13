//! The handler is the body of a function by construction: a source that closes the function it
//! is compiled in and goes on outside it is a `SYNTAX_ERROR` at the place it closes, in `run`,
//! `precompile` and the CLI, and none of it runs.

use super::*;

/// Each closes the wrapper on line 2 and would run code outside the handler at load time:
/// loop forever (a `TIMEOUT` if it ran), or end as an `INTERNAL` of its choosing.
const ESCAPES: [&str; 4] = [
    "return 1;\n}); for (;;) {} (async function () {",
    "return 1;\n}); throw Object.assign(new Error('x'), { name: 'InternalError' }); (async function () {",
    "return 1;\n}, (() => { for (;;) {} })(), {",
    "return 1;\n}), (async function () { for (;;) {} })(), (async function () {",
];

fn assert_refused_at_line_2(error: &nexus::ExecutionError, source: &str) {
    assert_eq!(error.code, ErrorCode::SyntaxError, "{source:?}: {error:?}");
    assert_eq!(error.location.map(|l| l.line), Some(2), "{source:?}: {error:?}");
    assert!(error.snippet.as_deref().is_some_and(|s| s.starts_with("})") || s.starts_with('}')), "{error:?}");
}

#[test]
fn a_source_that_closes_its_function_early_is_a_syntax_error_and_does_not_run() {
    for source in ESCAPES {
        let result = attempt(looping(source, &[]));
        let error = result.error.as_ref().unwrap_or_else(|| panic!("{source:?} ran: {result:?}"));
        assert_refused_at_line_2(error, source);
    }
}

#[test]
fn precompile_refuses_it_too() {
    for source in ESCAPES {
        let error = block_on(runtime().precompile(source)).expect_err(source);
        assert_refused_at_line_2(&error, source);
        let error = common::engine().precompile(source).expect_err(source);
        assert_refused_at_line_2(&error, source);
    }
}

#[test]
fn without_a_compile_cache_it_is_refused_the_same() {
    let mut config = nexus::EngineConfig::default();
    config.compile_cache_entries = 0;
    let engine = nexus::Engine::new(config).unwrap();
    for source in ESCAPES {
        let mut request = looping(source, &[]);
        request.timeout = Duration::from_millis(500);
        let result = engine.execute(request).result;
        assert_refused_at_line_2(result.error.as_ref().expect("refused"), source);
    }
}

#[test]
fn the_cli_refuses_it() {
    let dir = std::env::temp_dir().join(format!("nexus-wrapper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("escape.js");
    std::fs::write(&path, ESCAPES[0]).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(["run", path.to_str().unwrap(), "--timeout-ms", "500"])
        .output()
        .expect("the nexus binary runs");
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(result["error"]["code"], "SYNTAX_ERROR", "{result}");
    assert_eq!(result["error"]["location"]["line"], 2, "{result}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn closing_braces_in_strings_comments_regexes_and_templates_are_fine() {
    let source = "const s = '}); (async function () {'; // }); (\n\
                  const r = /\\}\\)/; const t = `${'})'}`; /* }) */\n\
                  return [s, r.test('})'), t];";
    assert_eq!(success(&attempt(request(source, &[]))), &json!(["}); (async function () {", true, "})"]));
}

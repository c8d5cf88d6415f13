//! The runtime's own functions stay out of reach: no call site, `caller` or `arguments` hands
//! handler code a function of the prelude (or the `$state` proxy's handlers), even from code
//! the prelude itself calls (a `toJSON` while a value is written, a getter while it is read).

use super::*;

/// Runs `probe` (an expression yielding a list of what it reached) from inside the prelude's
/// own calls: a `toJSON` run while `$state.k` is written, `$emit` and `$view.update` are
/// called, and a proxy trap run while a value crosses.
fn from_inside_the_prelude(probe: &str) -> String {
    format!(
        "const reached = [];\n\
         const spy = {{ toJSON() {{ reached.push(...({probe})); return 1; }} }};\n\
         $state.k = spy; $emit('e', spy); $view.update('c', spy);\n\
         $state.p = new Proxy({{}}, {{ ownKeys() {{ reached.push(...({probe})); return []; }} }});\n\
         return reached;"
    )
}

fn reached(probe: &str) -> Value {
    let source = from_inside_the_prelude(probe);
    let result = attempt(request(&source, &["state:write:k", "state:write:p", "events:emit:e", "view:update:c"]));
    assert!(result.error.is_none(), "{probe}: {:?}", result.error);
    result.return_value.clone()
}

#[test]
fn call_sites_give_no_functions() {
    for setup in [
        "Error.prepareStackTrace = (_, sites) => sites; const sites = new Error().stack;",
        "Error.prepareStackTrace = (_, sites) => sites; const o = {}; Error.captureStackTrace(o); const sites = o.stack;",
    ] {
        let probe = format!(
            "(() => {{ {setup} Error.prepareStackTrace = undefined;\n\
             return sites.flatMap((site) => ['getFunction', 'getThis', 'getTypeName']\n\
               .filter((m) => typeof site[m] === 'function')\n\
               .map((m) => [m, site[m]()])\n\
               .filter(([, v]) => v !== undefined && v !== null)\n\
               .map(([m, v]) => m + ':' + typeof v)); }})()"
        );
        let value = reached(&probe);
        assert_eq!(value, json!([]), "{setup}");
    }
    // The call sites themselves still describe the stack.
    let source = "Error.prepareStackTrace = (_, sites) => sites; const sites = new Error().stack;\n\
                  Error.prepareStackTrace = undefined;\n\
                  return [sites[0].getFileName(), sites[0].getLineNumber()];";
    assert_eq!(success(&attempt(request(source, &[]))), &json!(["handler.js", 1]));
}

#[test]
fn caller_and_arguments_give_no_functions() {
    let probe = "(function probe() { const out = [];\n\
                 for (const f of [probe, spy.toJSON]) {\n\
                   for (const key of ['caller', 'arguments']) {\n\
                     try { const v = f[key]; if (typeof v === 'function') out.push(key + ':' + v.name); } catch (_) {}\n\
                   }\n\
                 }\n\
                 try { const c = arguments.callee.caller; if (typeof c === 'function') out.push('callee.caller'); } catch (_) {}\n\
                 return out; })()";
    assert_eq!(reached(probe), json!([]));
}

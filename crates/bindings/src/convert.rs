//! JavaScript values to and from the runtime's JSON values.
//!
//! Going in, only JSON data is accepted, and nothing is changed silently: a function, symbol,
//! BigInt, Date, typed array, non-finite number, a built-in whose data JSON text would drop (a
//! Map, Set, RegExp, Error, Promise: `lib/json-text.js`'s `notJson`) or a value nested deeper
//! than [`MAX_DEPTH`] (a cyclic structure, for one) is refused with `INVALID_ARGUMENT` naming
//! where it is. An object with a `toJSON` method (a URL, a class of the application's), but a
//! Date or binary data, is what that method returns, as in `JSON.stringify` ([`Converter::replaced`]).
//! `undefined` object properties are left out and `undefined` array elements become `null`,
//! as `JSON.stringify` does. Plain JSON data comes as JSON text from `lib/json-text.js`; the
//! rest is walked here through N-API ([`to_json`]). Coming out, an execution result is built by
//! a JavaScript function from the JSON text of its values ([`JsResult`]); other values (the
//! statistics, inference) with napi-rs's serde serializer ([`Js`]).

use std::cell::Cell;
use std::ptr;

use napi::bindgen_prelude::{
    Buffer, JsObjectValue, KeyCollectionMode, KeyConversion, KeyFilter, Object, ToNapiValue, Unknown,
};
use napi::{Env, JsValue, ValueType, sys};
use nexus_actors::engine::ExecutionResult;
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::error::{BindingError, BindingResult};

/// Deepest nesting accepted: the engine's limit for the values of a request
/// (`lib/json-text.js` has its copy).
pub use nexus_actors::engine::MAX_NESTING as MAX_DEPTH;

/// The deepest array or object the walk takes: [`MAX_DEPTH`] levels of a request's value
/// (which the runtime checks exactly, value by value) below the objects that hold it, a
/// state value being the deepest held (`context.stateSnapshot.key`, its first level at depth 2).
/// Anything deeper (a cyclic value) is refused here, before the runtime sees it.
const WALK_LIMIT: usize = MAX_DEPTH + 1;

/// The JSON value `value` holds; `path` names it in errors (`context.args`).
///
/// Plain JSON data comes as JSON text from `lib/json-text.js` (one call into JavaScript, one
/// parse); anything else, and all of it when that text does not parse (a lone surrogate, say),
/// is walked here through N-API, which refuses what is not JSON data naming where it is.
pub fn to_json(value: &Unknown, path: &str) -> BindingResult<Value> {
    if let Some(value) = json_text(value).and_then(|text| serde_json::from_str(&text).ok()) {
        return Ok(value);
    }
    let mut converter = Converter { env: value.value().env, path: path.to_owned() };
    let value = converter.replaced(*value, Key::Name(""))?;
    converter.convert(&value, 0)
}

/// The key of a value in its holder, which `JSON.stringify` passes to its `toJSON`.
#[derive(Clone, Copy)]
enum Key<'a> {
    Name(&'a str),
    Index(u32),
}

/// Walks a JavaScript value; `path` is where it is (`context.args.list[2]`).
struct Converter {
    env: napi::sys::napi_env,
    path: String,
}

impl Converter {
    /// What `JSON.stringify` writes for `value`, the property `key` of its holder: the result of
    /// its `toJSON` method, called once on it with `key`, when it is an object that has one and
    /// is neither a Date nor binary data (refused as they are); `value` itself otherwise. The
    /// result's own `toJSON` is not called ([`Converter::convert`] calls none).
    fn replaced<'env>(&self, value: Unknown<'env>, key: Key) -> BindingResult<Unknown<'env>> {
        if value.get_type().map_err(|e| self.failed(e))? != ValueType::Object {
            return Ok(value);
        }
        // SAFETY: `cast` does not check the type: `get_type` just reported an object.
        let object: Object = unsafe { value.cast() }.map_err(|e| self.failed(e))?;
        let is = |test: napi::Result<bool>| test.unwrap_or(false);
        if is(object.is_date()) || is(object.is_typedarray()) || is(object.is_arraybuffer()) {
            return Ok(value);
        }
        let method: Unknown = object.get_named_property_unchecked("toJSON").map_err(|e| self.failed(e))?;
        if method.get_type().map_err(|e| self.failed(e))? != ValueType::Function {
            return Ok(value);
        }
        let key = match key {
            Key::Name(name) => name.to_owned(),
            Key::Index(index) => index.to_string(),
        };
        let env = self.env;
        // SAFETY: on the JavaScript thread of the live `env` (conversions run inside its N-API
        // calls); `key` is UTF-8, valid for its length during the call; `value` and `method` are
        // values of `env` in the current handle scope, and so is the result of the call.
        unsafe {
            let key = made(|out| sys::napi_create_string_utf8(env, key.as_ptr().cast(), key.len() as isize, out))
                .map_err(|e| self.failed(e))?;
            let result = made(|out| sys::napi_call_function(env, value.raw(), method.raw(), 1, &key, out))
                .map_err(|e| self.failed_as(e, "its toJSON() threw"))?;
            Ok(Unknown::from_raw_unchecked(env, result))
        }
    }

    /// `value`, at `depth` in what is converted (the top value at 0). Only arrays and objects
    /// count: a container deeper than [`WALK_LIMIT`] is refused.
    fn convert(&mut self, value: &Unknown, depth: usize) -> BindingResult<Value> {
        match value.get_type().map_err(|e| self.failed(e))? {
            ValueType::Null | ValueType::Undefined => Ok(Value::Null),
            // SAFETY: `cast` reads the value as the type given without checking it; here and in
            // the three arms below, it casts to the type `get_type` just reported for the value.
            ValueType::Boolean => Ok(Value::Bool(unsafe { value.cast::<bool>() }.map_err(|e| self.failed(e))?)),
            // SAFETY: as above, a string.
            ValueType::String => Ok(Value::String(unsafe { value.cast::<String>() }.map_err(|e| self.failed(e))?)),
            // SAFETY: as above, a number.
            ValueType::Number => self.number(unsafe { value.cast::<f64>() }.map_err(|e| self.failed(e))?),
            ValueType::Object => {
                if depth > WALK_LIMIT {
                    return Err(self.refuse(format!("nested deeper than {MAX_DEPTH} levels (a cyclic value?)")));
                }
                // SAFETY: as above, an object.
                let object: Object = unsafe { value.cast() }.map_err(|e| self.failed(e))?;
                let is = |test: napi::Result<bool>| test.unwrap_or(false);
                if is(object.is_array()) {
                    self.array(&object, depth)
                } else if is(object.is_date()) {
                    Err(self.refuse("a Date is not JSON data (pass date.toISOString())".into()))
                } else if is(object.is_typedarray()) || is(object.is_arraybuffer()) {
                    Err(self.refuse("binary data is not JSON data".into()))
                } else if let Some(why) = not_json(value) {
                    Err(self.refuse(why))
                } else {
                    self.map(&object, depth)
                }
            }
            other => Err(self.refuse(format!("a {other} is not JSON data"))),
        }
    }

    /// Safe integers stay integers; other finite numbers stay doubles.
    fn number(&self, n: f64) -> BindingResult<Value> {
        const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
        if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER && !(n == 0.0 && n.is_sign_negative()) {
            return Ok(Value::Number(Number::from(n as i64)));
        }
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| self.refuse(format!("{} is not a JSON number", javascript_number(n))))
    }

    fn array(&mut self, array: &Object, depth: usize) -> BindingResult<Value> {
        let length = array.get_array_length().map_err(|e| self.failed(e))?;
        let mut items = Vec::with_capacity(length.min(1 << 16) as usize);
        for index in 0..length {
            let mark = self.path.len();
            self.path.push_str(&format!("[{index}]"));
            let item: Unknown = array.get_element(index).map_err(|e| self.failed(e))?;
            let item = self.replaced(item, Key::Index(index))?;
            items.push(self.convert(&item, depth + 1)?);
            self.path.truncate(mark);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, object: &Object, depth: usize) -> BindingResult<Value> {
        let keys = object
            .get_all_property_names(KeyCollectionMode::OwnOnly, KeyFilter::Enumerable, KeyConversion::NumbersToStrings)
            .map_err(|e| self.failed(e))?;
        let length = keys.get_array_length().map_err(|e| self.failed(e))?;
        let mut entries = Map::new();
        for index in 0..length {
            let js_key: Unknown = keys.get_element(index).map_err(|e| self.failed(e))?;
            if js_key.get_type().map_err(|e| self.failed(e))? != ValueType::String {
                continue; // symbol keys, as JSON.stringify
            }
            // SAFETY: `cast` does not check the type: the key was just checked to be a string.
            let key = unsafe { js_key.cast::<String>() }.map_err(|e| self.failed(e))?;
            let mark = self.path.len();
            self.path.push('.');
            self.path.push_str(&key);
            let item: Unknown = object.get_property(js_key).map_err(|e| self.failed(e))?;
            let item = self.replaced(item, Key::Name(&key))?;
            if item.get_type().map_err(|e| self.failed(e))? != ValueType::Undefined {
                let item = self.convert(&item, depth + 1)?;
                entries.insert(key, item);
            }
            self.path.truncate(mark);
        }
        Ok(Value::Object(entries))
    }

    /// `INVALID_ARGUMENT` naming where the value is (shortened: a cyclic path is long).
    fn refuse(&self, message: String) -> BindingError {
        let path = match self.path.char_indices().nth(80) {
            Some((cut, _)) => format!("{}…", &self.path[..cut]),
            None => self.path.clone(),
        };
        BindingError::invalid(format!("{path}: {message}"))
    }

    /// A failed N-API call. When JavaScript threw (a getter, a Proxy trap), the exception is
    /// still pending on the environment: it is taken off and its text reported, so the caller
    /// gets a coded error instead of their own exception.
    fn failed(&self, error: napi::Error) -> BindingError {
        self.failed_as(error, "reading it threw")
    }

    /// [`Converter::failed`], saying `what` happened when JavaScript threw.
    fn failed_as(&self, error: napi::Error, what: &str) -> BindingError {
        use napi::sys;
        let mut pending = false;
        // SAFETY: `env` is the live environment of the call being converted, and this runs on
        // its JavaScript thread (conversions happen inside the N-API call); `pending` is a valid
        // place for the answer.
        unsafe { sys::napi_is_exception_pending(self.env, &mut pending) };
        if pending {
            let mut exception = std::ptr::null_mut();
            // SAFETY: as above; `exception` is a valid place for the value.
            let cleared = unsafe { sys::napi_get_and_clear_last_exception(self.env, &mut exception) };
            if cleared == sys::Status::napi_ok && !exception.is_null() {
                // SAFETY: `exception` is a live value of `env` (the call succeeded and gave a
                // non-null handle), valid in the current handle scope where `thrown` is used.
                let thrown = unsafe { Unknown::from_raw_unchecked(self.env, exception) };
                let text = thrown.coerce_to_string().and_then(|s| s.into_utf8()).and_then(|s| s.into_owned());
                return self.refuse(format!("{what} {}", text.unwrap_or_else(|_| "an exception".into())));
            }
        }
        self.refuse(error.reason)
    }
}

/// The bytes of a Buffer or Uint8Array.
pub fn to_bytes(value: &Unknown, path: &str) -> BindingResult<Vec<u8>> {
    let refuse = || BindingError::invalid(format!("{path}: expected a Buffer of bytecode from precompileHandler"));
    if value.get_type().map_err(|_| refuse())? != ValueType::Object || !value.is_typedarray().map_err(|_| refuse())? {
        return Err(refuse());
    }
    // SAFETY: `cast` does not check the type: the value was just checked to be a typed array,
    // which is what napi-rs's `Buffer` reads (`napi_get_buffer_info` takes any Uint8Array and
    // fails, as an error here, for other typed arrays).
    let buffer: Buffer = unsafe { value.cast() }.map_err(|_| refuse())?;
    Ok(buffer.to_vec())
}

/// A string argument.
pub fn to_string(value: &Unknown, path: &str) -> BindingResult<String> {
    match value.get_type() {
        // SAFETY: `cast` does not check the type: `get_type` just reported a string.
        Ok(ValueType::String) => unsafe { value.cast::<String>() }.map_err(|e| BindingError::invalid(e.reason)),
        _ => Err(BindingError::invalid(format!("{path}: expected a string"))),
    }
}

/// A JavaScript value made from a Rust one with napi-rs's serde serializer.
pub struct Js<T>(pub T);

impl<T: Serialize> ToNapiValue for Js<T> {
    unsafe fn to_napi_value(env: napi::sys::napi_env, value: Self) -> napi::Result<napi::sys::napi_value> {
        let env = Env::from_raw(env);
        env.to_js_value(&value.0).map(|value| value.raw())
    }
}

/// What a libuv task's promise resolves to (see `Infer` in `lib.rs`): an object.
impl<T> napi::bindgen_prelude::TypeName for Js<T> {
    fn type_name() -> &'static str {
        "Object"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

/// The keys of a result object, in the order serde gives them (`ExecutionResult`, its records
/// flattened), then those of its `metrics` (`ExecutionMetrics`); a test holds them to serde's.
const RESULT_KEYS: [&str; 9] =
    ["status", "returnValue", "stateMutations", "events", "viewCommands", "logs", "denials", "suspension", "error"];
const METRICS_KEYS: [&str; 5] = ["executionTimeUs", "compileTimeUs", "hostCalls", "memoryBytes", "cacheHit"];

/// An execution result as a JavaScript object, in the shape serde gives it (the README's result format).
///
/// Built by a JavaScript function returning an object literal, so that V8 gives every result
/// the literal's hidden class at once; the values in it (the return value, the records, the
/// suspension and the error) come in one JSON text that it parses with V8's `JSON.parse`.
/// napi-rs's serde serializer set every property one at a time instead, internalizing each key
/// from UTF-8 and moving the object through a map transition per property (4-5 µs of the event
/// loop's time for a trivial result, BENCHMARKS.md), and it set a `__proto__` key as the
/// object's prototype, losing it; `JSON.parse` makes it an own property, as the guest had it.
/// Integers beyond 2^53 become the nearest double, as anywhere in JavaScript.
pub struct JsResult(pub ExecutionResult);

impl ToNapiValue for JsResult {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        let ExecutionResult { status, return_value, records, suspension, error, metrics } = value.0;
        let values = (
            &return_value,
            &records.state_mutations,
            &records.events,
            &records.view_commands,
            &records.logs,
            &records.denials,
            &suspension,
            &error,
        );
        let text = serde_json::to_string(&values)
            .map_err(|e| napi::Error::from_reason(format!("writing a result as JSON: {e}")))?;
        let status = status.as_str();
        // SAFETY: napi-rs calls `to_napi_value` on the JavaScript thread of the live `env`, and
        // `out` is a valid place for the value made.
        let number = |n: u64| made(|out| unsafe { sys::napi_create_double(env, n as f64, out) });
        // SAFETY: as above; `status` and `text` are valid for the lengths given and outlive
        // the calls (the engine copies them), `status` is ASCII, so Latin-1, and `text` UTF-8.
        let args = unsafe {
            [
                made(|out| sys::napi_create_string_latin1(env, status.as_ptr().cast(), status.len() as isize, out))?,
                made(|out| sys::napi_create_string_utf8(env, text.as_ptr().cast(), text.len() as isize, out))?,
                number(metrics.execution_time_us)?,
                number(metrics.compile_time_us)?,
                number(metrics.host_calls)?,
                number(metrics.memory_bytes)?,
                made(|out| sys::napi_get_boolean(env, metrics.cache_hit, out))?,
            ]
        };
        let factory = result_factory(env)?;
        // SAFETY: as above; `factory` is a live function value of this environment, and `args`
        // holds `args.len()` values of it, made just now in the current handle scope.
        unsafe {
            let receiver = made(|out| sys::napi_get_undefined(env, out))?;
            made(|out| sys::napi_call_function(env, receiver, factory, args.len(), args.as_ptr(), out))
        }
    }
}

/// The source of the function that builds result objects from what [`JsResult`] passes: the
/// status, the JSON text of the other values of [`RESULT_KEYS`] in order, then the metrics. It
/// takes `JSON.parse` as it is when it is compiled (see [`use_json_text`]).
fn result_factory_source() -> String {
    let values = RESULT_KEYS[1..].iter().enumerate().map(|(i, key)| format!("{key:?}: values[{i}]"));
    let metrics = METRICS_KEYS.iter().enumerate().map(|(i, key)| format!("{key:?}: m{i}"));
    let parameters: Vec<String> = (0..METRICS_KEYS.len()).map(|i| format!("m{i}")).collect();
    format!(
        "((parse) => function (status, text, {}) {{ const values = parse(text); \
         return {{ {:?}: status, {}, \"metrics\": {{ {} }} }}; }})(JSON.parse)",
        parameters.join(", "),
        RESULT_KEYS[0],
        values.collect::<Vec<_>>().join(", "),
        metrics.collect::<Vec<_>>().join(", "),
    )
}

/// What this binding keeps in a JavaScript environment: strong references to its helper
/// functions, on the environment's own thread.
#[derive(Clone, Copy)]
struct Helpers {
    env: usize,
    /// The function building result objects ([`JsResult`]), once compiled.
    result_factory: Option<usize>,
    /// `lib/json-text.js`'s `jsonText`, once `lib/native.js` handed it over ([`to_json`]).
    json_text: Option<usize>,
    /// And its `notJson`.
    not_json: Option<usize>,
}

thread_local! {
    /// The helpers of the environment on this thread (Node runs one per thread).
    static HELPERS: Cell<Option<Helpers>> = const { Cell::new(None) };
}

/// The helpers of `env`, after `change` (forgotten when the environment goes away, with its
/// references).
fn helpers(env: sys::napi_env, change: impl FnOnce(&mut Helpers)) -> napi::Result<Helpers> {
    let mut helpers = match HELPERS.get() {
        Some(helpers) if helpers.env == env as usize => helpers,
        _ => {
            // SAFETY: on the JavaScript thread of the live `env` (every caller is inside an N-API
            // call of it); the hook is a plain function that ignores its (null) argument.
            checked(unsafe { sys::napi_add_env_cleanup_hook(env, Some(forget_helpers), ptr::null_mut()) })?;
            Helpers { env: env as usize, result_factory: None, json_text: None, not_json: None }
        }
    };
    change(&mut helpers);
    HELPERS.set(Some(helpers));
    Ok(helpers)
}

unsafe extern "C" fn forget_helpers(_: *mut std::ffi::c_void) {
    HELPERS.set(None);
}

/// A strong reference to `function`, kept for the environment's life.
fn keep(env: sys::napi_env, function: sys::napi_value) -> napi::Result<usize> {
    let mut reference = ptr::null_mut();
    // SAFETY: on the JavaScript thread of the live `env`, `function` a value of it in the current
    // handle scope, `reference` a valid place for the reference.
    checked(unsafe { sys::napi_create_reference(env, function, 1, &mut reference) })?;
    Ok(reference as usize)
}

/// The value behind a reference made by [`keep`] in `env`, which is still alive.
fn kept(env: sys::napi_env, reference: usize) -> napi::Result<sys::napi_value> {
    // SAFETY: on the JavaScript thread of the live `env`; the reference was made there by `keep`
    // and is only forgotten with the environment itself (`forget_helpers`).
    made(|out| unsafe { sys::napi_get_reference_value(env, reference as sys::napi_ref, out) })
}

/// The result factory of `env`, compiled the first time it is asked for there.
fn result_factory(env: sys::napi_env) -> napi::Result<sys::napi_value> {
    let reference = match helpers(env, |_| {})?.result_factory {
        Some(reference) => reference,
        None => {
            let source = result_factory_source();
            // SAFETY: on the JavaScript thread of the live `env`; `source` is UTF-8, valid for its
            // length during the call; the script is the function literal above, our own code.
            let function = unsafe {
                let script =
                    made(|out| sys::napi_create_string_utf8(env, source.as_ptr().cast(), source.len() as isize, out))?;
                made(|out| sys::napi_run_script(env, script, out))?
            };
            let reference = keep(env, function)?;
            helpers(env, |helpers| helpers.result_factory = Some(reference))?;
            reference
        }
    };
    kept(env, reference)
}

/// Takes `lib/json-text.js`'s `jsonText` and `notJson` for the conversions of `env` (see
/// [`to_json`]), and compiles the result factory now, while the package loads, so that it holds
/// the `JSON.parse` of that moment.
pub fn use_json_text(env: sys::napi_env, json_text: sys::napi_value, not_json: sys::napi_value) -> napi::Result<()> {
    let (json_text, not_json) = (keep(env, json_text)?, keep(env, not_json)?);
    helpers(env, |helpers| {
        helpers.json_text = Some(json_text);
        helpers.not_json = Some(not_json);
    })?;
    result_factory(env).map(|_| ())
}

/// The JSON text `jsonText` gives for `value`: `None` when it is not plain JSON data (or
/// `lib/native.js` did not hand the function over: then everything takes the walk).
fn json_text(value: &Unknown) -> Option<String> {
    let text = call_helper(value, |helpers| helpers.json_text)?;
    to_string(&text, "jsonText").ok()
}

/// Why `notJson` says the object `value` is not JSON data, if it does.
fn not_json(value: &Unknown) -> Option<String> {
    let why = call_helper(value, |helpers| helpers.not_json)?;
    to_string(&why, "notJson").ok()
}

/// Calls the helper `which` of `value`'s environment with `value`; `None` when it is not there
/// or it threw.
fn call_helper<'env>(value: &Unknown<'env>, which: impl FnOnce(Helpers) -> Option<usize>) -> Option<Unknown<'env>> {
    let env = value.value().env;
    let function = kept(env, which(HELPERS.get().filter(|helpers| helpers.env == env as usize)?)?).ok()?;
    // SAFETY: on the JavaScript thread of the live `env` (we are converting one of its values);
    // `function` and `value` are values of it in the current handle scope, and the call's result,
    // when it succeeds, is a live value of it too.
    unsafe {
        let receiver = made(|out| sys::napi_get_undefined(env, out)).ok()?;
        let result = made(|out| sys::napi_call_function(env, receiver, function, 1, &value.raw(), out)).ok()?;
        Some(Unknown::from_raw_unchecked(env, result))
    }
}

fn checked(status: sys::napi_status) -> napi::Result<()> {
    match status {
        sys::Status::napi_ok => Ok(()),
        status => Err(napi::Error::from_reason(format!("an N-API call failed (napi status {status})"))),
    }
}

/// Runs an N-API call that makes one value.
fn made(napi: impl FnOnce(*mut sys::napi_value) -> sys::napi_status) -> napi::Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    checked(napi(&mut out)).map(|()| out)
}

/// `n` as JavaScript prints it where Rust would not: `Infinity`, not `inf`.
pub(crate) fn javascript_number(n: f64) -> String {
    match n {
        f64::INFINITY => "Infinity".into(),
        f64::NEG_INFINITY => "-Infinity".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use nexus_abi::ErrorCode;
    use nexus_actors::engine::{ExecutionError, ExecutionResult};
    use serde_json::Value;

    use super::{METRICS_KEYS, RESULT_KEYS, result_factory_source};

    #[test]
    fn a_result_object_has_the_keys_serde_gives_a_result_in_the_same_order() {
        let Value::Object(result) =
            serde_json::to_value(ExecutionResult::failed(ExecutionError::new(ErrorCode::Internal, "x"))).unwrap()
        else {
            panic!("a result serializes to an object");
        };
        let keys: Vec<&str> = result.keys().map(String::as_str).collect();
        assert_eq!(keys, [&RESULT_KEYS[..], &["metrics"]].concat());
        let metrics: Vec<&str> = result["metrics"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(metrics, METRICS_KEYS);
        assert_eq!(
            result_factory_source(),
            "((parse) => function (status, text, m0, m1, m2, m3, m4) { const values = parse(text); return { \
             \"status\": status, \"returnValue\": values[0], \"stateMutations\": values[1], \"events\": values[2], \
             \"viewCommands\": values[3], \"logs\": values[4], \"denials\": values[5], \"suspension\": values[6], \
             \"error\": values[7], \"metrics\": { \"executionTimeUs\": m0, \"compileTimeUs\": m1, \"hostCalls\": m2, \
             \"memoryBytes\": m3, \"cacheHit\": m4 } }; })(JSON.parse)"
        );
    }
}

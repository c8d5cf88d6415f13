//! JavaScript values to and from the runtime's JSON values, directly through N-API (no JSON
//! text in between).
//!
//! Going in, only JSON data is accepted, and nothing is changed silently: a function, symbol,
//! BigInt, Date, typed array, non-finite number or a value nested deeper than [`MAX_DEPTH`]
//! (a cyclic structure, for one) is refused with `INVALID_ARGUMENT` naming where it is.
//! `undefined` object properties are left out and `undefined` array elements become `null`,
//! as `JSON.stringify` does. Coming out, values are built with napi-rs's serde serializer, and
//! an execution result's own object through a JavaScript function (see [`JsResult`]).

use std::cell::Cell;
use std::ptr;

use napi::bindgen_prelude::{
    Buffer, JsObjectValue, KeyCollectionMode, KeyConversion, KeyFilter, Object, ToNapiValue, Unknown,
};
use napi::{Env, JsValue, ValueType, sys};
use nexus_actors::engine::ExecutionResult;
use nexus_host_fns::records::StateMutation;
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::error::{BindingError, BindingResult};

/// Deepest nesting accepted, as the guest's own JSON limit.
pub const MAX_DEPTH: usize = 128;

/// The JSON value `value` holds; `path` names it in errors (`context.args`).
pub fn to_json(value: &Unknown, path: &str) -> BindingResult<Value> {
    Converter { env: value.value().env, path: path.to_owned() }.convert(value, 0)
}

/// Walks a JavaScript value; `path` is where it is (`context.args.list[2]`).
struct Converter {
    env: napi::sys::napi_env,
    path: String,
}

impl Converter {
    fn convert(&mut self, value: &Unknown, depth: usize) -> BindingResult<Value> {
        if depth > MAX_DEPTH {
            return Err(self.refuse(format!("nested deeper than {MAX_DEPTH} levels (a cyclic value?)")));
        }
        match value.get_type().map_err(|e| self.failed(e))? {
            ValueType::Null | ValueType::Undefined => Ok(Value::Null),
            ValueType::Boolean => Ok(Value::Bool(unsafe { value.cast::<bool>() }.map_err(|e| self.failed(e))?)),
            ValueType::String => Ok(Value::String(unsafe { value.cast::<String>() }.map_err(|e| self.failed(e))?)),
            ValueType::Number => self.number(unsafe { value.cast::<f64>() }.map_err(|e| self.failed(e))?),
            ValueType::Object => {
                let object: Object = unsafe { value.cast() }.map_err(|e| self.failed(e))?;
                let is = |test: napi::Result<bool>| test.unwrap_or(false);
                if is(object.is_array()) {
                    self.array(&object, depth)
                } else if is(object.is_date()) {
                    Err(self.refuse("a Date is not JSON data (pass date.toISOString())".into()))
                } else if is(object.is_typedarray()) || is(object.is_arraybuffer()) {
                    Err(self.refuse("binary data is not JSON data".into()))
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
        Number::from_f64(n).map(Value::Number).ok_or_else(|| self.refuse(format!("{n} is not a JSON number")))
    }

    fn array(&mut self, array: &Object, depth: usize) -> BindingResult<Value> {
        let length = array.get_array_length().map_err(|e| self.failed(e))?;
        let mut items = Vec::with_capacity(length.min(1 << 16) as usize);
        for index in 0..length {
            let mark = self.path.len();
            self.path.push_str(&format!("[{index}]"));
            let item: Unknown = array.get_element(index).map_err(|e| self.failed(e))?;
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
            let key = unsafe { js_key.cast::<String>() }.map_err(|e| self.failed(e))?;
            let mark = self.path.len();
            self.path.push('.');
            self.path.push_str(&key);
            let item: Unknown = object.get_property(js_key).map_err(|e| self.failed(e))?;
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
        use napi::sys;
        let mut pending = false;
        // SAFETY: `env` is the environment of the call being converted, on its own thread.
        unsafe { sys::napi_is_exception_pending(self.env, &mut pending) };
        if pending {
            let mut exception = std::ptr::null_mut();
            // SAFETY: as above.
            let cleared = unsafe { sys::napi_get_and_clear_last_exception(self.env, &mut exception) };
            if cleared == sys::Status::napi_ok && !exception.is_null() {
                let thrown = unsafe { Unknown::from_raw_unchecked(self.env, exception) };
                let text = thrown.coerce_to_string().and_then(|s| s.into_utf8()).and_then(|s| s.into_owned());
                return self.refuse(format!("reading it threw {}", text.unwrap_or_else(|_| "an exception".into())));
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
    let buffer: Buffer = unsafe { value.cast() }.map_err(|_| refuse())?;
    Ok(buffer.to_vec())
}

/// A string argument.
pub fn to_string(value: &Unknown, path: &str) -> BindingResult<String> {
    match value.get_type() {
        Ok(ValueType::String) => unsafe { value.cast::<String>() }.map_err(|e| BindingError::invalid(e.reason)),
        _ => Err(BindingError::invalid(format!("{path}: expected a string"))),
    }
}

/// Makes every number of the result's values come out as a JavaScript number: napi-rs turns a
/// non-negative integer above `u32::MAX` (as serde_json stores `Date.now()`, say) into a BigInt.
pub fn js_numbers(result: &mut ExecutionResult) {
    fn walk(value: &mut Value) {
        match value {
            Value::Number(n) if n.as_u64().is_some_and(|n| n > u64::from(u32::MAX)) => {
                if let Some(double) = n.as_f64().and_then(Number::from_f64) {
                    *n = double;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(entries) => entries.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut result.return_value);
    let records = &mut result.records;
    for mutation in &mut records.state_mutations {
        if let StateMutation::Set { value, .. } = mutation {
            walk(value);
        }
    }
    records.events.iter_mut().for_each(|event| walk(&mut event.payload));
    records.view_commands.iter_mut().for_each(|command| walk(&mut command.args));
    for call in result.suspension.iter_mut().flat_map(|suspension| suspension.calls.iter_mut()) {
        call.args.iter_mut().for_each(walk);
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

/// The keys of a result object, in the order serde gives them (`ExecutionResult`, its records
/// flattened), then those of its `metrics` (`ExecutionMetrics`); a test holds them to serde's.
const RESULT_KEYS: [&str; 9] =
    ["status", "returnValue", "stateMutations", "events", "viewCommands", "logs", "denials", "suspension", "error"];
const METRICS_KEYS: [&str; 5] = ["executionTimeUs", "compileTimeUs", "hostCalls", "memoryBytes", "cacheHit"];

/// An execution result as a JavaScript object, in the shape serde gives it (SPEC section 5).
///
/// Built by a JavaScript function returning an object literal, called with the values: V8 gives
/// every result the literal's hidden class at once. napi-rs's serializer set the 14 properties
/// one at a time instead, internalizing each key from UTF-8 and moving the object through a map
/// transition per property (4-5 µs of the event loop's time per execution, BENCHMARKS.md).
/// The values themselves (a return value, records) still go through the serializer.
pub struct JsResult(pub ExecutionResult);

impl ToNapiValue for JsResult {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        // SAFETY (every N-API call below): on the JavaScript thread of `env`, where values are
        // converted.
        let ExecutionResult { status, return_value, records, suspension, error, metrics } = value.0;
        let number = |n: u64| made(|out| unsafe { sys::napi_create_double(env, n as f64, out) });
        let status = status.as_str();
        let args = [
            made(|out| unsafe {
                sys::napi_create_string_latin1(env, status.as_ptr().cast(), status.len() as isize, out)
            })?,
            data(env, &return_value)?,
            list(env, &records.state_mutations)?,
            list(env, &records.events)?,
            list(env, &records.view_commands)?,
            list(env, &records.logs)?,
            list(env, &records.denials)?,
            nullable(env, suspension.as_ref())?,
            nullable(env, error.as_ref())?,
            number(metrics.execution_time_us)?,
            number(metrics.compile_time_us)?,
            number(metrics.host_calls)?,
            number(metrics.memory_bytes)?,
            made(|out| unsafe { sys::napi_get_boolean(env, metrics.cache_hit, out) })?,
        ];
        let factory = result_factory(env)?;
        let receiver = made(|out| unsafe { sys::napi_get_undefined(env, out) })?;
        made(|out| unsafe { sys::napi_call_function(env, receiver, factory, args.len(), args.as_ptr(), out) })
    }
}

/// A value through napi-rs's serde serializer.
fn data<T: Serialize>(env: sys::napi_env, value: &T) -> napi::Result<sys::napi_value> {
    Env::from_raw(env).to_js_value(value).map(|value| value.raw())
}

/// A list of records; most results have none of most kinds.
fn list<T: Serialize>(env: sys::napi_env, items: &[T]) -> napi::Result<sys::napi_value> {
    match items.is_empty() {
        // SAFETY: on the JavaScript thread of `env`, as every conversion.
        true => made(|out| unsafe { sys::napi_create_array(env, out) }),
        false => data(env, &items),
    }
}

fn nullable<T: Serialize>(env: sys::napi_env, item: Option<&T>) -> napi::Result<sys::napi_value> {
    match item {
        Some(item) => data(env, item),
        // SAFETY: on the JavaScript thread of `env`, as every conversion.
        None => made(|out| unsafe { sys::napi_get_null(env, out) }),
    }
}

/// The source of the function that builds result objects: its parameters in the order
/// [`JsResult`] passes the values, its literal with the keys in serde's order.
fn result_factory_source() -> String {
    let keys = RESULT_KEYS.iter().chain(&METRICS_KEYS);
    let parameters: Vec<String> = (0..RESULT_KEYS.len() + METRICS_KEYS.len()).map(|i| format!("v{i}")).collect();
    let fields = |range: std::ops::Range<usize>| {
        keys.clone()
            .zip(&parameters)
            .skip(range.start)
            .take(range.len())
            .map(|(k, v)| format!("{k:?}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "(function ({}) {{ return {{ {}, \"metrics\": {{ {} }} }}; }})",
        parameters.join(", "),
        fields(0..RESULT_KEYS.len()),
        fields(RESULT_KEYS.len()..RESULT_KEYS.len() + METRICS_KEYS.len()),
    )
}

thread_local! {
    /// This JavaScript thread's result factory (a strong reference), and its environment.
    static RESULT_FACTORY: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// The result factory of `env`, compiled the first time a result is built on its thread and
/// forgotten when the environment goes away.
fn result_factory(env: sys::napi_env) -> napi::Result<sys::napi_value> {
    let reference = match RESULT_FACTORY.get() {
        Some((owner, reference)) if owner == env as usize => reference as sys::napi_ref,
        _ => {
            let source = result_factory_source();
            let mut reference = ptr::null_mut();
            // SAFETY: on the JavaScript thread of `env`; the script is the function literal above.
            unsafe {
                let script =
                    made(|out| sys::napi_create_string_utf8(env, source.as_ptr().cast(), source.len() as isize, out))?;
                let function = made(|out| sys::napi_run_script(env, script, out))?;
                checked(sys::napi_create_reference(env, function, 1, &mut reference))?;
                checked(sys::napi_add_env_cleanup_hook(env, Some(forget_result_factory), ptr::null_mut()))?;
            }
            RESULT_FACTORY.set(Some((env as usize, reference as usize)));
            reference
        }
    };
    // SAFETY: a strong reference made in this environment, which is still alive.
    made(|out| unsafe { sys::napi_get_reference_value(env, reference, out) })
}

/// The environment of this thread's result factory is being torn down (with its references).
unsafe extern "C" fn forget_result_factory(_: *mut std::ffi::c_void) {
    RESULT_FACTORY.set(None);
}

fn checked(status: sys::napi_status) -> napi::Result<()> {
    match status {
        sys::Status::napi_ok => Ok(()),
        status => Err(napi::Error::from_reason(format!("building a result object failed (napi status {status})"))),
    }
}

/// Runs an N-API call that makes one value.
fn made(napi: impl FnOnce(*mut sys::napi_value) -> sys::napi_status) -> napi::Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    checked(napi(&mut out)).map(|()| out)
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
            "(function (v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13) { return { \"status\": v0, \
             \"returnValue\": v1, \"stateMutations\": v2, \"events\": v3, \"viewCommands\": v4, \"logs\": v5, \
             \"denials\": v6, \"suspension\": v7, \"error\": v8, \"metrics\": { \"executionTimeUs\": v9, \
             \"compileTimeUs\": v10, \"hostCalls\": v11, \"memoryBytes\": v12, \"cacheHit\": v13 } }; })"
        );
    }
}

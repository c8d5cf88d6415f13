//! JavaScript values to and from the runtime's JSON values, directly through N-API (no JSON
//! text in between).
//!
//! Going in, only JSON data is accepted, and nothing is changed silently: a function, symbol,
//! BigInt, Date, typed array, non-finite number or a value nested deeper than [`MAX_DEPTH`]
//! (a cyclic structure, for one) is refused with `INVALID_ARGUMENT` naming where it is.
//! `undefined` object properties are left out and `undefined` array elements become `null`,
//! as `JSON.stringify` does. Coming out, values are built with napi-rs's serde serializer.

use napi::bindgen_prelude::{
    Buffer, JsObjectValue, KeyCollectionMode, KeyConversion, KeyFilter, Object, ToNapiValue, Unknown,
};
use napi::{Env, JsValue, ValueType};
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

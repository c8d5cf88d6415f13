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
    convert(value, &mut path.to_owned(), 0)
}

fn convert(value: &Unknown, path: &mut String, depth: usize) -> BindingResult<Value> {
    if depth > MAX_DEPTH {
        let shown = match path.char_indices().nth(80) {
            Some((cut, _)) => format!("{}…", &path[..cut]),
            None => path.clone(),
        };
        return Err(BindingError::invalid(format!("{shown}: nested deeper than {MAX_DEPTH} levels (a cyclic value?)")));
    }
    let napi = |e: napi::Error| BindingError::invalid(format!("{path}: {}", e.reason));
    match value.get_type().map_err(napi)? {
        ValueType::Null | ValueType::Undefined => Ok(Value::Null),
        ValueType::Boolean => Ok(Value::Bool(unsafe { value.cast::<bool>() }.map_err(napi)?)),
        ValueType::String => Ok(Value::String(unsafe { value.cast::<String>() }.map_err(napi)?)),
        ValueType::Number => number(unsafe { value.cast::<f64>() }.map_err(napi)?, path),
        ValueType::Object => {
            let object: Object = unsafe { value.cast() }.map_err(napi)?;
            if object.is_array().map_err(napi)? {
                array(&object, path, depth)
            } else if object.is_date().map_err(napi)? {
                Err(BindingError::invalid(format!("{path}: a Date is not JSON data (pass date.toISOString())")))
            } else if object.is_typedarray().map_err(napi)? || object.is_arraybuffer().map_err(napi)? {
                Err(BindingError::invalid(format!("{path}: binary data is not JSON data")))
            } else {
                map(&object, path, depth)
            }
        }
        other => Err(BindingError::invalid(format!("{path}: a {other} is not JSON data"))),
    }
}

/// Safe integers stay integers; other finite numbers stay doubles.
fn number(n: f64, path: &str) -> BindingResult<Value> {
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER && !(n == 0.0 && n.is_sign_negative()) {
        return Ok(Value::Number(Number::from(n as i64)));
    }
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| BindingError::invalid(format!("{path}: {n} is not a JSON number")))
}

fn array(array: &Object, path: &mut String, depth: usize) -> BindingResult<Value> {
    let length = array.get_array_length().map_err(|e| BindingError::invalid(e.reason))?;
    let mut items = Vec::with_capacity(length as usize);
    for index in 0..length {
        let item: Unknown =
            array.get_element(index).map_err(|e| BindingError::invalid(format!("{path}[{index}]: {}", e.reason)))?;
        let mark = path.len();
        path.push_str(&format!("[{index}]"));
        items.push(convert(&item, path, depth + 1)?);
        path.truncate(mark);
    }
    Ok(Value::Array(items))
}

fn map(object: &Object, path: &mut String, depth: usize) -> BindingResult<Value> {
    let napi = |e: napi::Error| BindingError::invalid(e.reason);
    let keys = object
        .get_all_property_names(KeyCollectionMode::OwnOnly, KeyFilter::Enumerable, KeyConversion::NumbersToStrings)
        .map_err(napi)?;
    let length = keys.get_array_length().map_err(napi)?;
    let mut entries = Map::new();
    for index in 0..length {
        let key: Unknown = keys.get_element(index).map_err(napi)?;
        if key.get_type().map_err(napi)? != ValueType::String {
            continue; // symbol keys, as JSON.stringify
        }
        let key = unsafe { key.cast::<String>() }.map_err(napi)?;
        let item: Unknown = object.get_named_property(&key).map_err(napi)?;
        if item.get_type().map_err(napi)? == ValueType::Undefined {
            continue;
        }
        let mark = path.len();
        path.push('.');
        path.push_str(&key);
        let item = convert(&item, path, depth + 1)?;
        path.truncate(mark);
        entries.insert(key, item);
    }
    Ok(Value::Object(entries))
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

//! JavaScript values to JSON values and back, as `JSON.stringify` (then `serde_json`) and
//! `JSON.parse` would make them, without JSON text in between.
//!
//! Going through text cost a host call most of its time: `JSON.stringify` builds a string, an
//! array of keys per object and a string per array index, and `serde_json` parses it all back.
//! [`to_json`] walks the value instead, step for step as quickjs-ng's `JSON.stringify` does
//! (`js_json_check` and `js_json_to_str`): the same `toJSON` calls with the same keys, the same
//! getters and proxy traps in the same order, the same unwrapping of boxed primitives and raw
//! JSON, the same `TypeError`s. The tests hold it to `JSON.stringify` value by value.

use std::cell::{Cell, RefCell};

use nexus_abi::Value as Json;
use rquickjs::{Ctx, Exception, Function, Object, Persistent, Value, function::This, qjs};

/// `serde_json`'s nesting limit, which values have had since they crossed as text: a 128th
/// level of arrays and objects is a `TypeError`.
const MAX_DEPTH: usize = 127;

/// The class ids of the objects `JSON.stringify` treats apart, read at pre-initialization from
/// objects of each class (QuickJS keeps its class enumeration private).
#[derive(Clone, Copy, Default)]
struct Classes {
    string: u32,
    number: u32,
    boolean: u32,
    big_int: u32,
    raw_json: u32,
}

thread_local! {
    static CLASSES: Cell<Classes> = Cell::new(Classes::default());
    /// The intrinsic `Boolean.prototype.valueOf`, the only way to a boxed boolean's value, taken
    /// before any handler could replace it.
    static BOOLEAN_VALUE_OF: RefCell<Option<Persistent<Function<'static>>>> = const { RefCell::new(None) };
}

/// Records the class ids and intrinsics [`to_json`] needs; called once at pre-initialization.
pub fn initialize(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    let samples: rquickjs::Array = ctx.eval("[Object(''), Object(0), Object(false), Object(0n), JSON.rawJSON('0')]")?;
    let class = |index: usize| -> rquickjs::Result<u32> {
        let sample: Value = samples.get(index)?;
        // SAFETY: reads the class id of a live value.
        Ok(unsafe { qjs::JS_GetClassID(sample.as_raw()) })
    };
    CLASSES.set(Classes {
        string: class(0)?,
        number: class(1)?,
        boolean: class(2)?,
        big_int: class(3)?,
        raw_json: class(4)?,
    });
    let value_of: Function = ctx.eval("Boolean.prototype.valueOf")?;
    BOOLEAN_VALUE_OF.set(Some(Persistent::save(ctx, value_of)));
    Ok(())
}

/// A JavaScript value as a JSON value, with `JSON.stringify` semantics (`toJSON`, dropped
/// functions, a `TypeError` for cycles); `undefined` becomes `null`. A lone UTF-16 surrogate (a
/// string cut in the middle of an emoji, say) has no UTF-8 form: it becomes U+FFFD, as
/// `String.prototype.toWellFormed` would make it, rather than failing the whole value.
pub fn to_json<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> rquickjs::Result<Json> {
    let mut walk = Walk { ctx, classes: CLASSES.get(), stack: Vec::new() };
    Ok(walk.property(value, Key::Top)?.unwrap_or(Json::Null))
}

/// A JSON value as a fresh JavaScript value, built as `JSON.parse` builds it: plain objects and
/// arrays whose members are defined as own data properties (no setter a handler put on a
/// prototype runs, and a `__proto__` key stays a key).
pub fn from_json<'js>(ctx: &Ctx<'js>, value: &Json) -> rquickjs::Result<Value<'js>> {
    build(ctx, value, false)
}

/// [`from_json`], every object and array in it frozen as it is made (as `Object.freeze` would
/// freeze it): what the prelude's `deepFreeze` of a handler's `$args` and `$scope` then finds
/// frozen already, without walking it in JavaScript (~0.5 µs a property).
pub fn frozen_from_json<'js>(ctx: &Ctx<'js>, value: &Json) -> rquickjs::Result<Value<'js>> {
    build(ctx, value, true)
}

fn build<'js>(ctx: &Ctx<'js>, value: &Json, frozen: bool) -> rquickjs::Result<Value<'js>> {
    let made = match value {
        Json::Null => Value::new_null(ctx.clone()),
        Json::Bool(bool) => Value::new_bool(ctx.clone(), *bool),
        Json::Number(number) => match number.as_i64().and_then(|int| i32::try_from(int).ok()) {
            Some(int) => Value::new_int(ctx.clone(), int),
            // `as_f64` is `None` only with serde_json's `arbitrary_precision`, which is off.
            None => Value::new_float(ctx.clone(), number.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(string) => rquickjs::String::from_str(ctx.clone(), string)?.into_value(),
        Json::Array(items) => {
            let array = rquickjs::Array::new(ctx.clone())?.into_value();
            for (index, item) in items.iter().enumerate() {
                let index = u32::try_from(index).map_err(|_| out_of_memory(ctx))?;
                let item = build(ctx, item, frozen)?;
                // SAFETY: defines an element of a live array; the call takes the new reference.
                define(unsafe {
                    qjs::JS_DefinePropertyValueUint32(
                        ctx.as_raw().as_ptr(),
                        array.as_raw(),
                        index,
                        qjs::JS_DupValue(ctx.as_raw().as_ptr(), item.as_raw()),
                        qjs::JS_PROP_C_W_E as i32,
                    )
                })?;
            }
            array
        }
        Json::Object(members) => {
            let object = Object::new(ctx.clone())?.into_value();
            for (name, member) in members {
                let member = build(ctx, member, frozen)?;
                let raw_ctx = ctx.as_raw().as_ptr();
                // SAFETY: an atom for the name (any bytes, NULs included), freed after use.
                let atom = unsafe { qjs::JS_NewAtomLen(raw_ctx, name.as_ptr().cast(), name.len() as _) };
                if atom == qjs::JS_ATOM_NULL {
                    return Err(rquickjs::Error::Exception);
                }
                // SAFETY: defines a property of a live object; the call takes the new reference.
                let defined = unsafe {
                    qjs::JS_DefinePropertyValue(
                        raw_ctx,
                        object.as_raw(),
                        atom,
                        qjs::JS_DupValue(raw_ctx, member.as_raw()),
                        qjs::JS_PROP_C_W_E as i32,
                    )
                };
                // SAFETY: the atom made above, no longer used.
                unsafe { qjs::JS_FreeAtom(raw_ctx, atom) };
                define(defined)?;
            }
            object
        }
    };
    if frozen && made.is_object() {
        // SAFETY: freezes a live object made above, which nothing else has seen yet.
        define(unsafe { qjs::JS_FreezeObject(ctx.as_raw().as_ptr(), made.as_raw()) })?;
    }
    Ok(made)
}

/// The result of a `JS_DefineProperty*` call: an error is a pending exception.
fn define(status: i32) -> rquickjs::Result<()> {
    if status < 0 { Err(rquickjs::Error::Exception) } else { Ok(()) }
}

/// The key a value is found under, the argument of its `toJSON`.
#[derive(Clone, Copy)]
enum Key {
    Top,
    Index(i64),
    Name(qjs::JSAtom),
}

struct Walk<'a, 'js> {
    ctx: &'a Ctx<'js>,
    classes: Classes,
    /// The objects being serialized, outermost first: a cycle, and the nesting limit.
    stack: Vec<*mut qjs::JSObject>,
}

impl<'js> Walk<'_, 'js> {
    fn raw(&self) -> *mut qjs::JSContext {
        self.ctx.as_raw().as_ptr()
    }

    /// Takes ownership of a value a QuickJS call returned, or its pending exception.
    fn owned(&self, raw: qjs::JSValue) -> rquickjs::Result<Value<'js>> {
        // SAFETY: `raw` is a new reference from this context (or the exception marker).
        let value = unsafe { Value::from_raw(self.ctx.clone(), raw) };
        if value.is_exception() { Err(rquickjs::Error::Exception) } else { Ok(value) }
    }

    /// `js_json_check`, then `js_json_to_str`: `None` where `JSON.stringify` writes nothing
    /// (`undefined`, functions, symbols), which an array writes as `null`.
    fn property(&mut self, value: Value<'js>, key: Key) -> rquickjs::Result<Option<Json>> {
        let value = if value.is_object() || value.is_big_int() { self.call_to_json(value, key)? } else { value };
        self.serialize(value)
    }

    fn call_to_json(&self, value: Value<'js>, key: Key) -> rquickjs::Result<Value<'js>> {
        let to_json = qjs::JS_ATOM_toJSON as qjs::JSAtom;
        // SAFETY: a property read on a live value (a BigInt's goes to its prototype); `owned`
        // takes the result.
        let method = self.owned(unsafe { qjs::JS_GetProperty(self.raw(), value.as_raw(), to_json) })?;
        match method.into_function() {
            Some(method) => method.call((This(value), self.key(key)?)),
            None => Ok(value),
        }
    }

    fn key(&self, key: Key) -> rquickjs::Result<Value<'js>> {
        match key {
            Key::Top => Ok(rquickjs::String::from_str(self.ctx.clone(), "")?.into_value()),
            Key::Index(index) => Ok(rquickjs::String::from_str(self.ctx.clone(), &index.to_string())?.into_value()),
            // SAFETY: the atom is alive while the walk lists its object's keys.
            Key::Name(atom) => self.owned(unsafe { qjs::JS_AtomToString(self.raw(), atom) }),
        }
    }

    fn serialize(&mut self, value: Value<'js>) -> rquickjs::Result<Option<Json>> {
        if let Some(int) = value.as_int() {
            Ok(Some(Json::from(int)))
        } else if let Some(float) = value.as_float() {
            Ok(Some(number(float)))
        } else if let Some(string) = value.as_string() {
            string_to_json(self.ctx, string).map(|string| Some(Json::String(string)))
        } else if let Some(bool) = value.as_bool() {
            Ok(Some(Json::Bool(bool)))
        } else if value.is_null() {
            Ok(Some(Json::Null))
        } else if value.is_big_int() {
            Err(Exception::throw_type(self.ctx, "BigInt are forbidden in JSON.stringify"))
        } else if value.is_object() && !value.is_function() {
            self.object(value)
        } else {
            Ok(None)
        }
    }

    fn object(&mut self, value: Value<'js>) -> rquickjs::Result<Option<Json>> {
        let raw = value.as_raw();
        // SAFETY: reads the class id of a live object.
        let class = unsafe { qjs::JS_GetClassID(raw) };
        let classes = self.classes;
        // Boxed primitives and raw JSON stand for their value.
        if class == classes.string {
            // SAFETY: conversions of a live value; `owned` takes the result.
            return self.serialize(self.owned(unsafe { qjs::JS_ToString(self.raw(), raw) })?);
        } else if class == classes.number {
            // SAFETY: as above.
            return self.serialize(self.owned(unsafe { qjs::JS_ToNumber(self.raw(), raw) })?);
        } else if class == classes.boolean {
            let value_of = BOOLEAN_VALUE_OF.with_borrow(|f| f.clone().map(|f| f.restore(self.ctx)).transpose())?;
            let value_of = value_of.ok_or_else(|| Exception::throw_internal(self.ctx, "guest not initialized"))?;
            return self.serialize(value_of.call((This(value),))?);
        } else if class == classes.big_int {
            return Err(Exception::throw_type(self.ctx, "BigInt are forbidden in JSON.stringify"));
        } else if class == classes.raw_json {
            // A frozen object whose `rawJSON` is the JSON text of a primitive: it crosses as the
            // value that text reads as, under the rules of every other value (`-0` as `0`, a
            // number past the doubles as `null`, a lone surrogate as U+FFFD).
            let text: rquickjs::String = value.get::<Object>()?.get("rawJSON")?;
            let text = string_to_json(self.ctx, &text)?;
            return self.serialize(self.ctx.json_parse(text)?);
        }
        // SAFETY: an object's value holds the pointer to its `JSObject`, only compared here.
        let pointer = unsafe { qjs::JS_VALUE_GET_PTR(raw) }.cast::<qjs::JSObject>();
        if self.stack.contains(&pointer) {
            return Err(Exception::throw_type(self.ctx, "circular reference"));
        }
        if self.stack.len() == MAX_DEPTH {
            return Err(Exception::throw_type(self.ctx, "value is not serializable: recursion limit exceeded"));
        }
        self.stack.push(pointer);
        let json = if self.is_array(&value)? { self.array(&value) } else { self.members(&value) };
        self.stack.pop();
        json.map(Some)
    }

    /// `Array.isArray`: a proxy is an array if its target is (a revoked one is a `TypeError`).
    fn is_array(&self, value: &Value<'js>) -> rquickjs::Result<bool> {
        let mut value = value.clone();
        // SAFETY: type tests and a proxy's target on live values; `owned` takes the target.
        unsafe {
            while qjs::JS_IsProxy(value.as_raw()) {
                value = self.owned(qjs::JS_GetProxyTarget(self.raw(), value.as_raw()))?;
            }
            Ok(qjs::JS_IsArray(value.as_raw()))
        }
    }

    fn array(&mut self, array: &Value<'js>) -> rquickjs::Result<Json> {
        let mut length = 0_i64;
        // SAFETY: reads `length` of a live object (through its getter or proxy trap if any).
        if unsafe { qjs::JS_GetLength(self.raw(), array.as_raw(), &mut length) } < 0 {
            return Err(rquickjs::Error::Exception);
        }
        let mut items = Vec::new();
        for index in 0..length {
            // SAFETY: an element read on a live object; `owned` takes the result.
            let item = self.owned(unsafe { qjs::JS_GetPropertyInt64(self.raw(), array.as_raw(), index) })?;
            let item = self.property(item, Key::Index(index))?.unwrap_or(Json::Null);
            items.try_reserve(1).map_err(|_| out_of_memory(self.ctx))?;
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    /// An object's enumerable own string-keyed properties, listed as `Object.keys` lists them.
    fn members(&mut self, object: &Value<'js>) -> rquickjs::Result<Json> {
        let keys = Keys::of(self.ctx, object)?;
        let mut members = serde_json::Map::new();
        for &atom in &keys.atoms {
            // SAFETY: a property read on a live object; `owned` takes the result.
            let member = self.owned(unsafe { qjs::JS_GetProperty(self.raw(), object.as_raw(), atom) })?;
            if let Some(member) = self.property(member, Key::Name(atom))? {
                let name = self.key(Key::Name(atom))?;
                let name = name.as_string().map(|name| string_to_json(self.ctx, name)).transpose()?.unwrap_or_default();
                if members.contains_key(&name) {
                    // Two keys that differ in lone surrogates only, both now U+FFFD.
                    let message = format!(
                        "value is not serializable: two keys of an object become {name:?} once their lone surrogates \
                         are replaced with U+FFFD (one would be lost)"
                    );
                    return Err(Exception::throw_type(self.ctx, &message));
                }
                members.insert(name, member);
            }
        }
        Ok(Json::Object(members))
    }
}

/// The enumerable own string keys of an object, in `Object.keys` order; the table QuickJS
/// listed them in (which holds the atoms) is freed on drop.
struct Keys<'a, 'js> {
    ctx: &'a Ctx<'js>,
    table: *mut qjs::JSPropertyEnum,
    len: u32,
    atoms: Vec<qjs::JSAtom>,
}

impl<'a, 'js> Keys<'a, 'js> {
    fn of(ctx: &'a Ctx<'js>, object: &Value<'js>) -> rquickjs::Result<Self> {
        let raw_ctx = ctx.as_raw().as_ptr();
        // SAFETY: a type test on a live value.
        let proxy = unsafe { qjs::JS_IsProxy(object.as_raw()) };
        // An ordinary object's enumerability has no side effects, so it is filtered while
        // listing. A proxy's is asked (its `getOwnPropertyDescriptor` trap) after `ownKeys`,
        // key by key, as `Object.keys` asks it.
        let flags = qjs::JS_GPN_STRING_MASK as i32 | if proxy { 0 } else { qjs::JS_GPN_ENUM_ONLY as i32 };
        let mut keys = Keys { ctx, table: std::ptr::null_mut(), len: 0, atoms: Vec::new() };
        // SAFETY: lists the keys of a live object into a table `Keys` frees.
        if unsafe { qjs::JS_GetOwnPropertyNames(raw_ctx, &mut keys.table, &mut keys.len, object.as_raw(), flags) } < 0 {
            return Err(rquickjs::Error::Exception);
        }
        keys.atoms.reserve(keys.len as usize);
        for index in 0..keys.len as usize {
            // SAFETY: `index` is within the table QuickJS returned.
            let atom = unsafe { (*keys.table.add(index)).atom };
            if !proxy || Self::enumerable(raw_ctx, object, atom)? {
                keys.atoms.push(atom);
            }
        }
        Ok(keys)
    }

    /// Asks a proxy whether its own property `atom` exists and is enumerable.
    fn enumerable(raw_ctx: *mut qjs::JSContext, object: &Value<'js>, atom: qjs::JSAtom) -> rquickjs::Result<bool> {
        let mut descriptor = std::mem::MaybeUninit::<qjs::JSPropertyDescriptor>::uninit();
        // SAFETY: asks for one descriptor, whose values are freed at once when there is one.
        unsafe {
            match qjs::JS_GetOwnProperty(raw_ctx, descriptor.as_mut_ptr(), object.as_raw(), atom) {
                found if found < 0 => Err(rquickjs::Error::Exception),
                0 => Ok(false),
                _ => {
                    let descriptor = descriptor.assume_init();
                    qjs::JS_FreeValue(raw_ctx, descriptor.value);
                    qjs::JS_FreeValue(raw_ctx, descriptor.getter);
                    qjs::JS_FreeValue(raw_ctx, descriptor.setter);
                    Ok(descriptor.flags & qjs::JS_PROP_ENUMERABLE as i32 != 0)
                }
            }
        }
    }
}

impl Drop for Keys<'_, '_> {
    fn drop(&mut self) {
        if !self.table.is_null() {
            // SAFETY: frees the table (and its atoms) QuickJS returned, once.
            unsafe { qjs::JS_FreePropertyEnum(self.ctx.as_raw().as_ptr(), self.table, self.len) };
        }
    }
}

/// A number as `JSON.stringify` writes it and `serde_json` reads it back: NaN and the
/// infinities are `null`, and an integer is written without a fraction (up to 1e21, where the
/// exponent starts), so it is read as an integer when it fits 64 bits (`-0` as `0`; beyond 2^53
/// the integer JavaScript prints: the shortest digits that identify the double, padded with
/// zeros, which Rust's `Display` prints too).
fn number(float: f64) -> Json {
    const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0; // 2^53
    if !float.is_finite() {
        return Json::Null;
    }
    if float.fract() == 0.0 && float.abs() < 1e21 {
        if float.abs() < EXACT_INTEGERS {
            return if float >= 0.0 { Json::from(float as u64) } else { Json::from(float as i64) };
        }
        let digits = float.to_string();
        if let Ok(int) = digits.parse::<u64>() {
            return Json::from(int);
        }
        if let Ok(int) = digits.parse::<i64>() {
            return Json::from(int);
        }
    }
    serde_json::Number::from_f64(float).map_or(Json::Null, Json::Number)
}

/// Text leaving the sandbox (a log line, an error's message): its UTF-8, a lone surrogate
/// becoming U+FFFD as in values.
pub fn text<'js>(ctx: &Ctx<'js>, string: &rquickjs::String<'js>) -> rquickjs::Result<String> {
    string_to_json(ctx, string)
}

/// A string's UTF-8; a lone surrogate, which has none, becomes U+FFFD (through the escape
/// `JSON.stringify` writes for it).
fn string_to_json<'js>(ctx: &Ctx<'js>, string: &rquickjs::String<'js>) -> rquickjs::Result<String> {
    match string.to_string() {
        Err(rquickjs::Error::Utf8(_)) => {
            let text = ctx.json_stringify(string.clone())?.map(|text| text.to_string()).transpose()?;
            let text = text.unwrap_or_default();
            serde_json::from_str(&well_formed(&text)).map_err(|e| not_serializable(ctx, e))
        }
        converted => converted,
    }
}

fn not_serializable(ctx: &Ctx<'_>, error: serde_json::Error) -> rquickjs::Error {
    Exception::throw_type(ctx, &format!("value is not serializable: {error}"))
}

fn out_of_memory(ctx: &Ctx<'_>) -> rquickjs::Error {
    Exception::throw_internal(ctx, "out of memory")
}

/// Replaces the surrogate escapes (`\ud800` to `\udfff`) of `JSON.stringify` output with `\ufffd`.
/// `JSON.stringify` writes a surrogate as an escape only when it is lone (a pair is written as
/// the character itself), and `serde_json` refuses lone surrogate escapes.
fn well_formed(json: &str) -> std::borrow::Cow<'_, str> {
    let bytes = json.as_bytes();
    let surrogate_escape = |i: usize| {
        bytes.get(i + 1) == Some(&b'u')
            && bytes.get(i + 2).is_some_and(|b| b.eq_ignore_ascii_case(&b'd'))
            && bytes.get(i + 3).is_some_and(|b| matches!(b.to_ascii_lowercase(), b'8'..=b'9' | b'a'..=b'f'))
    };
    let mut fixed: Option<String> = None;
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
        } else if surrogate_escape(i) {
            let fixed = fixed.get_or_insert_with(|| String::with_capacity(json.len()));
            fixed.push_str(&json[copied..i]);
            fixed.push_str("\\ufffd");
            i = (i + 6).min(bytes.len());
            copied = i;
        } else {
            // Any other escape: its second byte is ASCII and cannot start a surrogate escape.
            i += 2;
        }
    }
    match fixed {
        None => std::borrow::Cow::Borrowed(json),
        Some(mut fixed) => {
            fixed.push_str(&json[copied..]);
            std::borrow::Cow::Owned(fixed)
        }
    }
}

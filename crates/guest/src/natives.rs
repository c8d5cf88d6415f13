//! The native functions behind the prelude's `$state`, `$emit`, `$view`, `$ext` and `$log`:
//! each converts its JavaScript arguments to a wire message, calls the host, and turns the
//! host's answer back into a JavaScript value or a thrown `Error` with a `code`.

use std::cell::{Cell, RefCell};

use nexus_abi::{ErrorCode, ExtCall, HostStatus, Value as Json, ViewCommandCall, encode};
use rquickjs::object::Property;
use rquickjs::{Ctx, Exception, FromJs, Function, Object, Persistent, Value, prelude::Coerced};

use crate::host::{self, Answer};
use crate::preload::refuse_while_loading;
use crate::values::{from_json, text, to_json};

thread_local! {
    /// The prelude's `raise(error, code)`, which records an error as raised by the runtime.
    static RAISE: RefCell<Option<Persistent<Function<'static>>>> = const { RefCell::new(None) };
    /// The prelude's `raisedAs(value)`: how a raised error was raised.
    static RAISED_AS: RefCell<Option<Persistent<Function<'static>>>> = const { RefCell::new(None) };
    /// The prelude's `engineStacks()` and `restoreStacks(saved)`, around the making of an error
    /// the runtime raises.
    static STACKS: RefCell<Option<[Persistent<Function<'static>>; 2]>> = const { RefCell::new(None) };
}

/// Keeps the prelude's registry of raised errors; called once at pre-initialization.
pub fn set_registry<'js>(ctx: &Ctx<'js>, api: &Object<'js>) -> rquickjs::Result<()> {
    let function = |name: &str| api.get::<_, Function>(name).map(|f| Persistent::save(ctx, f));
    RAISE.set(Some(function("raise")?));
    RAISED_AS.set(Some(function("raisedAs")?));
    let stacks = [function("engineStacks")?, function("restoreStacks")?];
    STACKS.set(Some(stacks));
    Ok(())
}

/// A new `Error` made with the engine's own stack formatting: a handler's
/// `Error.prepareStackTrace` (code of its own, run inside the raising) and
/// `Error.stackTraceLimit` are set aside while it is made, and put back after.
fn new_runtime_error<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    let [engine, restore] = STACKS
        .with_borrow(|stacks| stacks.clone())
        .ok_or_else(|| Exception::throw_internal(ctx, "guest not initialized"))?;
    let saved: Value = engine.restore(ctx)?.call(())?;
    // SAFETY: a new error object of this live context, owned by the value made of it.
    let error = unsafe { Value::from_raw(ctx.clone(), rquickjs::qjs::JS_NewError(ctx.as_raw().as_ptr())) };
    restore.restore(ctx)?.call::<_, ()>((saved,))?;
    error.into_object().ok_or(rquickjs::Error::Exception)
}

/// An error the runtime raised, as it was when raised.
pub struct Raised {
    pub code: String,
    pub message: String,
    pub stack: Option<String>,
}

/// How the runtime raised `value`, if it is an error the runtime raised.
pub fn raised<'js>(value: &Value<'js>) -> Option<Raised> {
    if !value.is_object() {
        return None;
    }
    let raised_as = RAISED_AS.with_borrow(|f| f.clone())?.restore(value.ctx()).ok()?;
    let raised = raised_as.call::<_, Option<rquickjs::Array>>((value.clone(),)).ok().flatten()?;
    Some(Raised { code: raised.get(0).ok()?, message: raised.get(1).ok()?, stack: raised.get(2).ok()? })
}

/// A name the handler gives the runtime (a state key, an event name, a component id, an
/// extension or method name): any value converted as `String(value)` would convert it, and a
/// `TypeError` if that string is not well-formed UTF-16 (a lone surrogate), since a name that
/// changed on its way to the host would name something else.
pub struct Name(pub String);

impl<'js> FromJs<'js> for Name {
    fn from_js(ctx: &Ctx<'js>, value: Value<'js>) -> rquickjs::Result<Self> {
        let string = Coerced::<rquickjs::String>::from_js(ctx, value)?.0;
        match string.to_string() {
            Ok(name) => Ok(Name(name)),
            Err(rquickjs::Error::Utf8(_)) => {
                Err(Exception::throw_type(ctx, "a name cannot contain a lone surrogate (it is not well-formed UTF-16)"))
            }
            Err(e) => Err(e),
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Text (a log line): any value converted as `String(value)` would convert it, a lone
/// surrogate becoming U+FFFD as in values.
pub struct Text(pub String);

impl<'js> FromJs<'js> for Text {
    fn from_js(ctx: &Ctx<'js>, value: Value<'js>) -> rquickjs::Result<Self> {
        let string = Coerced::<rquickjs::String>::from_js(ctx, value)?.0;
        text(ctx, &string).map(Text)
    }
}

/// The object of native functions handed to the prelude (never reachable from handler code).
pub fn host_object<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    let host = Object::new(ctx.clone())?;
    host.set("stateGet", Function::new(ctx.clone(), state_get)?)?;
    host.set("stateSet", Function::new(ctx.clone(), state_set)?)?;
    host.set("stateDelete", Function::new(ctx.clone(), state_delete)?)?;
    host.set("stateHas", Function::new(ctx.clone(), state_has)?)?;
    host.set("stateKeys", Function::new(ctx.clone(), state_keys)?)?;
    host.set("emit", Function::new(ctx.clone(), emit)?)?;
    host.set("view", Function::new(ctx.clone(), view)?)?;
    host.set("extCall", Function::new(ctx.clone(), ext_call)?)?;
    host.set("log", Function::new(ctx.clone(), log)?)?;
    host.set("random", Function::new(ctx.clone(), random)?)?;
    Ok(host)
}

/// Throws a JavaScript `Error` carrying `code` (so handlers can test `e.code`), recorded by the
/// prelude as raised by the runtime: only such an error, uncaught, ends an execution with
/// `code` (a handler's own error with the same `code` is a `RUNTIME_ERROR`).
pub fn throw_code(ctx: &Ctx<'_>, code: ErrorCode, message: &str) -> rquickjs::Error {
    let raised = (|| {
        // Own properties defined, not assigned: a library may have frozen `Error.prototype`
        // (its `message` read-only) or put a read-only `code` on `Object.prototype`, and an
        // assignment would then throw instead of the runtime's error.
        let error = new_runtime_error(ctx)?;
        error.prop("message", Property::from(message).writable().configurable())?;
        error.prop("code", Property::from(code.as_str()).writable().enumerable().configurable())?;
        let error = Exception::from_object(error).ok_or(rquickjs::Error::Exception)?;
        if let Some(raise) = RAISE.with_borrow(|raise| raise.clone()) {
            raise.restore(ctx)?.call::<_, ()>((error.clone(), code.as_str()))?;
        }
        Ok::<_, rquickjs::Error>(error)
    })();
    match raised {
        Ok(error) => error.throw(),
        Err(e) => e,
    }
}

fn refused(ctx: &Ctx<'_>, status: HostStatus, what: impl FnOnce() -> String) -> rquickjs::Error {
    match status {
        HostStatus::UnknownExtension => {
            throw_code(ctx, ErrorCode::UnknownExtension, &format!("unknown extension: {}", what()))
        }
        HostStatus::OutputLimit => throw_code(ctx, ErrorCode::MemoryLimit, "the execution's output limit is exhausted"),
        HostStatus::Denied | HostStatus::Absent => {
            throw_code(ctx, ErrorCode::PermissionDenied, &format!("permission denied: requires capability {}", what()))
        }
    }
}

fn from_wire<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> rquickjs::Result<Value<'js>> {
    let value: Json =
        nexus_abi::decode(bytes).map_err(|e| Exception::throw_internal(ctx, &format!("malformed host reply: {e}")))?;
    from_json(ctx, &value)
}

fn state_get<'js>(ctx: Ctx<'js>, key: Name) -> rquickjs::Result<Value<'js>> {
    refuse_while_loading(&ctx, "$state")?;
    match host::get(&key) {
        Answer::Data(bytes) => from_wire(&ctx, &bytes),
        Answer::Status(HostStatus::Absent) | Answer::Value(_) => Ok(Value::new_undefined(ctx)),
        Answer::Status(status) => Err(refused(&ctx, status, || format!("state:read:{}", &*key))),
    }
}

fn state_set<'js>(ctx: Ctx<'js>, key: Name, value: Value<'js>) -> rquickjs::Result<()> {
    refuse_while_loading(&ctx, "$state")?;
    let value = encode(&to_json(&ctx, value)?);
    match host::set(&key, &value) {
        Answer::Status(status) => Err(refused(&ctx, status, || format!("state:write:{}", &*key))),
        _ => Ok(()),
    }
}

fn state_delete(ctx: Ctx<'_>, key: Name) -> rquickjs::Result<()> {
    refuse_while_loading(&ctx, "$state")?;
    match host::delete(&key) {
        Answer::Status(status) => Err(refused(&ctx, status, || format!("state:write:{}", &*key))),
        _ => Ok(()),
    }
}

fn state_has(ctx: Ctx<'_>, key: Name) -> rquickjs::Result<bool> {
    refuse_while_loading(&ctx, "$state")?;
    match host::has(&key) {
        Answer::Value(present) => Ok(present != 0),
        Answer::Status(status) => Err(refused(&ctx, status, || format!("state:read:{}", &*key))),
        Answer::Data(_) => Ok(false),
    }
}

fn state_keys<'js>(ctx: Ctx<'js>) -> rquickjs::Result<Value<'js>> {
    refuse_while_loading(&ctx, "$state")?;
    match host::keys() {
        Answer::Data(bytes) => from_wire(&ctx, &bytes),
        Answer::Status(status) => Err(refused(&ctx, status, || "state:read:*".into())),
        Answer::Value(_) => from_json(&ctx, &Json::Array(Vec::new())),
    }
}

fn emit<'js>(ctx: Ctx<'js>, name: Name, payload: Value<'js>) -> rquickjs::Result<()> {
    refuse_while_loading(&ctx, "$emit")?;
    let payload = encode(&to_json(&ctx, payload)?);
    match host::emit_event(&name, &payload) {
        Answer::Status(status) => Err(refused(&ctx, status, || format!("events:emit:{}", &*name))),
        _ => Ok(()),
    }
}

fn view<'js>(ctx: Ctx<'js>, kind: Name, component_id: Name, args: Value<'js>) -> rquickjs::Result<()> {
    refuse_while_loading(&ctx, "$view")?;
    let call = ViewCommandCall { kind: kind.0, component_id: component_id.0, args: to_json(&ctx, args)? };
    match host::view(&encode(&call)) {
        Answer::Status(status) => Err(refused(&ctx, status, || format!("view:update:{}", call.component_id))),
        _ => Ok(()),
    }
}

/// Records an extension call on the host and returns its call id.
fn ext_call<'js>(ctx: Ctx<'js>, extension: Name, method: Name, args: Value<'js>) -> rquickjs::Result<u32> {
    refuse_while_loading(&ctx, "$ext")?;
    let args = match to_json(&ctx, args)? {
        Json::Array(args) => args,
        // The prelude passes its rest parameter; only an `Array.prototype.toJSON` of the
        // handler's own makes something else of it.
        _ => return Err(Exception::throw_type(&ctx, "extension call arguments must serialize as an array")),
    };
    let call = ExtCall { extension: extension.0, method: method.0, args };
    match host::extension_call(&encode(&call)) {
        Answer::Value(call_id) => Ok(call_id),
        Answer::Status(HostStatus::UnknownExtension) => {
            Err(refused(&ctx, HostStatus::UnknownExtension, || format!("{}.{}", call.extension, call.method)))
        }
        Answer::Status(status) => Err(refused(&ctx, status, || format!("ext:{}", call.extension))),
        Answer::Data(_) => Err(Exception::throw_internal(&ctx, "unexpected host reply")),
    }
}

fn log(ctx: Ctx<'_>, level: i32, line: Text) -> rquickjs::Result<()> {
    refuse_while_loading(&ctx, "console")?;
    match host::log_line(level, &line.0) {
        Answer::Status(status) => Err(refused(&ctx, status, || "log".into())),
        _ => Ok(()),
    }
}

thread_local! {
    /// xorshift128+ state; seeded from host randomness at every execution, because a value
    /// computed during snapshotting would otherwise repeat in every instance.
    static RANDOM: Cell<[u64; 2]> = const { Cell::new([0x9e37_79b9_7f4a_7c15, 0xbf58_476d_1ce4_e5b9]) };
}

pub fn seed_random(seed: [u64; 2]) {
    // An all-zero state would only ever produce zeros.
    let seed = if seed == [0, 0] { [1, 0] } else { seed };
    RANDOM.set(seed);
}

/// `Math.random`: a double in [0, 1) from the top 53 bits of xorshift128+.
fn random(ctx: Ctx<'_>) -> rquickjs::Result<f64> {
    // A value drawn while a library loads would be frozen into the snapshot and repeat in
    // every execution.
    refuse_while_loading(&ctx, "Math.random")?;
    let [mut s1, s0] = RANDOM.get();
    let result = s0.wrapping_add(s1);
    s1 ^= s1 << 23;
    s1 ^= s1 >> 17 ^ s0 ^ (s0 >> 26);
    RANDOM.set([s0, s1]);
    Ok((result >> 11) as f64 / (1u64 << 53) as f64)
}

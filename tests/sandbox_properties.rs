//! End-to-end property test: random handler programs with random capabilities run in the real
//! sandbox, and what they produce must equal a reference model of the handler API exactly —
//! mutations, events, view commands, denials, the extension calls suspended on, the returned
//! value and the error code.
//!
//! A program is a sequence of state reads, writes, deletes, `in` tests, key listings, emits,
//! view commands, awaited extension calls (answered with a value, or rejected with a coded
//! error when their argument is odd) and throws over a small alphabet, some inside
//! `try/catch` blocks that record the caught `e.code`. Every observation goes into an `out`
//! array the handler returns, so the returned value pins down what the handler saw.
//!
//! Cases: 2048 by default (a few seconds of sandbox time); `PROPTEST_CASES=N` overrides
//! it, `PROPTEST_RNG_SEED=N` fixes the seed to reproduce a run. A failing case shrinks to a
//! short program, printed as the JavaScript source it ran.

mod common;

use std::collections::BTreeSet;
use std::fmt;

use nexus::{Denial, Event, ExtOutcome, Kind, Records, StateMutation, Status, ViewCommand};
use proptest::prelude::*;
use serde_json::{Value, json};

const KEYS: [&str; 3] = ["a", "b", "c:d"];
const EVENTS: [&str; 2] = ["saved", "gone"];
const COMPONENTS: [&str; 2] = ["label", "list"];
const EXTENSIONS: [&str; 3] = ["kv", "mail", "web"];
const METHODS: [&str; 2] = ["get", "send"];
/// The extension registry of every request: `web` is never registered, `kv.send` neither.
const REGISTRY: [(&str, &str); 2] = [("kv", "get"), ("mail", "send")];

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 2048;
    }
    config
}

#[derive(Clone, Debug)]
enum Op {
    Read(&'static str),
    Write(&'static str, Datum),
    Delete(&'static str),
    Has(&'static str),
    Keys,
    Emit(&'static str, Datum),
    ViewUpdate(&'static str, i64),
    ViewCommand(&'static str, i64),
    Ext(&'static str, &'static str, i64),
    Throw,
    Try(Vec<Op>),
}

/// A value a handler writes or emits.
#[derive(Clone, Debug)]
enum Datum {
    Int(i64),
    Text(&'static str),
    /// `'😀'.slice(0, 1)`: a lone surrogate, which arrives as U+FFFD.
    Cut,
    Null,
    Undefined,
}

impl Datum {
    fn js(&self) -> String {
        match self {
            Datum::Int(n) => n.to_string(),
            Datum::Text(text) => js(text),
            Datum::Cut => "'\\u{1F600}'.slice(0, 1)".to_owned(),
            Datum::Null => "null".to_owned(),
            Datum::Undefined => "undefined".to_owned(),
        }
    }

    /// The value as the host receives it (`undefined` has no JSON form).
    fn json(&self) -> Option<Value> {
        match self {
            Datum::Int(n) => Some(json!(n)),
            Datum::Text(text) => Some(json!(text)),
            Datum::Cut => Some(json!("\u{FFFD}")),
            Datum::Null => Some(Value::Null),
            Datum::Undefined => None,
        }
    }
}

/// Quoted as a JavaScript string literal.
fn js(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize")
}

impl Op {
    fn write_js(&self, out: &mut String, indent: usize) {
        let pad = "  ".repeat(indent);
        let line = match self {
            Op::Read(k) => format!("out.push(['r', $state[{}] ?? null]);", js(k)),
            Op::Write(k, v) => format!("$state[{}] = {};", js(k), v.js()),
            Op::Delete(k) => format!("delete $state[{}];", js(k)),
            Op::Has(k) => format!("out.push(['h', {} in $state]);", js(k)),
            Op::Keys => "out.push(['k', Object.keys($state)]);".to_owned(),
            Op::Emit(name, v) => format!("$emit({}, {{ v: {} }});", js(name), v.js()),
            Op::ViewUpdate(id, v) => format!("$view.update({}, {{ t: {v} }});", js(id)),
            Op::ViewCommand(id, v) => format!("$view.command('scroll', {}, {{ to: {v} }});", js(id)),
            Op::Ext(ext, method, v) => format!("out.push(['x', await $ext[{}][{}]({v})]);", js(ext), js(method)),
            Op::Throw => "throw new Error('boom');".to_owned(),
            Op::Try(body) => {
                out.push_str(&format!("{pad}try {{\n"));
                for op in body {
                    op.write_js(out, indent + 1);
                }
                out.push_str(&format!("{pad}}} catch (e) {{ out.push(['c', e.code ?? null]); }}\n"));
                return;
            }
        };
        out.push_str(&format!("{pad}{line}\n"));
    }
}

#[derive(Clone)]
struct Program(Vec<Op>);

impl Program {
    fn source(&self) -> String {
        let mut source = "const out = [];\n".to_owned();
        for op in &self.0 {
            op.write_js(&mut source, 0);
        }
        source.push_str("return out;");
        source
    }
}

/// Printed as the handler source, so a shrunk failure reads as the program that failed.
impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n{}\n", self.source())
    }
}

fn op() -> impl Strategy<Value = Op> {
    let key = || prop::sample::select(KEYS.to_vec());
    let value = || 0..100i64;
    let datum = || {
        prop_oneof![
            3 => (0..100i64).prop_map(Datum::Int),
            2 => prop::sample::select(vec!["", "é", "\u{1F600}", "a\"b", "\\", "\u{2028}", "\0"]).prop_map(Datum::Text),
            1 => Just(Datum::Cut),
            1 => Just(Datum::Null),
            1 => Just(Datum::Undefined),
        ]
    };
    let leaf = prop_oneof![
        3 => key().prop_map(Op::Read),
        3 => (key(), datum()).prop_map(|(k, v)| Op::Write(k, v)),
        1 => key().prop_map(Op::Delete),
        1 => key().prop_map(Op::Has),
        1 => Just(Op::Keys),
        2 => (prop::sample::select(EVENTS.to_vec()), datum()).prop_map(|(n, v)| Op::Emit(n, v)),
        1 => (prop::sample::select(COMPONENTS.to_vec()), value()).prop_map(|(c, v)| Op::ViewUpdate(c, v)),
        1 => (prop::sample::select(COMPONENTS.to_vec()), value()).prop_map(|(c, v)| Op::ViewCommand(c, v)),
        2 => (prop::sample::select(EXTENSIONS.to_vec()), prop::sample::select(METHODS.to_vec()), value())
            .prop_map(|(e, m, v)| Op::Ext(e, m, v)),
        1 => Just(Op::Throw),
    ];
    leaf.prop_recursive(2, 24, 5, |inner| prop::collection::vec(inner, 1..5).prop_map(Op::Try))
}

/// Every token over the alphabet, wildcards included.
fn all_tokens() -> Vec<String> {
    let mut tokens = Vec::new();
    for key in KEYS.iter().chain(["*"].iter()) {
        tokens.push(format!("state:read:{key}"));
        tokens.push(format!("state:write:{key}"));
    }
    for name in EVENTS.iter().chain(["*"].iter()) {
        tokens.push(format!("events:emit:{name}"));
    }
    for id in COMPONENTS.iter().chain(["*"].iter()) {
        tokens.push(format!("view:update:{id}"));
    }
    for ext in EXTENSIONS.iter().chain(["*"].iter()) {
        tokens.push(format!("ext:{ext}"));
    }
    tokens
}

fn capabilities() -> impl Strategy<Value = BTreeSet<String>> {
    prop::sample::subsequence(all_tokens(), 0..=12).prop_map(BTreeSet::from_iter)
}

fn snapshot() -> impl Strategy<Value = Vec<(&'static str, i64)>> {
    prop::sample::subsequence(KEYS.to_vec(), 0..=KEYS.len())
        .prop_flat_map(|keys| {
            let n = keys.len();
            (Just(keys), prop::collection::vec(0..100i64, n))
        })
        .prop_map(|(keys, values)| keys.into_iter().zip(values).collect())
}

/// What the sandbox must produce for a program.
#[derive(Debug, Default, PartialEq)]
struct Observed {
    status: Option<Status>,
    error_code: Option<String>,
    return_value: Value,
    mutations: Vec<StateMutation>,
    events: Vec<Event>,
    view_commands: Vec<ViewCommand>,
    denials: Vec<Denial>,
    /// `(extension, method, args)` of the one call each suspension waited for.
    suspended_on: Vec<(String, String, Vec<Value>)>,
}

/// The reference model of the handler API: capabilities as token strings, the state as an
/// ordered list, and each operation's permission, record and observation written out again.
struct Model {
    tokens: BTreeSet<String>,
    state: Vec<(String, Value)>,
    out: Vec<Value>,
    observed: Observed,
}

/// A JavaScript exception the model expects, by its `code` (`None` for a plain `Error`).
struct Thrown(Option<&'static str>);

impl Model {
    fn allows(&self, prefix: &str, name: &str) -> bool {
        self.tokens.contains(&format!("{prefix}*")) || self.tokens.contains(&format!("{prefix}{name}"))
    }

    /// Checks a capability, recording a denial (and the thrown error) when it is missing.
    fn check(&mut self, prefix: &str, name: &str, operation: &str) -> Result<(), Thrown> {
        if self.allows(prefix, name) {
            return Ok(());
        }
        let kind = Kind::ALL.into_iter().find(|kind| kind.prefix() == prefix).expect("a known prefix");
        let capability = format!("{prefix}{name}");
        self.observed.denials.push(Denial { capability, kind, resource: name.into(), operation: operation.into() });
        Err(Thrown(Some("PERMISSION_DENIED")))
    }

    fn get(&self, key: &str) -> Option<Value> {
        self.state.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    fn run_all(&mut self, ops: &[Op]) -> Result<(), Thrown> {
        ops.iter().try_for_each(|op| self.run(op))
    }

    fn run(&mut self, op: &Op) -> Result<(), Thrown> {
        match op {
            Op::Read(k) => {
                self.check("state:read:", k, "state.get")?;
                self.out.push(json!(["r", self.get(k)]));
            }
            Op::Write(k, v) => {
                self.check("state:write:", k, "state.set")?;
                // Written `undefined` is stored as null.
                let value = v.json().unwrap_or(Value::Null);
                match self.state.iter_mut().find(|(key, _)| key == k) {
                    Some(entry) => entry.1 = value.clone(),
                    None => self.state.push(((*k).to_owned(), value.clone())),
                }
                self.observed.mutations.push(StateMutation::Set { key: (*k).into(), value });
            }
            Op::Delete(k) => {
                self.check("state:write:", k, "state.delete")?;
                self.state.retain(|(key, _)| key != k);
                self.observed.mutations.push(StateMutation::Delete { key: (*k).into() });
            }
            Op::Has(k) => {
                self.check("state:read:", k, "state.has")?;
                self.out.push(json!(["h", self.get(k).is_some()]));
            }
            Op::Keys => {
                let keys: Vec<&str> =
                    self.state.iter().map(|(k, _)| k.as_str()).filter(|k| self.allows("state:read:", k)).collect();
                self.out.push(json!(["k", keys]));
            }
            Op::Emit(name, v) => {
                self.check("events:emit:", name, "events.emit")?;
                // `{ v: undefined }` serializes as `{}`.
                let payload = v.json().map_or_else(|| json!({}), |v| json!({ "v": v }));
                self.observed.events.push(Event { name: (*name).into(), payload });
            }
            Op::ViewUpdate(id, v) => {
                self.check("view:update:", id, "view.update")?;
                let command =
                    ViewCommand { kind: "update".into(), component_id: (*id).into(), args: json!({ "t": v }) };
                self.observed.view_commands.push(command);
            }
            Op::ViewCommand(id, v) => {
                self.check("view:update:", id, "view.command")?;
                let command =
                    ViewCommand { kind: "scroll".into(), component_id: (*id).into(), args: json!({ "to": v }) };
                self.observed.view_commands.push(command);
            }
            Op::Ext(ext, method, v) => {
                self.check("ext:", ext, "ext.call")?;
                if !REGISTRY.contains(&(*ext, *method)) {
                    return Err(Thrown(Some("UNKNOWN_EXTENSION")));
                }
                self.observed.suspended_on.push(((*ext).into(), (*method).into(), vec![json!(v)]));
                match answer(&json!(v)) {
                    ExtOutcome::Ok(value) => self.out.push(json!(["x", value])),
                    ExtOutcome::Err { .. } => return Err(Thrown(Some(EXT_FAILED))),
                }
            }
            Op::Throw => return Err(Thrown(None)),
            Op::Try(body) => {
                if let Err(Thrown(code)) = self.run_all(body) {
                    self.out.push(json!(["c", code]));
                }
            }
        }
        Ok(())
    }

    fn expect(program: &Program, tokens: &BTreeSet<String>, snapshot: &[(&str, i64)]) -> Observed {
        let mut model = Model {
            tokens: tokens.clone(),
            state: snapshot.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect(),
            out: Vec::new(),
            observed: Observed::default(),
        };
        match model.run_all(&program.0) {
            Ok(()) => {
                model.observed.status = Some(Status::Success);
                model.observed.return_value = Value::Array(std::mem::take(&mut model.out));
            }
            Err(Thrown(code)) => {
                model.observed.status = Some(Status::Error);
                // The sandbox's own codes surface as themselves; any other throw, the
                // application's rejection included, is the handler's runtime error.
                let code = code.filter(|c| *c != EXT_FAILED).unwrap_or("RUNTIME_ERROR");
                model.observed.error_code = Some(code.to_owned());
            }
        }
        model.observed
    }
}

/// The code of the error the test's application rejects an extension call with.
const EXT_FAILED: &str = "EXT_FAILED";

/// What the test's application answers an extension call with: a value for an even argument,
/// a rejection for an odd one.
fn answer(arg: &Value) -> ExtOutcome {
    match arg.as_i64() {
        Some(n) if n % 2 == 1 => ExtOutcome::Err { code: Some(EXT_FAILED.into()), message: format!("{n} is odd") },
        _ => ExtOutcome::Ok(json!({ "echo": arg, "from": "host" })),
    }
}

/// Runs `program` in the sandbox, answering every suspension, and gathers what it produced.
fn run_in_sandbox(program: &Program, tokens: &BTreeSet<String>, snapshot: &[(&str, i64)]) -> Observed {
    run_hibernating(program, tokens, snapshot, 0).0
}

/// Like [`run_in_sandbox`], hibernating the execution at the suspensions whose bit is set in
/// `hibernate_at` (bit n: the n-th suspension): it goes through a sealed image and a fresh
/// instance there. Also returns how many times it was hibernated.
fn run_hibernating(
    program: &Program,
    tokens: &BTreeSet<String>,
    snapshot: &[(&str, i64)],
    hibernate_at: u32,
) -> (Observed, u32) {
    let engine = common::engine();
    let sealer = nexus::Sealer::for_image(nexus::SuspensionKeys::random(), engine.image_identity());
    let mut hibernations = 0;
    let caps: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let state: serde_json::Map<String, Value> = snapshot.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let mut request = common::request(&program.source(), &caps, Value::Object(state));
    for (extension, method) in REGISTRY {
        request = common::register(request, extension, &[method]);
    }
    let mut outcome = engine.execute(request);
    let mut records = Records::default();
    let mut suspended_on = Vec::new();
    while let Some(mut parked) = outcome.parked.take() {
        let suspension = outcome.result.suspension.take().expect("a parked execution reports its suspension");
        if hibernate_at & (1 << suspended_on.len().min(31)) != 0 {
            let (image, _) = engine.hibernate(parked).expect("hibernates");
            let expires_at = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
            let sealed = sealer.seal(&image, &suspension.id, expires_at);
            let (_, image) = sealer.open(&sealed, &suspension.id).expect("opens");
            parked = engine.restore(image, suspension.id.clone()).expect("restores");
            hibernations += 1;
        }
        records.extend(std::mem::take(&mut outcome.result.records));
        assert_eq!(suspension.calls.len(), 1, "each awaited call suspends alone");
        let call = &suspension.calls[0];
        suspended_on.push((call.extension.clone(), call.method.clone(), call.args.clone()));
        outcome = match engine.resume(parked, call.call_id, answer(call.args.first().unwrap_or(&Value::Null))) {
            Ok(outcome) => outcome,
            Err(refused) => panic!("resume refused: {}", refused.error),
        };
    }
    let result = outcome.result;
    records.extend(result.records);
    let observed = Observed {
        status: Some(result.status),
        error_code: result.error.map(|e| e.code.as_str().to_owned()),
        return_value: result.return_value,
        mutations: records.state_mutations,
        events: records.events,
        view_commands: records.view_commands,
        denials: records.denials,
        suspended_on,
    };
    (observed, hibernations)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_programs_do_exactly_what_the_model_permits(
        program in prop::collection::vec(op(), 0..12).prop_map(Program),
        tokens in capabilities(),
        snapshot in snapshot(),
    ) {
        let expected = Model::expect(&program, &tokens, &snapshot);
        let observed = run_in_sandbox(&program, &tokens, &snapshot);
        prop_assert_eq!(observed, expected, "capabilities {:?}, state {:?}", tokens, snapshot);
    }
}

fn hibernation_config() -> ProptestConfig {
    let mut config = config();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 512;
    }
    config
}

proptest! {
    #![proptest_config(hibernation_config())]

    /// A suspended execution that goes through a sealed image and a fresh instance at any of
    /// its suspensions does exactly what it does when it stays live.
    #[test]
    fn random_programs_do_the_same_when_hibernated_at_random_suspensions(
        program in prop::collection::vec(op(), 1..12).prop_map(Program),
        tokens in capabilities(),
        snapshot in snapshot(),
        hibernate_at in any::<u32>(),
    ) {
        let expected = Model::expect(&program, &tokens, &snapshot);
        let (observed, hibernations) = run_hibernating(&program, &tokens, &snapshot, hibernate_at);
        let suspensions = observed.suspended_on.len() as u32;
        let chosen = (0..suspensions.min(32)).filter(|n| hibernate_at & (1 << n) != 0).count() as u32;
        prop_assert_eq!(hibernations, chosen, "hibernated where chosen");
        prop_assert_eq!(observed, expected, "capabilities {:?}, state {:?}", tokens, snapshot);
    }
}

/// The model and the sandbox agree on a hand-written program too (so a model that is wrong in
/// the same way as the sandbox would at least have to be wrong against this).
#[test]
fn the_model_matches_a_known_program() {
    let program = Program(vec![
        Op::Read("a"),
        Op::Try(vec![Op::Read("b"), Op::Write("b", Datum::Int(1))]),
        Op::Write("a", Datum::Cut),
        Op::Ext("kv", "get", 4),
        Op::Try(vec![Op::Ext("mail", "send", 3)]),
        Op::Try(vec![Op::Ext("kv", "send", 1)]),
        Op::Keys,
    ]);
    let tokens: BTreeSet<String> =
        ["state:read:a", "state:write:a", "ext:kv", "ext:mail"].into_iter().map(str::to_owned).collect();
    let expected = Model::expect(&program, &tokens, &[("a", 5), ("b", 6)]);
    assert_eq!(
        expected.return_value,
        json!([
            ["r", 5],
            ["c", "PERMISSION_DENIED"],
            ["x", {"echo": 4, "from": "host"}],
            ["c", "EXT_FAILED"],
            ["c", "UNKNOWN_EXTENSION"],
            ["k", ["a"]]
        ])
    );
    let denial = Denial {
        capability: "state:read:b".into(),
        kind: Kind::StateRead,
        resource: "b".into(),
        operation: "state.get".into(),
    };
    assert_eq!(expected.denials, vec![denial]);
    assert_eq!(run_in_sandbox(&program, &tokens, &[("a", 5), ("b", 6)]), expected);
}

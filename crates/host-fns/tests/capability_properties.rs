//! Property tests of the capability grammar and matcher against an independent reference model.
//!
//! The model works on token *strings* only: a request `(kind, name)` is allowed exactly when the
//! granted token strings contain `<prefix>*` or `<prefix><name>`. It shares no code with the
//! parser or the [`Checker`], so a bug in either shows up as a disagreement.
//!
//! Cases per property: 2048 by default (they are cheap); `PROPTEST_CASES=N` overrides it and
//! `PROPTEST_RNG_SEED=N` fixes the seed to reproduce a run.

use nexus_host_fns::{Capability, Checker, Kind, Resource};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 2048;
    }
    config
}

/// The five prefixes, written out again rather than taken from [`Kind::prefix`].
const MODEL_PREFIXES: [&str; 5] = ["state:read:", "state:write:", "events:emit:", "view:update:", "ext:"];

fn model_prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::StateRead => MODEL_PREFIXES[0],
        Kind::StateWrite => MODEL_PREFIXES[1],
        Kind::EventsEmit => MODEL_PREFIXES[2],
        Kind::ViewUpdate => MODEL_PREFIXES[3],
        Kind::Ext => MODEL_PREFIXES[4],
    }
}

/// The model's verdict on a token string: well-formed when it starts with a prefix and has a
/// non-empty rest.
fn model_well_formed(token: &str) -> bool {
    MODEL_PREFIXES.iter().any(|prefix| token.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty()))
}

fn model_allows(tokens: &[String], kind: Kind, name: &str) -> bool {
    let prefix = model_prefix(kind);
    tokens.iter().any(|token| *token == format!("{prefix}*") || *token == format!("{prefix}{name}"))
}

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

/// Resources that stress the grammar: colons, stars, unicode, the empty string, prefixes.
fn resource() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("*".to_owned()),
        "[a-c:*]{1,6}",
        "(state:read:|ext:|events:emit:)[a-c*]{0,3}",
        "\\PC{1,8}",
        any::<String>(),
    ]
}

/// A small alphabet, so that random grants and random requests actually meet.
fn small_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "a:b", "*", "**", "a*", "é", "a ", "A"]).prop_map(str::to_owned)
}

/// Token strings that are well-formed by construction.
fn token_set(name: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        (kind(), name).prop_filter_map("no empty resource", |(kind, name)| {
            (!name.is_empty()).then(|| format!("{}{name}", model_prefix(kind)))
        }),
        0..6,
    )
}

fn parse_all(tokens: &[String]) -> Vec<Capability> {
    tokens.iter().map(|t| t.parse().unwrap_or_else(|e| panic!("{t:?} is well-formed: {e}"))).collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn token_strings_parse_exactly_when_the_model_says_and_display_back_unchanged(
        token in prop_oneof![
            (kind(), resource()).prop_map(|(kind, resource)| format!("{}{resource}", model_prefix(kind))),
            "(state|events|view|ext)?:?(read|write|emit|update)?:?[a*:]{0,3}",
            any::<String>(),
        ]
    ) {
        match token.parse::<Capability>() {
            Ok(capability) => {
                prop_assert!(model_well_formed(&token), "{token:?} was accepted");
                prop_assert_eq!(capability.to_string(), token.clone());
                let json = serde_json::to_string(&capability).expect("a parsed token serializes");
                prop_assert_eq!(serde_json::from_str::<Capability>(&json).expect("and reads back"), capability);
            }
            Err(_) => prop_assert!(!model_well_formed(&token), "{token:?} was refused"),
        }
    }

    #[test]
    fn capabilities_round_trip_through_their_token_or_refuse_to_serialize(kind in kind(), resource in resource()) {
        let capability = Capability::new(kind, resource.clone());
        let expressible = !resource.is_empty() && resource != "*";
        match serde_json::to_string(&capability) {
            Ok(json) => {
                prop_assert!(expressible, "{capability:?} serialized as {json}");
                prop_assert_eq!(serde_json::from_str::<Capability>(&json).unwrap(), capability.clone());
                prop_assert_eq!(capability.to_string().parse::<Capability>().unwrap(), capability);
            }
            Err(_) => prop_assert!(!expressible, "{capability:?} refused to serialize"),
        }
        let wildcard = Capability::any(kind);
        prop_assert_eq!(wildcard.to_string().parse::<Capability>().unwrap(), wildcard);
    }

    #[test]
    fn the_checker_and_each_token_agree_with_the_model(
        tokens in token_set(small_name()),
        requests in prop::collection::vec((kind(), small_name()), 1..12),
    ) {
        let checker = Checker::new(parse_all(&tokens));
        for (kind, name) in &requests {
            let expected = model_allows(&tokens, *kind, name);
            prop_assert_eq!(checker.allows(*kind, name), expected, "{:?} {:?} under {:?}", kind, name, tokens);
            let any_token = parse_all(&tokens).iter().any(|c| c.allows(*kind, name));
            prop_assert_eq!(any_token, expected, "single tokens: {:?} {:?} under {:?}", kind, name, tokens);
        }
    }

    #[test]
    fn the_checker_never_allows_what_the_model_denies(
        tokens in token_set(resource()),
        requests in prop::collection::vec((kind(), resource()), 1..12),
    ) {
        let capabilities = parse_all(&tokens);
        let checker = Checker::new(capabilities.clone());
        for (kind, name) in &requests {
            if checker.allows(*kind, name) {
                prop_assert!(model_allows(&tokens, *kind, name), "{:?} {:?} allowed under {:?}", kind, name, tokens);
            }
        }
        // And every grant is honoured: a named token allows its own name, a wildcard anything.
        for capability in &capabilities {
            let name = match &capability.resource {
                Resource::Any => "anything at all",
                Resource::Named(name) => name.as_str(),
            };
            prop_assert!(checker.allows(capability.kind, name), "{} not honoured", capability);
        }
    }
}

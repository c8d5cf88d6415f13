//! The capability checker: the set of tokens an execution holds, and the one question the
//! host functions ask of it.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::capability::{Capability, Kind, Resource};

/// The capabilities granted to one execution. It serializes (into a suspension image, which
/// is sealed: capabilities read back from anything unauthenticated would be forgeable).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checker {
    wildcards: HashSet<Kind>,
    named: HashMap<Kind, HashSet<String>>,
}

impl Checker {
    pub fn new(capabilities: impl IntoIterator<Item = Capability>) -> Self {
        let mut checker = Checker::default();
        for capability in capabilities {
            match capability.resource {
                Resource::Any => {
                    checker.wildcards.insert(capability.kind);
                }
                Resource::Named(name) => {
                    checker.named.entry(capability.kind).or_default().insert(name);
                }
            }
        }
        checker
    }

    /// Whether `kind` access to `name` is granted.
    pub fn allows(&self, kind: Kind, name: &str) -> bool {
        self.wildcards.contains(&kind) || self.named.get(&kind).is_some_and(|names| names.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(tokens: &[&str]) -> Checker {
        Checker::new(tokens.iter().map(|t| t.parse::<Capability>().unwrap()))
    }

    #[test]
    fn named_token_allows_only_its_resource_and_kind() {
        let checker = checker(&["state:read:count"]);
        assert!(checker.allows(Kind::StateRead, "count"));
        assert!(!checker.allows(Kind::StateRead, "secret"));
        assert!(!checker.allows(Kind::StateWrite, "count"));
    }

    #[test]
    fn wildcard_allows_every_resource_of_its_kind_only() {
        let checker = checker(&["events:emit:*"]);
        assert!(checker.allows(Kind::EventsEmit, "anything:at:all"));
        assert!(!checker.allows(Kind::Ext, "anything"));
    }

    #[test]
    fn no_tokens_allow_nothing() {
        let checker = checker(&[]);
        for kind in Kind::ALL {
            assert!(!checker.allows(kind, "x"));
            assert!(!checker.allows(kind, "*"));
        }
    }

    #[test]
    fn a_literal_star_key_is_not_the_wildcard() {
        let checker = checker(&["state:read:a*"]);
        assert!(checker.allows(Kind::StateRead, "a*"));
        assert!(!checker.allows(Kind::StateRead, "ab"));
    }
}

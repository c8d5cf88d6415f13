//! Capability tokens: the grammar (parse / display), and matching a token against an access.
//!
//! ```text
//! state:read:<key>   state:write:<key>   events:emit:<name>   view:update:<componentId>   ext:<name>
//! ```
//! The resource is everything after the second colon (after the first for `ext`), so it may
//! itself contain `:`. A resource that is exactly `*` is the wildcard of its kind; a `*`
//! anywhere else is a literal character. Anything else is malformed and refused.

use std::fmt;
use std::str::FromStr;

/// The kinds of access a token can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    StateRead,
    StateWrite,
    EventsEmit,
    ViewUpdate,
    Ext,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::StateRead, Kind::StateWrite, Kind::EventsEmit, Kind::ViewUpdate, Kind::Ext];

    /// The token prefix, including its final colon.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::StateRead => "state:read:",
            Kind::StateWrite => "state:write:",
            Kind::EventsEmit => "events:emit:",
            Kind::ViewUpdate => "view:update:",
            Kind::Ext => "ext:",
        }
    }

    /// The kind's name as records write it: the prefix without its final colon (`state:read`).
    pub fn name(self) -> &'static str {
        let prefix = self.prefix();
        &prefix[..prefix.len() - 1]
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Kind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown capability kind {name:?}")))
    }
}

/// What a token grants within its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// The token's resource was exactly `*`.
    Any,
    Named(String),
}

/// One capability token, e.g. `state:read:count` or `ext:*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Capability {
    pub kind: Kind,
    pub resource: Resource,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    #[error(
        "malformed capability token {0:?}: expected state:read:<key>, state:write:<key>, events:emit:<name>, view:update:<componentId> or ext:<name>"
    )]
    UnknownKind(String),
    #[error("malformed capability token {0:?}: the resource after the prefix is empty")]
    EmptyResource(String),
}

impl Capability {
    /// A token for the literal resource `resource`. The grammar cannot write the literal names
    /// `*` (that is the wildcard) and `` (malformed): such a capability only ever matches that
    /// literal name, and serializing it fails rather than writing a token that means more.
    pub fn new(kind: Kind, resource: impl Into<String>) -> Self {
        Capability { kind, resource: Resource::Named(resource.into()) }
    }

    pub fn any(kind: Kind) -> Self {
        Capability { kind, resource: Resource::Any }
    }

    /// Whether this token grants `kind` access to `name`.
    pub fn allows(&self, kind: Kind, name: &str) -> bool {
        self.kind == kind
            && match &self.resource {
                Resource::Any => true,
                Resource::Named(resource) => resource == name,
            }
    }
}

impl FromStr for Capability {
    type Err = CapabilityError;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        let (kind, resource) = Kind::ALL
            .into_iter()
            .find_map(|kind| token.strip_prefix(kind.prefix()).map(|resource| (kind, resource)))
            .ok_or_else(|| CapabilityError::UnknownKind(token.to_owned()))?;
        match resource {
            "" => Err(CapabilityError::EmptyResource(token.to_owned())),
            "*" => Ok(Capability::any(kind)),
            name => Ok(Capability::new(kind, name)),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.prefix())?;
        match &self.resource {
            Resource::Any => f.write_str("*"),
            Resource::Named(name) => f.write_str(name),
        }
    }
}

impl serde::Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.resource {
            // Written out, `Named("*")` would read back as the wildcard: a widening of powers.
            Resource::Named(name) if name.is_empty() || name == "*" => Err(serde::ser::Error::custom(format!(
                "capability {:?} {name:?} has no token: its resource is not a plain name",
                self.kind
            ))),
            _ => serializer.collect_str(self),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = String::deserialize(deserializer)?;
        token.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(token: &str) -> Capability {
        token.parse().unwrap()
    }

    #[test]
    fn parses_every_kind_and_displays_it_back() {
        for token in
            ["state:read:count", "state:write:count", "events:emit:changed", "view:update:label", "ext:weather"]
        {
            assert_eq!(cap(token).to_string(), token);
        }
    }

    #[test]
    fn star_alone_is_the_wildcard() {
        assert_eq!(cap("state:read:*").resource, Resource::Any);
        assert!(cap("ext:*").allows(Kind::Ext, "anything"));
        assert!(!cap("ext:*").allows(Kind::StateRead, "anything"));
    }

    #[test]
    fn star_elsewhere_is_a_literal() {
        let token = cap("state:read:user*");
        assert_eq!(token.resource, Resource::Named("user*".into()));
        assert!(token.allows(Kind::StateRead, "user*"));
        assert!(!token.allows(Kind::StateRead, "user1"));
        assert!(!cap("state:read:**").allows(Kind::StateRead, "x"));
    }

    #[test]
    fn keys_may_contain_colons() {
        let token = cap("state:read:a:b:c");
        assert!(token.allows(Kind::StateRead, "a:b:c"));
        assert!(!token.allows(Kind::StateRead, "a"));
        assert_eq!(cap("ext:ns:tool").to_string(), "ext:ns:tool");
    }

    #[test]
    fn write_does_not_imply_read() {
        assert!(!cap("state:write:count").allows(Kind::StateRead, "count"));
    }

    #[test]
    fn malformed_tokens_are_refused_not_ignored() {
        for token in [
            "",
            "state",
            "state:read",
            "state:read:",
            "state:delete:x",
            "ext:",
            "events:emit",
            "STATE:READ:x",
            " state:read:x",
            "view:update",
        ] {
            assert!(token.parse::<Capability>().is_err(), "{token:?} should be refused");
        }
    }

    #[test]
    fn a_literal_star_or_empty_name_does_not_serialize_as_a_token() {
        for name in ["*", ""] {
            let literal = Capability::new(Kind::StateRead, name);
            assert!(serde_json::to_string(&literal).is_err(), "{name:?} must not become a token");
        }
        assert_eq!(serde_json::to_string(&cap("state:read:*")).unwrap(), "\"state:read:*\"");
    }

    #[test]
    fn error_names_the_token() {
        let error = "state:raed:x".parse::<Capability>().unwrap_err();
        assert!(error.to_string().contains("\"state:raed:x\""));
    }
}

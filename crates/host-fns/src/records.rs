//! What an execution produces besides its value: the records the host functions keep.
//! Field names serialize in camelCase, as docs/results-and-errors.md shows them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use nexus_abi::LogLevel;

use crate::capability::Kind;

/// A change to the panel state, in the order the handler made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum StateMutation {
    Set { key: String, value: Value },
    Delete { key: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub name: String,
    pub payload: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewCommand {
    #[serde(rename = "type")]
    pub kind: String,
    pub component_id: String,
    pub args: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// An access the handler attempted without the capability for it (recorded even when the
/// handler catches the resulting error).
///
/// `capability` is the token that would have granted it, written in the token grammar; `kind`
/// and `resource` say the same unambiguously: a literal key `*` is `state:read:*` as a token
/// (which reads as the wildcard) but `resource: "*"` here, and an empty key has no token at all
/// (`state:read:`) but `resource: ""`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub capability: String,
    pub kind: Kind,
    pub resource: String,
    pub operation: String,
}

impl Denial {
    /// The denial of `operation` on the resource `name` of `kind`.
    pub fn new(kind: Kind, name: &str, operation: &str) -> Self {
        Denial {
            capability: format!("{}{name}", kind.prefix()),
            kind,
            resource: name.to_owned(),
            operation: operation.to_owned(),
        }
    }
}

/// An extension call waiting for the application to perform it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingCall {
    pub call_id: u32,
    pub extension: String,
    pub method: String,
    pub args: Vec<Value>,
}

/// The records of one stretch of execution (from start or resume to the next result).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Records {
    pub state_mutations: Vec<StateMutation>,
    pub events: Vec<Event>,
    pub view_commands: Vec<ViewCommand>,
    pub logs: Vec<LogLine>,
    pub denials: Vec<Denial>,
}

impl Records {
    /// Appends `later` (used to accumulate a whole run across suspensions).
    pub fn extend(&mut self, later: Records) {
        self.state_mutations.extend(later.state_mutations);
        self.events.extend(later.events);
        self.view_commands.extend(later.view_commands);
        self.logs.extend(later.logs);
        self.denials.extend(later.denials);
    }
}

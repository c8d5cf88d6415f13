//! Capability token parsing: any string either is refused or parses to a capability that
//! displays back as exactly that string and survives a serde round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_host_fns::{Capability, Checker, Resource};

fuzz_target!(|token: &str| {
    let Ok(capability) = token.parse::<Capability>() else { return };
    assert_eq!(capability.to_string(), token, "display is the token itself");
    let json = serde_json::to_string(&capability).expect("a parsed capability serializes");
    assert_eq!(serde_json::from_str::<Capability>(&json).expect("and reads back"), capability);
    // The token grants its own resource and, unless it is the wildcard, nothing else.
    let checker = Checker::new([capability.clone()]);
    match &capability.resource {
        Resource::Any => assert!(checker.allows(capability.kind, "anything")),
        Resource::Named(name) => {
            assert!(checker.allows(capability.kind, name));
            assert!(!checker.allows(capability.kind, &format!("{name}x")));
        }
    }
});

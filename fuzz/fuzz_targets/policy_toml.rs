//! Parses arbitrary text as a retention policy: it must never panic, and a policy that parses
//! evaluates its dates at the ends of time without panicking and parses again from its source.
#![no_main]

use std::collections::BTreeMap;

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use pdvault::{Category, Policy, RequestKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_toml(text) else {
        return;
    };
    let again = Policy::from_toml(policy.source()).expect("a policy parses again from its source");
    assert_eq!(again.retention.len(), policy.retention.len());
    let times = [Timestamp::MIN, Timestamp::UNIX_EPOCH, Timestamp::MAX];
    let mut events = BTreeMap::new();
    for name in policy.retention.keys() {
        let Ok(cat) = name.parse::<Category>() else {
            continue;
        };
        for t in times {
            for e in times {
                events.insert("account-closed".to_owned(), e);
                events.insert("contract-ended".to_owned(), e);
                let _ = policy.expires_at(&cat, t, &events);
                let _ = policy.retained_until(&cat, t, &events);
                let _ = policy.expires_at(&cat, t, &BTreeMap::new());
            }
        }
    }
    for kind in RequestKind::BUILTIN.iter().chain(policy.requests.keys()) {
        for t in times {
            let _ = policy.request_due(kind, t);
        }
    }
});

//! Arbitrary bytes as a control-API JSON body (SPEC §5–6): parsed into each body type exactly as
//! the API parses it (`control::parse`, unknown fields refused), then validated the way the API
//! validates it (key material loaded, policy record turned into a policy entry).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher::control::invalidate::InvalidateBody;
use usher::control::keys::parse_key;
use usher::control::parse;
use usher::control::test::TestBody;
use usher::keys::KeySource;
use usher::policy::build;
use usher::policy::model::{Policy, Source, WEBHOOK_MAX_TIMEOUT_MS};
use usher::spec::PolicySpec;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = parse_key(data) {
        let _ = key.load("k1", KeySource::Api, None);
    }
    if let Ok(record) = parse::<PolicySpec>(data)
        && let Ok(entry) = build::entry("abc123", &record, Source::Api)
    {
        assert_eq!(entry.policy.type_name(), record.kind);
        if let Policy::Webhook(w) = entry.policy {
            assert!((1..=WEBHOOK_MAX_TIMEOUT_MS).contains(&w.timeout_ms));
            assert!(!w.secret.expose().is_empty());
        }
    }
    let _ = parse::<InvalidateBody>(data);
    let _ = parse::<TestBody>(data);
});

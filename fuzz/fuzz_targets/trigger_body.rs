//! Arbitrary bytes as a MistServer trigger body: `parse_user_new`, `parse_user_end` and the push
//! parsers (`STREAM_PUSH`, `PUSH_REWRITE`) must never
//! panic, and what they accept must be what SPEC §1 describes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher::trigger::payload::{MAX_BODY_BYTES, parse_user_end, parse_user_new};
use usher::trigger::push::{parse_push_rewrite, parse_stream_push};

fn control_free(field: &str) -> bool {
    !field.bytes().any(|b| b.is_ascii_control())
}

fuzz_target!(|body: &[u8]| {
    if body.len() > MAX_BODY_BYTES {
        return;
    }
    if let Ok(u) = parse_user_new(body) {
        assert!(!u.stream.is_empty() && !u.session_id.is_empty());
        for f in [
            u.stream,
            u.viewer_ip,
            u.token,
            u.connector,
            u.request_url,
            u.session_id,
        ] {
            assert!(control_free(f), "accepted a control character: {f:?}");
        }
    }
    if let Ok(e) = parse_user_end(body) {
        assert!(!e.session_id.is_empty());
        for f in [e.token, e.streams, e.connectors, e.session_id] {
            assert!(control_free(f), "accepted a control character: {f:?}");
        }
        assert!(e.stream_names().all(|s| !s.is_empty()));
    }
    for p in [parse_stream_push(body), parse_push_rewrite(body)]
        .into_iter()
        .flatten()
    {
        assert!(!p.stream.is_empty());
        for f in [p.stream, p.host, p.connector, p.push_url] {
            assert!(control_free(f), "accepted a control character: {f:?}");
        }
    }
});

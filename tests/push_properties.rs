//! Property tests for the publisher side (SPEC §10): the `STREAM_PUSH` and `PUSH_REWRITE` body
//! parsers against their line counts, the permission patterns against a reference matcher, and
//! the stream key comparison and `key`/`jwt` query reading against arbitrary input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use proptest::prelude::*;
use usher::jwt::token::query_param;
use usher::publish::StreamKeyHash;
use usher::publish::permission::pattern_matches;
use usher::trigger::push::{parse_push_rewrite, parse_stream_push};

/// A field without ASCII control characters (what the parsers accept), possibly empty.
const FIELD: &str = "[^\\x00-\\x1f\\x7f]{0,24}";
/// The same, never empty.
const FIELD_NONEMPTY: &str = "[^\\x00-\\x1f\\x7f]{1,24}";

fn body(fields: &[String], trailing_newline: bool) -> String {
    let mut body = fields.join("\n");
    if trailing_newline {
        body.push('\n');
    }
    body
}

/// The permission rule written out differently: split at the first `*`; no star is an exact
/// match, one star that is the last character a prefix, anything else nothing.
fn reference_match(pattern: &str, stream: &str) -> bool {
    match pattern.find('*') {
        None => pattern == stream,
        Some(i) if i == pattern.len() - 1 => stream.starts_with(&pattern[..i]),
        Some(_) => false,
    }
}

proptest! {
    #[test]
    fn push_parsers_never_panic_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let _ = parse_stream_push(&bytes);
        let _ = parse_push_rewrite(&bytes);
    }

    #[test]
    fn stream_push_of_four_control_free_lines_is_accepted_as_given(
        stream in FIELD_NONEMPTY,
        middle in proptest::collection::vec(FIELD, 2),
        // MistServer always sends the URL; an empty last line is one trailing newline.
        url in FIELD_NONEMPTY,
        trailing_newline in any::<bool>(),
    ) {
        let mut rest = middle.clone();
        rest.push(url);
        let mut fields = vec![stream.clone()];
        fields.extend(rest.iter().cloned());
        let b = body(&fields, trailing_newline);
        let p = parse_stream_push(b.as_bytes());
        prop_assert!(p.is_ok(), "{:?}", p);
        let p = p.unwrap();
        prop_assert_eq!(
            [p.stream, p.host, p.connector, p.push_url],
            [&*stream, &*rest[0], &*rest[1], &*rest[2]]
        );
    }

    #[test]
    fn push_rewrite_of_three_control_free_lines_is_accepted_as_given(
        url in FIELD,
        host in FIELD,
        stream in FIELD_NONEMPTY,
        trailing_newline in any::<bool>(),
    ) {
        let fields = [url.clone(), host.clone(), stream.clone()];
        let b = body(&fields, trailing_newline);
        let p = parse_push_rewrite(b.as_bytes());
        prop_assert!(p.is_ok(), "{:?}", p);
        let p = p.unwrap();
        prop_assert_eq!([p.push_url, p.host, p.stream], [&*url, &*host, &*stream]);
    }

    #[test]
    fn push_bodies_of_any_other_line_count_are_refused(
        fields in proptest::collection::vec(FIELD_NONEMPTY, 0..12),
        trailing_newline in any::<bool>(),
    ) {
        let b = body(&fields, trailing_newline);
        if fields.len() != 4 {
            prop_assert!(parse_stream_push(b.as_bytes()).is_err());
        }
        if fields.len() != 3 {
            prop_assert!(parse_push_rewrite(b.as_bytes()).is_err());
        }
    }

    #[test]
    fn a_control_character_in_a_push_field_is_refused(
        fields in proptest::collection::vec(FIELD_NONEMPTY, 4),
        which in 0usize..4,
        control in prop_oneof![0u8..0x20, Just(0x7f)]
            .prop_filter("not a line ending", |c| *c != b'\n' && *c != b'\r'),
    ) {
        let mut fields = fields;
        fields[which].insert(0, control as char);
        prop_assert!(parse_stream_push(body(&fields, false).as_bytes()).is_err());
        let three = &fields[..3];
        prop_assert!(parse_push_rewrite(body(three, false).as_bytes()).is_err() || which == 3);
    }

    #[test]
    fn permission_patterns_agree_with_the_reference(
        pattern in "[a-c+*]{0,6}",
        stream in "[a-c+*]{0,6}",
    ) {
        prop_assert_eq!(pattern_matches(&pattern, &stream), reference_match(&pattern, &stream));
    }

    #[test]
    fn a_stream_key_matches_exactly_itself(key in ".{0,40}", other in ".{0,40}") {
        let h = StreamKeyHash::of(&key);
        prop_assert!(h.matches(&key));
        prop_assert_eq!(h.matches(&other), key == other);
    }

    #[test]
    fn the_key_parameter_is_found_wherever_it_sits_in_the_query(
        key in "[A-Za-z0-9._~-]{1,40}",
        before in proptest::collection::vec(("[a-z]{1,5}", "[A-Za-z0-9]{0,8}"), 0..4),
        after in proptest::collection::vec(("[a-z]{1,5}", "[A-Za-z0-9]{0,8}"), 0..4),
    ) {
        prop_assume!(before.iter().all(|(k, v)| k != "key" || v.is_empty()));
        let pairs = |v: &[(String, String)]| {
            v.iter().map(|(k, val)| format!("{k}={val}&")).collect::<String>()
        };
        let url = format!("rtmp://h:1935/live/s?{}key={key}&{}", pairs(&before), pairs(&after));
        let found = query_param(&url, "key").map(|k| k.into_owned());
        prop_assert_eq!(found, Some(key.clone()));
        let hidden = format!("rtmp://h/live/s#?key={key}");
        prop_assert!(query_param(&hidden, "key").is_none());
    }
}

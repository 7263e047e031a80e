//! MistServer trigger bodies (SPEC §1) as pure functions over bytes: no I/O, no allocation of the fields.

/// Largest trigger body usher reads (SPEC §3).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A `USER_NEW` body (the first check's 7 lines or a re-check's 6) parses straight into the
/// evaluator's [`Request`]: stream, viewer IP, MistServer's session token (line 3: a JWT, a Bearer
/// token missing its first character, or a short checksum), connector, request URL, session id.
pub use crate::decision::Request as UserNew;

/// A `USER_END` body (12 lines). Only what usher acts on or logs is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserEnd<'a> {
    pub token: &'a str,
    /// Comma-separated stream names.
    pub streams: &'a str,
    pub connectors: &'a str,
    pub duration_s: &'a str,
    pub bytes_up: &'a str,
    pub bytes_down: &'a str,
    pub session_id: &'a str,
}

impl UserEnd<'_> {
    /// The session's streams, without empty names.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.streams.split(',').filter(|s| !s.is_empty())
    }
}

/// Why a body was refused; the reason code is always `bad-trigger`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("expected {expected} lines, got {got}")]
    LineCount { expected: &'static str, got: usize },
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{0} contains a control character")]
    ControlChar(&'static str),
}

/// Splits a body into lines: `\n` separated, one trailing newline tolerated, at most `N + 1` lines
/// looked at so a huge body of newlines costs nothing more.
pub(super) fn lines<const N: usize>(body: &[u8]) -> Result<([&str; N], usize), PayloadError> {
    // Every trigger's whole body is validated, a cached answer's too: `simdutf8` gives the
    // standard validator's verdicts (a test holds them side by side) in fewer instructions.
    let text = simdutf8::basic::from_utf8(body).map_err(|_| PayloadError::NotUtf8)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut out = [""; N];
    let mut count = 0;
    // memchr finds the line ends with vector instructions; a `\n` is one byte of its own in UTF-8,
    // so every cut falls on a character boundary.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain([text.len()]);
    for end in ends {
        let Some(line) = text.get(start..end) else {
            return Err(PayloadError::NotUtf8); // not reached: both ends are line ends
        };
        start = end + 1;
        if count == N {
            return Err(PayloadError::LineCount {
                expected: "fewer",
                got: count + 1,
            });
        }
        out[count] = line.strip_suffix('\r').unwrap_or(line);
        count += 1;
    }
    Ok((out, count))
}

pub(super) fn field<'a>(
    name: &'static str,
    value: &'a str,
    required: bool,
) -> Result<&'a str, PayloadError> {
    if required && value.is_empty() {
        return Err(PayloadError::Empty(name));
    }
    if has_control(value) {
        return Err(PayloadError::ControlChar(name));
    }
    Ok(value)
}

/// Whether `value` holds an ASCII control character. Every byte is looked at, with no early exit,
/// so the loop vectorises: this runs over every byte of every trigger (a JWT line is ~300 bytes).
fn has_control(value: &str) -> bool {
    value
        .bytes()
        .fold(false, |found, b| found | (b < 0x20) | (b == 0x7f))
}

/// Parses a `USER_NEW` body of 6 or 7 lines. Line 7 is not relied upon.
pub fn parse_user_new(body: &[u8]) -> Result<UserNew<'_>, PayloadError> {
    let (l, count) = lines::<7>(body).map_err(|e| match e {
        PayloadError::LineCount { got, .. } => PayloadError::LineCount {
            expected: "6 or 7",
            got,
        },
        e => e,
    })?;
    if count < 6 {
        return Err(PayloadError::LineCount {
            expected: "6 or 7",
            got: count,
        });
    }
    Ok(UserNew {
        stream: field("stream", l[0], true)?,
        viewer_ip: field("viewer_ip", l[1], false)?,
        token: field("token", l[2], false)?,
        connector: field("connector", l[3], false)?,
        request_url: field("request_url", l[4], false)?,
        session_id: field("session_id", l[5], true)?,
    })
}

/// Parses a `USER_END` body of 12 lines.
pub fn parse_user_end(body: &[u8]) -> Result<UserEnd<'_>, PayloadError> {
    let (l, count) = lines::<12>(body).map_err(|e| match e {
        PayloadError::LineCount { got, .. } => PayloadError::LineCount {
            expected: "12",
            got,
        },
        e => e,
    })?;
    if count != 12 {
        return Err(PayloadError::LineCount {
            expected: "12",
            got: count,
        });
    }
    Ok(UserEnd {
        token: field("token", l[0], false)?,
        streams: field("streams", l[1], false)?,
        connectors: field("connectors", l[2], false)?,
        duration_s: field("duration_s", l[4], false)?,
        bytes_up: field("bytes_up", l[5], false)?,
        bytes_down: field("bytes_down", l[6], false)?,
        session_id: field("session_id", l[11], true)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = "e7ba6040a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293ab648";

    fn first_check() -> String {
        format!(
            "vod\n127.0.0.1\nabc\nHLS\nhttp://127.0.0.1:8080/hls/vod/index.m3u8?jwt=abc\n{SESSION}\nfalse"
        )
    }

    #[test]
    fn spec_first_check_body_parses() {
        let body = first_check();
        let u = parse_user_new(body.as_bytes()).unwrap();
        assert_eq!(u.stream, "vod");
        assert_eq!(u.viewer_ip, "127.0.0.1");
        assert_eq!(u.token, "abc");
        assert_eq!(u.connector, "HLS");
        assert_eq!(
            u.request_url,
            "http://127.0.0.1:8080/hls/vod/index.m3u8?jwt=abc"
        );
        assert_eq!(u.session_id, SESSION);
    }

    #[test]
    fn recheck_body_of_six_lines_parses() {
        let body = first_check();
        let six = body.rsplit_once('\n').unwrap().0;
        assert_eq!(parse_user_new(six.as_bytes()).unwrap().session_id, SESSION);
    }

    #[test]
    fn trailing_newline_is_tolerated() {
        let body = format!("{}\n", first_check());
        assert!(parse_user_new(body.as_bytes()).is_ok());
    }

    #[test]
    fn wrong_line_counts_are_bad_triggers() {
        assert!(parse_user_new(b"vod\n127.0.0.1\nabc").is_err());
        let eight = format!("{}\nextra", first_check());
        assert!(parse_user_new(eight.as_bytes()).is_err());
        assert!(parse_user_new(b"").is_err());
        assert!(parse_user_new(&[b'\n'; 10_000]).is_err());
    }

    #[test]
    fn empty_stream_or_session_is_a_bad_trigger() {
        assert_eq!(
            parse_user_new(b"\n1.2.3.4\nt\nHLS\nurl\nsess"),
            Err(PayloadError::Empty("stream"))
        );
        assert_eq!(
            parse_user_new(b"vod\n1.2.3.4\nt\nHLS\nurl\n\nfalse"),
            Err(PayloadError::Empty("session_id"))
        );
    }

    #[test]
    fn a_body_is_utf8_exactly_when_the_standard_library_says_so() {
        let cases: [&[u8]; 12] = [
            b"live\n1.2.3.4",
            "str\u{e9}am\n\u{1f600}".as_bytes(),
            b"\xc3",             // truncated
            b"\xc0\xaf",         // overlong
            b"\xe0\x80\xaf",     // overlong
            b"\xed\xa0\x80",     // surrogate
            b"\xf4\x90\x80\x80", // above U+10FFFF
            b"\xf8\x88\x80\x80\x80",
            b"\xff",
            b"a\x80b",
            b"",
            b"\xef\xbb\xbflive",
        ];
        for body in cases {
            let long = [&b"x".repeat(100)[..], body].concat();
            for body in [body, &long[..]] {
                assert_eq!(
                    matches!(lines::<7>(body), Err(PayloadError::NotUtf8)),
                    std::str::from_utf8(body).is_err(),
                    "{body:?}"
                );
            }
        }
    }

    #[test]
    fn non_utf8_and_control_characters_are_bad_triggers() {
        assert_eq!(
            parse_user_new(b"v\xffd\n1\n2\n3\n4\n5"),
            Err(PayloadError::NotUtf8)
        );
        assert_eq!(
            parse_user_new(b"vod\n1\nt\x00k\nHLS\nurl\nsess"),
            Err(PayloadError::ControlChar("token"))
        );
    }

    #[test]
    fn every_ascii_control_character_is_found_wherever_it_is() {
        for b in (0u8..0x20).chain([0x7f]) {
            for at in [0, 1, 17, 63] {
                let mut v = vec![b'a'; 64];
                v[at] = b;
                let v = String::from_utf8(v).unwrap();
                assert!(has_control(&v), "{b:#x} at {at}");
            }
        }
        assert!(!has_control("eyJhbGciOiJFUzI1NiJ9.e30.c2ln ~ é"));
    }

    #[test]
    fn user_end_parses_twelve_lines() {
        let body = format!("tok\nlive+a,live+b\nHLS\n127.0.0.1\n12\n100\n2000\n\n\n\n\n{SESSION}");
        let e = parse_user_end(body.as_bytes()).unwrap();
        assert_eq!(e.session_id, SESSION);
        assert_eq!(e.stream_names().collect::<Vec<_>>(), ["live+a", "live+b"]);
        assert!(parse_user_end(b"tok\nvod").is_err());
    }

    #[test]
    fn user_end_of_a_denied_session_has_only_token_and_session() {
        let body = format!("tok\n\n\n\n\n\n\n\n\n\n\n{SESSION}\n");
        let e = parse_user_end(body.as_bytes()).unwrap();
        assert_eq!(e.stream_names().count(), 0);
        assert_eq!(e.session_id, SESSION);
    }
}

//! The publisher triggers' bodies (SPEC §1, §10) as pure functions over bytes, in the same
//! line discipline as `USER_NEW`: `\n`-separated, one trailing newline tolerated, no control
//! characters, at most 16 KiB (the endpoint's cap).
//!
//! - `STREAM_PUSH`, 4 lines: `stream`, `host` (the pushing address), `connector`, `request url`
//!   (MistServer 3.10 sends the push URL with its query, e.g. `rtmp://h:1935/live/abc?key=K`).
//! - `PUSH_REWRITE`, 3 lines: `push url` (with its query), `host`, `stream` (the name MistServer
//!   parsed from the URL, query stripped).

use super::payload::{PayloadError, field, lines};
use crate::decision::PushRequest;

/// Parses a `STREAM_PUSH` body of exactly 4 lines.
pub fn parse_stream_push(body: &[u8]) -> Result<PushRequest<'_>, PayloadError> {
    let l = exactly::<4>(body, "4")?;
    Ok(PushRequest {
        stream: field("stream", l[0], true)?,
        host: field("host", l[1], false)?,
        connector: field("connector", l[2], false)?,
        push_url: field("push_url", l[3], false)?,
    })
}

/// Parses a `PUSH_REWRITE` body of exactly 3 lines. It names no connector.
pub fn parse_push_rewrite(body: &[u8]) -> Result<PushRequest<'_>, PayloadError> {
    let l = exactly::<3>(body, "3")?;
    Ok(PushRequest {
        push_url: field("push_url", l[0], false)?,
        host: field("host", l[1], false)?,
        stream: field("stream", l[2], true)?,
        connector: "",
    })
}

fn exactly<'a, const N: usize>(
    body: &'a [u8],
    expected: &'static str,
) -> Result<[&'a str; N], PayloadError> {
    let (l, count) = lines::<N>(body).map_err(|e| match e {
        PayloadError::LineCount { got, .. } => PayloadError::LineCount { expected, got },
        e => e,
    })?;
    if count != N {
        return Err(PayloadError::LineCount {
            expected,
            got: count,
        });
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_push_as_mistserver_sends_it_parses() {
        let body = b"live+abc\n127.0.0.1\nRTMP\nrtmp://127.0.0.1:1935/live/live+abc?key=K";
        let p = parse_stream_push(body).unwrap();
        assert_eq!(p.stream, "live+abc");
        assert_eq!(p.host, "127.0.0.1");
        assert_eq!(p.connector, "RTMP");
        assert_eq!(p.push_url, "rtmp://127.0.0.1:1935/live/live+abc?key=K");
        let trailing = b"live+abc\n127.0.0.1\nRTMP\nrtmp://h/live/x\n";
        assert!(parse_stream_push(trailing).is_ok());
    }

    #[test]
    fn push_rewrite_as_mistserver_sends_it_parses() {
        let body = b"rtmp://127.0.0.1:1935/live/live+abc?jwt=T\n127.0.0.1\nlive+abc";
        let p = parse_push_rewrite(body).unwrap();
        assert_eq!(p.stream, "live+abc");
        assert_eq!(p.push_url, "rtmp://127.0.0.1:1935/live/live+abc?jwt=T");
        assert_eq!(p.connector, "");
    }

    #[test]
    fn wrong_line_counts_empty_streams_and_controls_are_bad_triggers() {
        assert!(parse_stream_push(b"a\nb\nc").is_err());
        assert!(parse_stream_push(b"a\nb\nc\nd\ne").is_err());
        assert!(parse_push_rewrite(b"a\nb").is_err());
        assert!(parse_push_rewrite(b"a\nb\nc\nd").is_err());
        assert_eq!(
            parse_push_rewrite(b"url\nhost\n"),
            Err(PayloadError::LineCount {
                expected: "3",
                got: 2
            })
        );
        assert_eq!(
            parse_stream_push(b"\nh\nRTMP\nurl"),
            Err(PayloadError::Empty("stream"))
        );
        assert_eq!(
            parse_stream_push(b"s\nh\nRTMP\nurl\x01"),
            Err(PayloadError::ControlChar("push_url"))
        );
        assert_eq!(
            parse_push_rewrite(b"u\xff\nh\ns"),
            Err(PayloadError::NotUtf8)
        );
        assert!(parse_stream_push(&[b'\n'; 10_000]).is_err());
    }
}

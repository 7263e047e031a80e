//! Which string is the viewer's token (SPEC §3): the `jwt` query parameter of the URL MistServer
//! rebuilt, else line 3 of the trigger body when it is a JWS, after undoing MistServer 3.10's
//! habit of dropping the first character of a Bearer token (`eyJ…` arrives as `yJ…`).

use std::borrow::Cow;

/// The token for a `jwt` or `webhook` policy: the `jwt` query parameter of `request_url`; else
/// `line3` when it is a JWS compact string, repairing MistServer's Bearer quirk (`yJ…` → `eyJ…`).
/// An empty `jwt` parameter counts as absent.
pub fn extract<'a>(request_url: &'a str, line3: &'a str) -> Option<Cow<'a, str>> {
    if let Some(jwt) = query_jwt(request_url) {
        return Some(jwt);
    }
    if !looks_like_jws(line3) {
        return None;
    }
    // A JOSE header is a JSON object, so its base64url always starts `eyJ` (`{"`); `yJ` can
    // only be a header that lost its first character.
    if line3.starts_with("yJ") {
        return Some(Cow::Owned(format!("e{line3}")));
    }
    Some(Cow::Borrowed(line3))
}

/// The first non-empty `jwt` query parameter, percent-decoded. The query is found the way the URL
/// standard finds it (after the first `?`, before the first `#`, surrounding spaces and controls
/// trimmed) without building a parsed URL: this runs for every `USER_NEW` the cache cannot answer.
/// MistServer rebuilds the URL from the request's Host header, which a client controls, so a URL
/// that would not parse still has a query string worth reading.
fn query_jwt(request_url: &str) -> Option<Cow<'_, str>> {
    query_param(request_url, "jwt")
}

/// The first non-empty `name` query parameter of `url`, percent-decoded, found as
/// [`query_jwt`] finds `jwt` (the push triggers read `jwt` and `key` from push URLs with it).
pub fn query_param<'a>(url: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let url = trim_controls_and_spaces(url);
    if memchr::memchr3(b'\t', b'\n', b'\r', url.as_bytes()).is_some() {
        // The URL parser drops these anywhere; they never reach here from a trigger body.
        let cleaned: String = url
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .collect();
        return query_param(&cleaned, name).map(|v| Cow::Owned(v.into_owned()));
    }
    // Every delimiter is ASCII, so each cut below falls on a character boundary.
    let before_fragment = memchr::memchr(b'#', url.as_bytes()).map_or(url, |i| &url[..i]);
    let query = &before_fragment[memchr::memchr(b'?', before_fragment.as_bytes())? + 1..];
    // Pairs split on `&` and at their first `=`, as `application/x-www-form-urlencoded` has it. A
    // pair without `%` or `+` decodes to itself, so it is compared and borrowed as it stands;
    // only a pair with escapes goes through the standard decoder.
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .find_map(|pair| {
            let (key, value) = if memchr::memchr2(b'%', b'+', pair.as_bytes()).is_none() {
                let (key, value) = match memchr::memchr(b'=', pair.as_bytes()) {
                    Some(i) => (&pair[..i], &pair[i + 1..]),
                    None => (pair, ""),
                };
                (Cow::Borrowed(key), Cow::Borrowed(value))
            } else {
                url::form_urlencoded::parse(pair.as_bytes()).next()?
            };
            (key == name && !value.is_empty()).then_some(value)
        })
}

/// `url` without leading and trailing C0 controls and spaces (the URL standard's trim). They
/// are all single bytes below `!`, which no byte of a multi-byte character is.
fn trim_controls_and_spaces(url: &str) -> &str {
    let bytes = url.as_bytes();
    let start = bytes.iter().position(|b| *b > b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| *b > b' ')
        .map_or(start, |i| i + 1);
    url.get(start..end).unwrap_or_default()
}

/// Three dot-separated parts of `[A-Za-z0-9_-]`, header and payload non-empty (the signature may
/// be empty, so an unsigned token reaches the check and is refused there with a precise reason).
fn looks_like_jws(s: &str) -> bool {
    let is_b64url = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut it = s.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(sig), None) => {
            !h.is_empty() && !p.is_empty() && is_b64url(h) && is_b64url(p) && is_b64url(sig)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9.c2ln";

    #[test]
    fn jwt_query_parameter_of_the_spec_example_is_the_token() {
        let url = "http://127.0.0.1:8080/hls/vod/index.m3u8?jwt=abc";
        assert_eq!(extract(url, "abc").as_deref(), Some("abc"));
    }

    #[test]
    fn jwt_query_parameter_wins_over_line3() {
        let url = format!("http://h/hls/x/index.m3u8?a=1&jwt={JWS}&z=2");
        assert_eq!(extract(&url, "eyJx.eyJy.z").as_deref(), Some(JWS));
    }

    #[test]
    fn jwt_query_parameter_is_percent_decoded() {
        let url = "http://h/p?jwt=ab%2Ecd%2Eef";
        assert_eq!(extract(url, "").as_deref(), Some("ab.cd.ef"));
    }

    #[test]
    fn unparsable_url_falls_back_to_a_manual_query_split() {
        let url = format!("http://[bad host/p?x=1&jwt={JWS}#frag");
        assert!(url::Url::parse(&url).is_err());
        assert_eq!(extract(&url, "").as_deref(), Some(JWS));
        assert_eq!(extract("no query at all", "").as_deref(), None);
    }

    /// What the `url` crate's parser makes of the same URL (the reference the scan must match).
    fn parsed_jwt(url: &str) -> Option<String> {
        let url = url::Url::parse(url).ok()?;
        url.query_pairs()
            .find(|(k, v)| k == "jwt" && !v.is_empty())
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn the_query_scan_agrees_with_the_url_parser() {
        let urls = [
            "http://127.0.0.1:8080/hls/vod/index.m3u8?jwt=abc",
            "http://h/p?a=1&jwt=x.y.z&jwt=second",
            "http://h/p?jwt=&jwt=later",
            "http://h/p#frag?jwt=hidden",
            "http://h/p?x=1#jwt=in-fragment",
            "http://h/p?jwt=a%2Eb+c%20d",
            "http://h/p?jwt=%zz%2",
            "http://a?jwt=b@h/p",
            "http://h/p?JWT=upper&jwt=lower",
            "  http://h/p?jwt=padded  ",
            "\u{0}\u{1f} http://h/p?jwt=controls \u{1}",
            "http://h/p?jwt=caf\u{e9}&x",
            "http://h/p%3Fjwt=escaped-in-path",
            "http://h/p?a=b;jwt=semicolon",
            "http://h/p?=jwt&jwt==eq",
            "http://h/p?jwt=x\ty",
            "http://h/p?&&jwt=after-empty-pairs&",
            "http://h/p?jwt",
            "http://h/p?jw%74=escaped-name&jwt=plain",
            "http://h/p?jwt+=plus-in-name&jwt=plain",
            "http://h/p?jwt=%E2%82%AC&jwt=plain",
            "http://h/p?jwt=%FF",
            "http://h/p",
        ];
        for url in urls {
            let scanned = query_jwt(url).map(Cow::into_owned);
            assert_eq!(scanned, parsed_jwt(url), "{url:?}");
        }
    }

    #[test]
    fn a_parameter_without_escapes_is_borrowed_and_one_with_escapes_decoded() {
        let url = format!("http://h/p?a%20b=1&jwt={JWS}&x=y");
        assert!(matches!(query_jwt(&url), Some(Cow::Borrowed(t)) if t == JWS));
        let url = "http://h/p?j%77t=a%2Eb&jwt=late";
        assert_eq!(query_jwt(url).as_deref(), Some("a.b"));
        assert_eq!(
            query_param("http://h/p?key=a+b", "key").as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn empty_jwt_parameter_falls_through_to_line3() {
        assert_eq!(extract("http://h/p?jwt=", JWS).as_deref(), Some(JWS));
    }

    #[test]
    fn line3_jws_is_the_token_when_the_url_has_none() {
        let got = extract("http://h/p?tkn=x", JWS);
        assert!(matches!(got, Some(Cow::Borrowed(t)) if t == JWS));
    }

    #[test]
    fn bearer_token_missing_its_first_character_is_repaired() {
        let got = extract("http://h/p", &JWS[1..]);
        assert_eq!(got.as_deref(), Some(JWS));
    }

    #[test]
    fn short_checksum_in_line3_is_no_token() {
        assert_eq!(extract("http://h/p", "e7ba6040b648"), None);
        assert_eq!(extract("http://h/p", "yJabc"), None);
        assert_eq!(extract("http://h/p", ""), None);
    }

    #[test]
    fn line3_with_foreign_characters_or_part_count_is_no_token() {
        assert_eq!(extract("http://h/p", "a.b"), None);
        assert_eq!(extract("http://h/p", "a.b.c.d"), None);
        assert_eq!(extract("http://h/p", "a+b.c.d"), None);
        assert_eq!(extract("http://h/p", ".b.c"), None);
        assert_eq!(extract("http://h/p", "a..c"), None);
        assert_eq!(extract("http://h/p", "a.b.c "), None);
    }

    #[test]
    fn unsigned_jws_in_line3_still_reaches_the_check() {
        assert_eq!(
            extract("http://h/p", "eyJh.eyJi.").as_deref(),
            Some("eyJh.eyJi.")
        );
    }
}

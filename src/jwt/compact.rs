//! The JWS compact serialization (RFC 7515 §7.1): three base64url parts joined by dots. Every
//! structural fault is found here, before any JSON is parsed or any key is touched, and without
//! decoding anything, so each part is base64-decoded exactly once later on.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Fail;
use crate::reason::Reason;

/// Longest token usher looks at (SPEC §3).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A token split into its parts, each known to be canonical unpadded base64url.
#[derive(Debug, Clone, Copy)]
pub(super) struct Parts<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
}

fn not_a_jws(detail: &'static str) -> Fail {
    Fail::new(Reason::JwtNotAJws, detail)
}

/// Splits a token and checks each part's alphabet, length and trailing bits.
pub(super) fn split(token: &str) -> Result<Parts<'_>, Fail> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(not_a_jws("token is longer than 8 KiB"));
    }
    let bytes = token.as_bytes();
    let mut dots = memchr::memchr_iter(b'.', bytes);
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(not_a_jws("token is not three dot-separated parts"));
    };
    // The dots are ASCII, so every cut falls on a character boundary.
    let (header, payload, signature) = (
        &token[..first],
        &token[first + 1..second],
        &token[second + 1..],
    );
    if header.is_empty() || payload.is_empty() {
        return Err(not_a_jws("token has an empty header or payload"));
    }
    for part in [header, payload, signature] {
        if !is_canonical_b64url(part.as_bytes()) {
            return Err(not_a_jws("token part is not unpadded base64url"));
        }
    }
    // The two parts and the dot between them are a prefix of `token`.
    let signing_input = token
        .get(..header.len() + 1 + payload.len())
        .unwrap_or_default();
    Ok(Parts {
        header,
        payload,
        signature,
        signing_input,
    })
}

/// Decodes a part that [`split`] accepted.
pub(super) fn decode(part: &str) -> Result<Vec<u8>, Fail> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| not_a_jws("token part is not unpadded base64url"))
}

/// Each byte's base64url value, or [`NOT_B64URL`].
const B64URL_VALUES: [u8; 256] = {
    let mut table = [NOT_B64URL; 256];
    let alphabet = URL_SAFE_ALPHABET;
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const URL_SAFE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const NOT_B64URL: u8 = 0x80;

/// Unpadded base64url whose unused trailing bits are zero (RFC 4648 §3.5), so that every byte
/// string has exactly one accepted spelling.
fn is_canonical_b64url(part: &[u8]) -> bool {
    // One table lookup a byte, no early exit: a token is a few hundred bytes.
    let seen = part
        .iter()
        .fold(0u8, |seen, c| seen | B64URL_VALUES[*c as usize]);
    if seen & NOT_B64URL != 0 {
        return false;
    }
    let unused_mask = match part.len() % 4 {
        0 => return true,
        1 => return false,
        2 => 0b1111,
        _ => 0b0011,
    };
    part.last()
        .is_some_and(|c| B64URL_VALUES[*c as usize] & unused_mask == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_base64url_is_accepted_and_variants_are_not() {
        assert!(is_canonical_b64url(b""));
        assert!(is_canonical_b64url(b"eyJ9"));
        assert!(is_canonical_b64url(b"QQ")); // "A"
        assert!(!is_canonical_b64url(b"QR")); // "A" with a stray trailing bit
        assert!(is_canonical_b64url(b"QUI")); // "AB"
        assert!(!is_canonical_b64url(b"QUJ"));
        assert!(!is_canonical_b64url(b"QQ=="));
        assert!(!is_canonical_b64url(b"Q"));
        assert!(!is_canonical_b64url(b"a+b/"));
        assert!(!is_canonical_b64url(b"ab c"));
    }

    #[test]
    fn exactly_the_base64url_alphabet_is_accepted_at_every_byte_value() {
        for b in 0..=255u8 {
            let in_alphabet = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(
                is_canonical_b64url(&[b'A', b'A', b'A', b]),
                in_alphabet,
                "{b:#04x}"
            );
            assert_eq!(
                is_canonical_b64url(&[b, b'A', b'A', b'A']),
                in_alphabet,
                "{b:#04x}"
            );
        }
    }

    #[test]
    fn split_finds_the_signing_input() {
        let parts = split("QQ.QUI.QUJD").unwrap();
        assert_eq!(parts.header, "QQ");
        assert_eq!(parts.payload, "QUI");
        assert_eq!(parts.signature, "QUJD");
        assert_eq!(parts.signing_input, "QQ.QUI");
    }

    #[test]
    fn split_accepts_an_empty_signature_but_not_an_empty_payload() {
        assert!(split("QQ.QQ.").is_ok());
        assert!(split("QQ..QQ").is_err());
        assert!(split(".QQ.QQ").is_err());
    }
}

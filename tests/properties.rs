//! Property tests: the address classifier against an independent table of SPEC §4, the trigger
//! body parsers against SPEC §1's line counts, and the JWT time window of SPEC §3.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use proptest::prelude::*;
use usher::jwt::{self, JwtContext};
use usher::keys::keygen::{Es256KeyPair, generate_es256};
use usher::keys::material::{KeyMaterial, load};
use usher::keys::sign::{SignOptions, sign};
use usher::keys::{KeyAlg, KeySource, TenantKeys};
use usher::net::addr::AddressPolicy;
use usher::policy::model::JwtPolicy;
use usher::reason::Reason;
use usher::trigger::payload::{parse_user_end, parse_user_new};

// ---------------------------------------------------------------------------------------------
// (a) Address classification, judged by plain integer range arithmetic.

/// SPEC §4 refused IPv4 ranges as (first address, prefix length).
const SPEC_V4: [(u32, u32); 15] = [
    (0x0000_0000, 8),  // 0/8
    (0x0a00_0000, 8),  // 10/8
    (0x6440_0000, 10), // 100.64/10
    (0x7f00_0000, 8),  // 127/8
    (0xa9fe_0000, 16), // 169.254/16
    (0xac10_0000, 12), // 172.16/12
    (0xc000_0000, 24), // 192.0.0/24
    (0xc000_0200, 24), // 192.0.2/24
    (0xc058_6300, 24), // 192.88.99/24
    (0xc0a8_0000, 16), // 192.168/16
    (0xc612_0000, 15), // 198.18/15
    (0xc633_6400, 24), // 198.51.100/24
    (0xcb00_7100, 24), // 203.0.113/24
    (0xe000_0000, 4),  // 224/4
    (0xf000_0000, 4),  // 240/4
];

/// SPEC §4 refused IPv6 ranges, plus `::/96` (IPv4-compatible, deprecated), which usher refuses
/// outright as documented on `AddressPolicy` — stricter than SPEC, never looser.
const SPEC_V6: [(u128, u32); 10] = [
    (0, 128),                // ::/128
    (1, 128),                // ::1/128
    (0, 96),                 // ::/96 (IPv4-compatible; usher's addition)
    (0x0100 << 112, 64),     // 100::/64
    (0x2001 << 112, 23),     // 2001::/23
    (0x2001_0db8 << 96, 32), // 2001:db8::/32
    (0xfc00 << 112, 7),      // fc00::/7
    (0xfe80 << 112, 10),     // fe80::/10
    (0xfec0 << 112, 10),     // fec0::/10
    (0xff00 << 112, 8),      // ff00::/8
];

fn in_v4(addr: u32, (first, len): (u32, u32)) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    addr & mask == first
}

fn in_v6(addr: u128, (first, len): (u128, u32)) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    addr & mask == first
}

fn oracle_v4(addr: u32) -> bool {
    !SPEC_V4.iter().any(|r| in_v4(addr, *r))
}

fn oracle_v6(addr: u128) -> bool {
    let low32 = addr as u32;
    if addr >> 32 == 0xffff {
        return oracle_v4(low32); // ::ffff:0:0/96
    }
    if addr >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return oracle_v4(low32); // 64:ff9b::/96
    }
    if addr >> 80 == 0x0064_ff9b_0001 {
        return oracle_v4(low32); // 64:ff9b:1::/48
    }
    if addr >> 112 == 0x2002 {
        return oracle_v4((addr >> 80) as u32); // 2002::/16, IPv4 in bits 16..48
    }
    !SPEC_V6.iter().any(|r| in_v6(addr, *r))
}

/// IPv4 addresses: anywhere, or at and around the edges of a refused range.
fn any_v4() -> impl Strategy<Value = u32> {
    let near_edge = (0..SPEC_V4.len(), any::<bool>(), -2i64..=2).prop_map(|(i, last, d)| {
        let (first, len) = SPEC_V4[i];
        let size = 1u64 << (32 - len);
        let edge = if last {
            first as u64 + size - 1
        } else {
            first as u64
        };
        (edge as i64 + d).clamp(0, u32::MAX as i64) as u32
    });
    let inside = (0..SPEC_V4.len(), any::<u32>()).prop_map(|(i, r)| {
        let (first, len) = SPEC_V4[i];
        first | (r & (u32::MAX >> len))
    });
    // The range and a range-sized neighbour on each side, so a wrong prefix length shows.
    let around = (0..SPEC_V4.len(), any::<u64>()).prop_map(|(i, r)| {
        let (first, len) = SPEC_V4[i];
        let size = 1i64 << (32 - len);
        (first as i64 - size + (r % (3 * size as u64)) as i64).clamp(0, u32::MAX as i64) as u32
    });
    prop_oneof![any::<u32>(), near_edge, inside, around]
}

/// IPv6 addresses: anywhere, inside a refused range, or an IPv4 embedding of [`any_v4`].
fn any_v6() -> impl Strategy<Value = u128> {
    let inside = (0..SPEC_V6.len(), any::<u128>()).prop_map(|(i, r)| {
        let (first, len) = SPEC_V6[i];
        first | (r & u128::MAX.checked_shr(len).unwrap_or(0))
    });
    let embedded = (0..4u8, any_v4(), any::<u128>()).prop_map(|(form, v4, noise)| {
        let v4 = v4 as u128;
        match form {
            0 => 0xffff_0000_0000 | v4,
            1 => (0x0064_ff9b << 96) | v4,
            // 64:ff9b:1::/48: bits 48..96 are free.
            2 => (0x0064_ff9b_0001 << 80) | (noise & (((1u128 << 48) - 1) << 32)) | v4,
            // 2002::/16: the IPv4 address in bits 16..48, the rest free.
            _ => (0x2002 << 112) | (v4 << 80) | (noise & ((1u128 << 80) - 1)),
        }
    });
    // The range and a range-sized neighbour on each side, so a wrong prefix length shows.
    let around = (0..SPEC_V6.len(), any::<u128>()).prop_map(|(i, r)| {
        let (first, len) = SPEC_V6[i];
        let size = 1u128.checked_shl(128 - len).unwrap_or(0);
        match size.checked_mul(3) {
            Some(span) if span > 0 => first.wrapping_sub(size).wrapping_add(r % span),
            _ => r,
        }
    });
    prop_oneof![any::<u128>(), inside, embedded, around]
}

proptest! {
    #[test]
    fn ipv4_classification_agrees_with_the_spec_table(addr in any_v4()) {
        let ip = IpAddr::V4(Ipv4Addr::from(addr));
        prop_assert_eq!(AddressPolicy::default().allows(ip), oracle_v4(addr), "{}", ip);
    }

    #[test]
    fn ipv6_classification_agrees_with_the_spec_table(addr in any_v6()) {
        let ip = IpAddr::V6(Ipv6Addr::from(addr));
        prop_assert_eq!(AddressPolicy::default().allows(ip), oracle_v6(addr), "{}", ip);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Trigger bodies.

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

proptest! {
    #[test]
    fn trigger_parsers_never_panic_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let _ = parse_user_new(&bytes);
        let _ = parse_user_end(&bytes);
    }

    #[test]
    fn user_new_of_six_or_seven_control_free_lines_is_accepted_as_given(
        stream in FIELD_NONEMPTY,
        middle in proptest::collection::vec(FIELD, 4),
        session in FIELD_NONEMPTY,
        line7 in proptest::option::of(FIELD),
        trailing_newline in any::<bool>(),
    ) {
        let mut fields = vec![stream.clone()];
        fields.extend(middle.iter().cloned());
        fields.push(session.clone());
        fields.extend(line7);
        let body = body(&fields, trailing_newline);
        let u = parse_user_new(body.as_bytes());
        prop_assert!(u.is_ok(), "{:?}: {:?}", body, u);
        let u = u.unwrap();
        prop_assert_eq!(u.stream, &stream);
        prop_assert_eq!(
            [u.viewer_ip, u.token, u.connector, u.request_url],
            [&*middle[0], &*middle[1], &*middle[2], &*middle[3]]
        );
        prop_assert_eq!(u.session_id, &session);
    }

    #[test]
    fn user_new_of_any_other_line_count_is_refused(
        fields in proptest::collection::vec(FIELD_NONEMPTY, 0..16),
        trailing_newline in any::<bool>(),
    ) {
        prop_assume!(fields.len() != 6 && fields.len() != 7);
        prop_assert!(parse_user_new(body(&fields, trailing_newline).as_bytes()).is_err());
    }

    #[test]
    fn user_new_with_a_control_character_in_any_field_is_refused(
        fields in proptest::collection::vec(FIELD_NONEMPTY, 6..=7),
        which in 0usize..7,
        at in any::<proptest::sample::Index>(),
        control in prop_oneof![0u8..0x20, Just(0x7f)].prop_filter("not a line break", |c| *c != b'\n'),
    ) {
        let which = which % fields.len();
        let mut fields = fields;
        let field = &mut fields[which];
        let chars: Vec<char> = field.chars().collect();
        let pos = at.index(chars.len() + 1);
        let mut s: String = chars[..pos].iter().collect();
        s.push(control as char);
        s.extend(&chars[pos..]);
        *field = s;
        // `\r` right before a line break is a CRLF line ending, which the parser tolerates.
        let ends_line = control == b'\r' && fields[which].ends_with('\r');
        prop_assume!(!ends_line);
        // Line 7 is not looked at.
        prop_assume!(which < 6);
        prop_assert!(parse_user_new(body(&fields, false).as_bytes()).is_err());
    }

    #[test]
    fn user_end_of_twelve_control_free_lines_is_accepted_as_given(
        fields in proptest::collection::vec(FIELD, 11),
        session in FIELD_NONEMPTY,
        trailing_newline in any::<bool>(),
    ) {
        let mut fields = fields;
        fields.push(session.clone());
        let body = body(&fields, trailing_newline);
        let e = parse_user_end(body.as_bytes());
        prop_assert!(e.is_ok(), "{:?}: {:?}", body, e);
        let e = e.unwrap();
        prop_assert_eq!(e.token, &fields[0]);
        prop_assert_eq!(e.streams, &fields[1]);
        prop_assert_eq!(e.session_id, &session);
    }

    #[test]
    fn user_end_of_any_other_line_count_is_refused(
        fields in proptest::collection::vec(FIELD_NONEMPTY, 0..24),
        trailing_newline in any::<bool>(),
    ) {
        prop_assume!(fields.len() != 12);
        prop_assert!(parse_user_end(body(&fields, trailing_newline).as_bytes()).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// (c) The JWT time window: exp and nbf with the 60 s leeway.

/// A fixed "now", used both to sign and to check, so the property has no clock race at all.
const NOW: i64 = 1_700_000_000;

struct Signer {
    pair: Es256KeyPair,
    keys: TenantKeys,
}

static SIGNER: LazyLock<Signer> = LazyLock::new(|| {
    let pair = generate_es256("prop-k1").expect("keygen");
    let key = load(
        "prop-k1",
        "t1",
        Some(KeyAlg::Es256),
        KeyMaterial::Pem(&pair.public_pem),
        KeySource::Config,
    )
    .expect("public key loads");
    let mut keys = TenantKeys::default();
    keys.insert(std::sync::Arc::new(key));
    Signer { pair, keys }
});

/// Offsets in seconds, away from the leeway edges `edge - 1 ..= edge + 1`.
fn offset_avoiding(edge: i64) -> impl Strategy<Value = i64> {
    prop_oneof![-200_000i64..200_000, (edge - 120)..(edge + 120)]
        .prop_filter("not within 1 s of the leeway edge", move |o| {
            (o - edge).abs() > 1
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn token_of_a_held_key_is_allowed_exactly_when_exp_and_nbf_are_in_range(
        exp_in in offset_avoiding(-60),
        nbf_in in proptest::option::of(offset_avoiding(60)),
    ) {
        let signer = &*SIGNER;
        let opts = SignOptions {
            kid: "prop-k1".into(),
            exp_in_s: Some(exp_in),
            nbf_in_s: nbf_in,
            ..Default::default()
        };
        let token = sign(signer.pair.private_pem.as_bytes(), &opts, NOW).expect("signs");
        let ctx = JwtContext { object_id: "abc123", viewer_ip: "10.1.2.3", now_unix_s: NOW as f64, keep: jwt::Kept::Also(&[]) };
        let got = jwt::check(&token, &signer.keys, &JwtPolicy::default(), &ctx);
        let expired = exp_in < -60;
        let early = nbf_in.is_some_and(|n| n > 60);
        match got {
            Ok(v) => prop_assert!(!expired && !early, "allowed exp_in={} nbf_in={:?}: {:?}", exp_in, nbf_in, v.claims),
            Err(r) => {
                let want = if expired { Reason::JwtExpired } else { Reason::JwtNotYetValid };
                prop_assert!(expired || early, "denied {} exp_in={} nbf_in={:?}", r.reason, exp_in, nbf_in);
                prop_assert_eq!(r.reason, want);
            }
        }
    }
}

//! `usher sign`: makes a token with a private key, so operators and tests can check a setup end to
//! end. The CLI only parses arguments into [`SignOptions`]; everything else happens here.

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value};

use super::{KeyAlg, KeyFamily};

/// Lifetime of a token when `--exp-in` is not given.
pub const DEFAULT_EXP_IN_S: i64 = 3600;

/// What to put in the token.
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// The header `kid`.
    pub kid: String,
    /// The algorithm; the key file must be of this type.
    pub alg: KeyAlg,
    /// `exp` = now + this (default [`DEFAULT_EXP_IN_S`]; may be negative for expired test tokens).
    pub exp_in_s: Option<i64>,
    /// `nbf` = now + this, when given.
    pub nbf_in_s: Option<i64>,
    /// The `aud` claim.
    pub aud: Option<String>,
    /// The `sub` claim.
    pub sub: Option<String>,
    /// The `ipa` claim: an IP address or CIDR the viewer must be in.
    pub ipa: Option<String>,
    /// Extra claims, in order; a later one replaces an earlier one, and they may replace the
    /// registered claims above (useful for making deliberately broken test tokens).
    pub claims: Vec<(String, Value)>,
}

/// Why a token could not be made. Never contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key file is not a private key of the requested algorithm.
    #[error("the key is not a {0} private key (PKCS#8 PEM, or the shared secret file for HS*)")]
    BadKey(KeyAlg),
    /// `--ipa` is neither an IP address nor a CIDR.
    #[error("ipa must be an IP address or a CIDR")]
    BadIpa,
    /// `--claim` is not `NAME=JSON`.
    #[error("a claim is given as NAME=JSON, e.g. tier=\"pro\"")]
    BadClaim,
    /// `kid` is empty.
    #[error("kid must not be empty")]
    EmptyKid,
    /// Signing failed (not expected once the key loaded).
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Parses `--claim NAME=JSON`. A value that is not JSON is taken as a string, so `tier=pro`
/// and `tier="pro"` mean the same.
pub fn parse_claim_arg(arg: &str) -> Result<(String, Value), SignError> {
    let (name, raw) = arg.split_once('=').ok_or(SignError::BadClaim)?;
    if name.is_empty() {
        return Err(SignError::BadClaim);
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((name.to_owned(), value))
}

/// Signs a token. `key` is a PEM private key (PKCS#8; PKCS#1 too for RSA), or the raw shared
/// secret for HS*.
pub fn sign(key: &[u8], opts: &SignOptions, now_unix_s: i64) -> Result<String, SignError> {
    if opts.kid.is_empty() {
        return Err(SignError::EmptyKid);
    }
    let encoding = encoding_key(key, opts.alg)?;
    let mut header = Header::new(opts.alg.jwt_algorithm());
    header.kid = Some(opts.kid.clone());
    header.typ = Some("JWT".into());
    let claims = claims(opts, now_unix_s)?;
    jsonwebtoken::encode(&header, &claims, &encoding).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
        | jsonwebtoken::errors::ErrorKind::InvalidEddsaKey
        | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
        | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
        | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => SignError::BadKey(opts.alg),
        _ => SignError::Sign(e.to_string()),
    })
}

fn encoding_key(key: &[u8], alg: KeyAlg) -> Result<EncodingKey, SignError> {
    let loaded = match alg.family() {
        KeyFamily::Hmac if key.is_empty() => return Err(SignError::BadKey(alg)),
        KeyFamily::Hmac => Ok(EncodingKey::from_secret(key)),
        KeyFamily::Ec => EncodingKey::from_ec_pem(key),
        KeyFamily::Okp => EncodingKey::from_ed_pem(key),
        KeyFamily::Rsa => EncodingKey::from_rsa_pem(key),
    };
    loaded.map_err(|_| SignError::BadKey(alg))
}

fn claims(opts: &SignOptions, now: i64) -> Result<Map<String, Value>, SignError> {
    let mut claims = Map::new();
    claims.insert("iat".into(), now.into());
    let exp = now.saturating_add(opts.exp_in_s.unwrap_or(DEFAULT_EXP_IN_S));
    claims.insert("exp".into(), exp.into());
    if let Some(nbf_in) = opts.nbf_in_s {
        claims.insert("nbf".into(), now.saturating_add(nbf_in).into());
    }
    if let Some(aud) = &opts.aud {
        claims.insert("aud".into(), aud.as_str().into());
    }
    if let Some(sub) = &opts.sub {
        claims.insert("sub".into(), sub.as_str().into());
    }
    if let Some(ipa) = &opts.ipa {
        // An IP or a CIDR, as the token check reads `ipa` (keys stay below jwt: no cycle).
        let valid = ipa.parse::<ipnet::IpNet>().is_ok() || ipa.parse::<std::net::IpAddr>().is_ok();
        if !valid {
            return Err(SignError::BadIpa);
        }
        claims.insert("ipa".into(), ipa.as_str().into());
    }
    for (name, value) in &opts.claims {
        claims.insert(name.clone(), value.clone());
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn payload(token: &str) -> Value {
        let part = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn claim_arg_takes_json_or_falls_back_to_a_string() {
        assert_eq!(
            parse_claim_arg("tier=\"pro\"").unwrap(),
            ("tier".into(), Value::from("pro"))
        );
        assert_eq!(
            parse_claim_arg("tier=pro").unwrap(),
            ("tier".into(), Value::from("pro"))
        );
        assert_eq!(
            parse_claim_arg("n=42").unwrap(),
            ("n".into(), Value::from(42))
        );
        assert_eq!(
            parse_claim_arg("x={\"a\":[1]}").unwrap().1,
            serde_json::json!({"a": [1]})
        );
        assert_eq!(parse_claim_arg("eq=a=b").unwrap().1, Value::from("a=b"));
        assert!(parse_claim_arg("noequals").is_err());
        assert!(parse_claim_arg("=1").is_err());
    }

    #[test]
    fn hs256_token_carries_header_and_registered_claims() {
        let opts = SignOptions {
            kid: "k1".into(),
            alg: KeyAlg::Hs256,
            nbf_in_s: Some(-5),
            aud: Some("viewer".into()),
            sub: Some("abc".into()),
            ipa: Some("10.0.0.0/8".into()),
            claims: vec![("tier".into(), "pro".into())],
            ..SignOptions::default()
        };
        let token = sign(b"0123456789abcdef0123", &opts, 1000).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
        let claims = payload(&token);
        assert_eq!(claims["iat"], 1000);
        assert_eq!(claims["exp"], 1000 + DEFAULT_EXP_IN_S);
        assert_eq!(claims["nbf"], 995);
        assert_eq!(claims["aud"], "viewer");
        assert_eq!(claims["sub"], "abc");
        assert_eq!(claims["ipa"], "10.0.0.0/8");
        assert_eq!(claims["tier"], "pro");
    }

    #[test]
    fn extra_claims_replace_registered_ones() {
        let opts = SignOptions {
            kid: "k1".into(),
            alg: KeyAlg::Hs256,
            claims: vec![("exp".into(), "soon".into())],
            ..SignOptions::default()
        };
        let token = sign(b"0123456789abcdef", &opts, 1000).unwrap();
        assert_eq!(payload(&token)["exp"], "soon");
    }

    #[test]
    fn sign_refuses_a_key_of_the_wrong_type_without_echoing_it() {
        let opts = SignOptions {
            kid: "k1".into(),
            ..SignOptions::default()
        };
        let err = sign(b"not a pem secret-ish", &opts, 0).unwrap_err();
        assert!(matches!(err, SignError::BadKey(KeyAlg::Es256)));
        assert!(!err.to_string().contains("secret-ish"));
    }

    #[test]
    fn sign_refuses_an_unparsable_ipa() {
        let opts = SignOptions {
            kid: "k1".into(),
            alg: KeyAlg::Hs256,
            ipa: Some("10.0.0.0/99".into()),
            ..SignOptions::default()
        };
        assert!(matches!(
            sign(b"0123456789abcdef", &opts, 0),
            Err(SignError::BadIpa)
        ));
    }
}

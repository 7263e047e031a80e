//! Turns PEM, JWK or a shared secret into a [`VerifyingKey`], refusing anything that is not a
//! public key (or, for HS*, a long enough secret) of the algorithm it claims to be: the algorithm
//! is pinned here, once, so the token check never has to trust a header.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use p256::pkcs8::der::Decode as _;
use p256::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use serde_json::{Map, Value};

use super::{KeyAlg, KeyFamily, KeySource, VerifyingKey};

/// The public material of a key, as the config file or the control API gives it.
pub enum KeyMaterial<'a> {
    /// A SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    Pem(&'a str),
    /// A public JWK, or for HS* an `oct` JWK with the secret in `k` (never from a JWKS URL).
    Jwk(&'a serde_json::Value),
    /// An HS* shared secret as raw bytes (the config file's `secret` or `secret_file`).
    Secret(&'a [u8]),
}

/// Why key material was refused. The message never contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The material is malformed, private, or does not match its algorithm.
    #[error("{0}")]
    Invalid(String),
}

/// Shortest HS256 secret the config file takes, as it always has. RFC 7518 §3.2 asks for 32 bytes,
/// which is what every other way in asks (see [`min_secret_bytes`]).
pub const MIN_CONFIG_HS256_SECRET_BYTES: usize = 16;

/// Longest shared secret accepted (a secret longer than the hash's block is hashed down anyway).
pub const MAX_SECRET_BYTES: usize = 1024;

/// Shortest secret an HS* key may have: the hash's size (RFC 7518 §3.2: 32, 48 or 64 bytes),
/// except HS256 in the config file, which keeps the 16-byte floor it always had.
pub fn min_secret_bytes(alg: KeyAlg, source: KeySource) -> usize {
    match (alg, source) {
        (KeyAlg::Hs256, KeySource::Config) => MIN_CONFIG_HS256_SECRET_BYTES,
        _ => alg.hash_bytes(),
    }
}

/// Longest kid accepted; the token check refuses longer ones too.
pub const MAX_KID_BYTES: usize = 256;

/// JWK members that only a private or symmetric key carries (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
/// An `oct` JWK is the one place `k` belongs.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Smallest RSA modulus accepted, in bytes (2048 bits; the verifier refuses smaller ones anyway).
const MIN_RSA_MODULUS_BYTES: usize = 256;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

fn invalid(msg: impl Into<String>) -> KeyError {
    KeyError::Invalid(msg.into())
}

/// Builds a verifying key. `alg` is the algorithm named next to the material (config `alg`, API
/// `alg`); for a JWK it may be omitted and is then derived from the JWK's `alg`, `kty` and `crv`.
/// A PEM without `alg` is ES256; a secret without `alg` is HS256. `source` decides how short a
/// secret may be, and that a JWKS (a public document) never gives one.
pub fn load(
    kid: &str,
    tenant: &str,
    alg: Option<KeyAlg>,
    material: KeyMaterial<'_>,
    source: KeySource,
) -> Result<VerifyingKey, KeyError> {
    check_kid(kid)?;
    let (alg, decoding, public_jwk) = match material {
        KeyMaterial::Pem(pem) => load_pem(kid, alg.unwrap_or_default(), pem)?,
        KeyMaterial::Jwk(jwk) if is_oct(jwk) => load_oct_jwk(kid, alg, jwk, source)?,
        KeyMaterial::Jwk(jwk) => load_jwk(kid, alg, jwk)?,
        KeyMaterial::Secret(secret) => load_secret(alg.unwrap_or(KeyAlg::Hs256), secret, source)?,
    };
    Ok(VerifyingKey {
        kid: kid.to_owned(),
        tenant: tenant.to_owned(),
        alg,
        parsed: VerifyingKey::parse_ecdsa(alg, &decoding),
        decoding,
        public_jwk,
        source,
        serial: VerifyingKey::next_serial(),
    })
}

/// A kid is printable and short: it names files, log fields and map keys.
fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() || kid.len() > MAX_KID_BYTES || kid.chars().any(char::is_control) {
        return Err(invalid(format!(
            "kid must be 1..={MAX_KID_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

type Loaded = (KeyAlg, DecodingKey, Option<Value>);

fn load_secret(alg: KeyAlg, secret: &[u8], source: KeySource) -> Result<Loaded, KeyError> {
    if alg.family() != KeyFamily::Hmac {
        return Err(invalid(format!(
            "a shared secret can only be an HS256, HS384 or HS512 key, not {alg}"
        )));
    }
    if source == KeySource::Jwks {
        return Err(invalid(
            "a JWKS is a public document: shared secrets (kty oct) are never taken from one",
        ));
    }
    let min = min_secret_bytes(alg, source);
    if secret.len() < min || secret.len() > MAX_SECRET_BYTES {
        return Err(invalid(format!(
            "an {alg} secret must be {min}..={MAX_SECRET_BYTES} bytes"
        )));
    }
    Ok((alg, DecodingKey::from_secret(secret), None))
}

fn is_oct(jwk: &Value) -> bool {
    jwk.get("kty").and_then(Value::as_str) == Some("oct")
}

/// An `oct` JWK (RFC 7518 §6.4): an HS* secret in `k`, base64url. Its `alg` (or the declared
/// one) must be HS*; nothing else private may ride along.
fn load_oct_jwk(
    kid: &str,
    given: Option<KeyAlg>,
    value: &Value,
    source: KeySource,
) -> Result<Loaded, KeyError> {
    let Value::Object(members) = value else {
        return Err(invalid("a JWK is a JSON object"));
    };
    check_jwk_kid_and_use(members, kid)?;
    if PRIVATE_JWK_MEMBERS
        .iter()
        .any(|m| *m != "k" && members.contains_key(*m))
    {
        return Err(invalid(
            "an oct JWK carries only k besides kty, kid, alg and use",
        ));
    }
    let alg = match (members.get("alg"), given) {
        (None, Some(given)) => given,
        (None, None) => {
            return Err(invalid(
                "an oct JWK must name its alg (HS256, HS384, HS512)",
            ));
        }
        (Some(Value::String(name)), given) => {
            let named =
                KeyAlg::parse(name).ok_or_else(|| invalid("JWK alg is not one usher supports"))?;
            if given.is_some_and(|g| g != named) {
                return Err(invalid("the declared alg contradicts the JWK"));
            }
            named
        }
        (Some(_), _) => return Err(invalid("JWK alg must be a string")),
    };
    let Some(Value::String(k)) = members.get("k") else {
        return Err(invalid(
            "an oct JWK holds its secret in k, a base64url string",
        ));
    };
    let secret = p256::elliptic_curve::zeroize::Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(k)
            .map_err(|_| invalid("JWK member is not base64url"))?,
    );
    load_secret(alg, &secret, source)
}

/// The `oct` JWK of an HS* key, secret included, for the state database and the fleet's keys
/// bucket only: never for a view (see [`hmac_jwk`]). `None` for other algorithms.
pub fn secret_jwk(key: &VerifyingKey) -> Option<Value> {
    if key.alg.family() != KeyFamily::Hmac {
        return None;
    }
    let secret = key.decoding.try_get_as_bytes().ok()?;
    Some(oct_jwk(&key.kid, key.alg, &URL_SAFE_NO_PAD.encode(secret)))
}

/// The `oct` JWK of an HS* key with `k` as given (a view passes a mask). `None` for other
/// algorithms.
pub fn hmac_jwk(key: &VerifyingKey, k: &str) -> Option<Value> {
    (key.alg.family() == KeyFamily::Hmac).then(|| oct_jwk(&key.kid, key.alg, k))
}

fn oct_jwk(kid: &str, alg: KeyAlg, k: &str) -> Value {
    let mut m = Map::new();
    m.insert("kty".into(), "oct".into());
    m.insert("k".into(), k.into());
    finish_public_jwk(&mut m, kid, alg);
    Value::Object(m)
}

fn load_pem(kid: &str, alg: KeyAlg, pem: &str) -> Result<Loaded, KeyError> {
    if alg.family() == KeyFamily::Hmac {
        return Err(invalid(format!("{alg} takes a shared secret, not a PEM")));
    }
    let (label, der) = p256::pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|_| invalid("not a PEM document"))?;
    if label != "PUBLIC KEY" {
        return Err(if label.contains("PRIVATE") {
            invalid("this is a private key; give the public key (BEGIN PUBLIC KEY)")
        } else {
            invalid("expected a SubjectPublicKeyInfo PEM (BEGIN PUBLIC KEY)")
        });
    }
    let spki = SubjectPublicKeyInfoRef::from_der(&der)
        .map_err(|_| invalid("PEM does not hold a SubjectPublicKeyInfo"))?;
    let (oid, params) = spki
        .algorithm
        .oids()
        .map_err(|_| invalid("PEM has malformed algorithm parameters"))?;
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| invalid("PEM public key bit string is malformed"))?;
    let found = match (oid, params) {
        (OID_EC_PUBLIC_KEY, Some(OID_P256)) => KeyAlg::Es256,
        (OID_EC_PUBLIC_KEY, Some(OID_P384)) => KeyAlg::Es384,
        (OID_ED25519, None) => KeyAlg::EdDsa,
        (OID_RSA, _) if alg.family() == KeyFamily::Rsa => alg,
        (OID_RSA, _) => KeyAlg::Rs256,
        _ => return Err(invalid("PEM holds an unsupported key type")),
    };
    if found != alg {
        return Err(invalid(format!(
            "PEM holds a {} key type, but the key is declared {alg}",
            key_type_name(found)
        )));
    }
    let bytes = pem.as_bytes();
    let mut jwk = match alg.family() {
        KeyFamily::Ec if alg == KeyAlg::Es256 => {
            use p256::pkcs8::DecodePublicKey as _;
            let key = p256::PublicKey::from_public_key_der(&der)
                .map_err(|_| invalid("PEM holds an invalid P-256 point"))?;
            es256_jwk_members(&key)
        }
        KeyFamily::Ec => ec_jwk_members("P-384", point, 48)?,
        KeyFamily::Okp => okp_jwk_members(point)?,
        KeyFamily::Rsa => rsa_jwk_members(point)?,
        KeyFamily::Hmac => return Err(invalid(format!("{alg} takes a shared secret, not a PEM"))),
    };
    let decoding = match alg.family() {
        KeyFamily::Ec => DecodingKey::from_ec_pem(bytes),
        KeyFamily::Okp => DecodingKey::from_ed_pem(bytes),
        _ => DecodingKey::from_rsa_pem(bytes),
    }
    .map_err(|_| invalid(format!("PEM is not a usable {alg} public key")))?;
    finish_public_jwk(&mut jwk, kid, alg);
    Ok((alg, decoding, Some(Value::Object(jwk))))
}

fn key_type_name(alg: KeyAlg) -> &'static str {
    match (alg, alg.family()) {
        (KeyAlg::Es256, _) => "P-256",
        (_, KeyFamily::Ec) => "P-384",
        (_, KeyFamily::Okp) => "Ed25519",
        (_, KeyFamily::Rsa) => "RSA",
        (_, KeyFamily::Hmac) => "secret",
    }
}

/// The public JWK members (`kty`, `crv`, `x`, `y`) of a P-256 key.
pub(crate) fn es256_jwk_members(key: &p256::PublicKey) -> Map<String, Value> {
    match serde_json::to_value(key.to_jwk()) {
        Ok(Value::Object(map)) => map,
        // JwkEcKey always serializes to an object; an empty map would still name kid and alg.
        _ => Map::new(),
    }
}

/// Adds `kid`, `alg` and `use` to a public JWK.
pub(crate) fn finish_public_jwk(jwk: &mut Map<String, Value>, kid: &str, alg: KeyAlg) {
    jwk.insert("kid".into(), Value::from(kid));
    jwk.insert("alg".into(), Value::from(alg.as_str()));
    jwk.insert("use".into(), Value::from("sig"));
}

fn ec_jwk_members(crv: &str, point: &[u8], coord: usize) -> Result<Map<String, Value>, KeyError> {
    let Some((&4, xy)) = point.split_first().filter(|(_, xy)| xy.len() == 2 * coord) else {
        return Err(invalid(format!("not an uncompressed {crv} point")));
    };
    let (x, y) = xy.split_at(coord);
    let mut m = Map::new();
    m.insert("kty".into(), "EC".into());
    m.insert("crv".into(), crv.into());
    m.insert("x".into(), URL_SAFE_NO_PAD.encode(x).into());
    m.insert("y".into(), URL_SAFE_NO_PAD.encode(y).into());
    Ok(m)
}

fn okp_jwk_members(x: &[u8]) -> Result<Map<String, Value>, KeyError> {
    if x.len() != 32 {
        return Err(invalid("an Ed25519 public key is 32 bytes"));
    }
    let mut m = Map::new();
    m.insert("kty".into(), "OKP".into());
    m.insert("crv".into(), "Ed25519".into());
    m.insert("x".into(), URL_SAFE_NO_PAD.encode(x).into());
    Ok(m)
}

/// `pkcs1` is the DER `RSAPublicKey` inside the SPKI bit string.
fn rsa_jwk_members(pkcs1: &[u8]) -> Result<Map<String, Value>, KeyError> {
    let utils = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.key_utils;
    let (n, e) = (utils.rsa_pub_components_from_public_key)(pkcs1)
        .map_err(|_| invalid("PEM holds an invalid RSA public key"))?;
    check_rsa_modulus(&n)?;
    let mut m = Map::new();
    m.insert("kty".into(), "RSA".into());
    m.insert("n".into(), URL_SAFE_NO_PAD.encode(&n).into());
    m.insert("e".into(), URL_SAFE_NO_PAD.encode(&e).into());
    Ok(m)
}

fn check_rsa_modulus(n: &[u8]) -> Result<(), KeyError> {
    let significant = n.iter().skip_while(|b| **b == 0).count();
    if significant < MIN_RSA_MODULUS_BYTES {
        return Err(invalid("RSA keys must have at least 2048 bits"));
    }
    Ok(())
}

fn load_jwk(kid: &str, given: Option<KeyAlg>, value: &Value) -> Result<Loaded, KeyError> {
    let Value::Object(members) = value else {
        return Err(invalid("a JWK is a JSON object"));
    };
    if PRIVATE_JWK_MEMBERS.iter().any(|m| members.contains_key(*m)) {
        return Err(invalid(
            "JWK carries private or symmetric key members; give the public key only",
        ));
    }
    check_jwk_kid_and_use(members, kid)?;
    let jwk: Jwk = serde_json::from_value(value.clone())
        .map_err(|_| invalid("not a valid public JWK (EC, OKP or RSA)"))?;
    let derived = alg_from_jwk_shape(&jwk)?;
    let alg = match members.get("alg") {
        None => given.unwrap_or(derived),
        Some(Value::String(name)) => {
            KeyAlg::parse(name).ok_or_else(|| invalid("JWK alg is not one usher supports"))?
        }
        Some(_) => return Err(invalid("JWK alg must be a string")),
    };
    if given.is_some_and(|g| g != alg) {
        return Err(invalid("the declared alg contradicts the JWK"));
    }
    let compatible = alg == derived || (derived == KeyAlg::Rs256 && alg.family() == KeyFamily::Rsa);
    if !compatible {
        return Err(invalid(format!(
            "JWK holds a {} key, which cannot be {alg}",
            key_type_name(derived)
        )));
    }
    check_jwk_public_part(&jwk.algorithm)?;
    let decoding = DecodingKey::from_jwk(&jwk)
        .map_err(|_| invalid(format!("JWK is not a usable {alg} public key")))?;
    let mut public = members.clone();
    finish_public_jwk(&mut public, kid, alg);
    Ok((alg, decoding, Some(Value::Object(public))))
}

/// A JWK's `kid`, when given, is the key's; its `use`, when given, is `sig`.
fn check_jwk_kid_and_use(members: &Map<String, Value>, kid: &str) -> Result<(), KeyError> {
    match members.get("kid") {
        None => {}
        Some(Value::String(k)) if k == kid => {}
        Some(_) => return Err(invalid("JWK kid differs from the key's kid")),
    }
    match members.get("use") {
        None => Ok(()),
        Some(Value::String(u)) if u == "sig" => Ok(()),
        Some(_) => Err(invalid("JWK use must be \"sig\"")),
    }
}

/// The algorithm a JWK's `kty` and `crv` imply (RSA defaults to RS256).
fn alg_from_jwk_shape(jwk: &Jwk) -> Result<KeyAlg, KeyError> {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Ok(KeyAlg::Es256),
            EllipticCurve::P384 => Ok(KeyAlg::Es384),
            _ => Err(invalid("JWK curve is not P-256 or P-384")),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => Ok(KeyAlg::EdDsa),
            _ => Err(invalid("OKP JWK curve is not Ed25519")),
        },
        AlgorithmParameters::RSA(_) => Ok(KeyAlg::Rs256),
        _ => Err(invalid("JWK kty is not EC, OKP or RSA")),
    }
}

/// Checks the public part's encoding and size (and, for P-256, that the point is on the curve).
fn check_jwk_public_part(params: &AlgorithmParameters) -> Result<(), KeyError> {
    let b64 = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| invalid("JWK member is not base64url"))
    };
    match params {
        AlgorithmParameters::EllipticCurve(p) => {
            let (x, y) = (b64(&p.x)?, b64(&p.y)?);
            let coord = if p.curve == EllipticCurve::P256 {
                32
            } else {
                48
            };
            if x.len() != coord || y.len() != coord {
                return Err(invalid("JWK x or y has the wrong length for its curve"));
            }
            if p.curve == EllipticCurve::P256 {
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| invalid("JWK holds an invalid P-256 point"))?;
            }
            Ok(())
        }
        AlgorithmParameters::OctetKeyPair(p) => match b64(&p.x)?.len() {
            32 => Ok(()),
            _ => Err(invalid("an Ed25519 public key is 32 bytes")),
        },
        AlgorithmParameters::RSA(p) => {
            b64(&p.e)?;
            check_rsa_modulus(&b64(&p.n)?)
        }
        _ => Err(invalid("JWK kty is not EC, OKP or RSA")),
    }
}

#[cfg(test)]
#[path = "material_tests.rs"]
pub(crate) mod tests;

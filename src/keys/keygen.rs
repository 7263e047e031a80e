//! `usher keygen`: makes an ES256 key pair. (Stub until the JWT work lands.)

use std::path::{Path, PathBuf};

/// The files `generate_to_dir` wrote.
pub struct Written {
    pub private_key: PathBuf,
    pub public_pem: PathBuf,
    pub jwk: PathBuf,
    pub public_jwk: serde_json::Value,
}

/// Writes `DIR/K.key.pem` (0600), `DIR/K.pub.pem`, `DIR/K.jwk.json`.
pub fn generate_to_dir(kid: &str, dir: &Path) -> Result<Written, String> {
    let _ = (kid, dir);
    Err("not implemented".into())
}

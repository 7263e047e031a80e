//! The `usher` binary run as a command, as an operator runs it (the CLI tests).

use std::path::Path;
use std::process::{Command, Output};

/// Runs `usher ARGS…` in `dir` and waits for it.
pub fn usher(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("usher runs")
}

/// A fresh directory in which `usher keygen --kid k1 --out keys` ran (`keys/k1.key.pem`,
/// `keys/k1.pub.pem`, `keys/k1.jwk.json`).
pub fn dir_with_key() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let keygen = usher(dir.path(), &["keygen", "--kid", "k1", "--out", "keys"]);
    assert!(keygen.status.success(), "{keygen:?}");
    dir
}

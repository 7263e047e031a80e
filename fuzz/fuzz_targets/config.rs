//! Arbitrary UTF-8 as `config.toml`: `Config::parse` then `policy::build::from_config` must never
//! panic. Key files are redirected to one fixed PEM in a scratch directory so the fuzzer cannot
//! make the target read `/dev/zero` or other large files.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use usher::config::Config;
use usher::policy::build::from_config;

const KEY_FILE: &str = "fuzz-key.pub.pem";

static BASE_DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("usher-fuzz-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::write(dir.join(KEY_FILE), include_str!("../keys/k1.pub.pem")).expect("key file");
    dir
});

fuzz_target!(|text: &str| {
    let Ok(mut config) = Config::parse(text) else {
        return;
    };
    for key in &mut config.keys {
        if key.public_key_file.is_some() {
            key.public_key_file = Some(PathBuf::from(KEY_FILE));
        }
    }
    let _ = from_config(&config, &BASE_DIR);
});

//! Benchmark helper: makes an ES256 key pair and files of distinct, valid tokens signed with it,
//! so every request of the fresh-token benchmark carries a token the signature memo has never seen.
//!
//! `cargo run --release --example bench_tokens -- DIR PER_FILE FILES` writes `DIR/k1.key.pem`,
//! `DIR/k1.pub.pem` and `DIR/tokens_0.txt` … `DIR/tokens_{FILES-1}.txt`, one token a line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::io::Write;

use jsonwebtoken::{EncodingKey, Header};
use usher::keys::keygen;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: bench_tokens DIR PER_FILE FILES");
        std::process::exit(2);
    }
    let dir = std::path::PathBuf::from(&args[1]);
    let per_file: usize = args[2].parse().expect("PER_FILE is a number");
    let files: usize = args[3].parse().expect("FILES is a number");
    std::fs::create_dir_all(&dir).expect("create DIR");
    let pair = keygen::generate_es256("k1").expect("keygen");
    std::fs::write(dir.join("k1.key.pem"), pair.private_pem.as_bytes()).expect("write key");
    std::fs::write(dir.join("k1.pub.pem"), &pair.public_pem).expect("write pub");
    // One parsed signing key (what `usher sign` does per call, done once here for speed).
    let key = EncodingKey::from_ec_pem(pair.private_pem.as_bytes()).expect("pem");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    std::thread::scope(|s| {
        for f in 0..files {
            let (key, dir) = (&key, &dir);
            s.spawn(move || {
                let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
                header.kid = Some("k1".into());
                header.typ = Some("JWT".into());
                let path = dir.join(format!("tokens_{f}.txt"));
                let mut out =
                    std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
                for i in 0..per_file {
                    // `jti` makes every token distinct, so no two share a signature.
                    let claims = serde_json::json!({
                        "iat": now, "exp": now + 3600, "jti": format!("{f}-{i}"),
                        "sub": format!("viewer-{f}-{i}")
                    });
                    let token = jsonwebtoken::encode(&header, &claims, key).expect("sign");
                    writeln!(out, "{token}").expect("write");
                }
                out.flush().expect("flush");
            });
        }
    });
}

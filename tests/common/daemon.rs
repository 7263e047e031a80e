//! Starts the real `usher` binary on ephemeral loopback ports and stops it when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// How long a daemon may take to start on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The config every test daemon starts from; tests append their own sections.
pub fn base_config(state_dir: &Path) -> String {
    format!(
        r#"
[trigger]
listen = "127.0.0.1:0"
[control]
listen = "127.0.0.1:0"
tokens = ["test-control-token"]
[state]
dir = "{}"
[log]
format = "json"
level = "info,usher=debug"
"#,
        state_dir.display()
    )
}

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    pub trigger: SocketAddr,
    pub control: Option<SocketAddr>,
    logs: Arc<Mutex<Vec<String>>>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts a daemon on `base_config` + `extra` in a fresh temporary directory.
    pub fn start(extra: &str) -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let config = format!("{}\n{extra}", base_config(&dir.join("data")));
        let mut d = Daemon::start_with(&dir, &config).expect("daemon starts");
        d._tmp = Some(tmp);
        d
    }

    /// Writes `config` to `dir/config.toml` and starts a daemon on it.
    pub fn start_with(dir: &Path, config: &str) -> Result<Daemon, String> {
        let path = dir.join("config.toml");
        std::fs::write(&path, config).map_err(|e| e.to_string())?;
        Daemon::start_on(dir, &path, &[])
    }

    /// Starts a daemon on an existing config file with extra environment variables.
    pub fn start_on(dir: &Path, config: &Path, env: &[(&str, &str)]) -> Result<Daemon, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_usher"));
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Unless the test points usher at a MistServer stand-in, point it at a closed loopback
        // port and wait for acknowledgements only briefly.
        let text = std::fs::read_to_string(config).unwrap_or_default();
        if !text.contains("[mist]") {
            cmd.env("USHER_MIST_API_URL", "http://127.0.0.1:9/api2");
            cmd.env("USHER_MIST_ACK_WAIT_MS", "100");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["message"] == "ready" {
                        let _ = ready_tx.send(v);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            trigger: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: None,
            logs,
            dir: dir.to_path_buf(),
            _tmp: None,
        };
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(ready) => {
                daemon.trigger = parse_addr(&ready["trigger"]).ok_or("no trigger addr")?;
                daemon.control = parse_addr(&ready["control"]);
                Ok(daemon)
            }
            Err(_) => Err(format!(
                "daemon did not become ready; log:\n{}",
                daemon.log_text()
            )),
        }
    }

    /// Every log line so far, parsed as JSON.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Every log line so far, as text.
    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// How each `USER_NEW` of `session` was answered, in order: `hit`, `evaluated` or `joined`
    /// (from the debug `decided` lines).
    pub fn lookups(&self, session: &str) -> Vec<String> {
        self.logs()
            .iter()
            .filter(|l| l["message"] == "decided" && l["session"] == session)
            .map(|l| l["lookup"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Waits (generously) until a log line satisfies `pred`.
    pub async fn wait_for_log(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            if self.logs().iter().any(&pred) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no log line {what}; log:\n{}", self.log_text());
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal by name (`TERM`, `HUP`, …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGTERM, then waits for the exit (killing it after a generous bound).
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse_addr(v: &serde_json::Value) -> Option<SocketAddr> {
    v.as_str()?.parse().ok()
}

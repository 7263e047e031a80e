//! The side of `usher status` that runs on the operator's terminal: it reads the same config file
//! as the daemon to find the control listener and a token, asks `GET /v1/status`, and hands the
//! report back.

use std::path::Path;
use std::time::Duration;

use super::StatusReport;
use crate::config::Config;

/// How long the whole request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `http://host:port` of the control listener.
    pub base: String,
    /// A control token (`None`: none configured; the daemon will refuse).
    pub token: Option<String>,
}

/// Why the report could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{0}")]
    Config(String),
    #[error("cannot reach usher's control listener at {base}: {source}")]
    Unreachable {
        base: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("usher answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("usher's answer is not a status report: {0}")]
    BadAnswer(String),
}

impl Target {
    /// The control listener of `config` (a wildcard address is asked on loopback) and its first
    /// token; `url` and `token_file` override them.
    pub fn from_config(
        config: &Config,
        url: Option<&str>,
        token_file: Option<&Path>,
    ) -> Result<Target, StatusError> {
        let base = match url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let mut listen = config.control.listen;
                if listen.ip().is_unspecified() {
                    let loopback: std::net::IpAddr = if listen.is_ipv6() {
                        std::net::Ipv6Addr::LOCALHOST.into()
                    } else {
                        std::net::Ipv4Addr::LOCALHOST.into()
                    };
                    listen.set_ip(loopback);
                }
                format!("http://{listen}")
            }
        };
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StatusError::Config(format!("cannot read {}: {e}", path.display()))
                })?;
                text.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned)
            }
            None => crate::setup::control_tokens(config)
                .map_err(StatusError::Config)?
                .into_iter()
                .next(),
        };
        Ok(Target { base, token })
    }

    /// Asks the daemon for its report.
    pub async fn fetch(&self) -> Result<StatusReport, StatusError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .build()
            .map_err(|source| self.unreachable(source))?;
        let mut request = client.get(format!("{}/v1/status", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| self.unreachable(e))?;
        if status != 200 {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(StatusError::Refused { status, message });
        }
        serde_json::from_slice(&body).map_err(|e| StatusError::BadAnswer(e.to_string()))
    }

    fn unreachable(&self, source: reqwest::Error) -> StatusError {
        StatusError::Unreachable {
            base: self.base.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_asked_on_loopback_with_the_first_token() {
        let config = Config::parse(
            "[control]\nlisten = \"0.0.0.0:4251\"\ntokens = [\"0123456789abcdef\", \"fedcba9876543210\"]\n",
        )
        .unwrap();
        let t = Target::from_config(&config, None, None).unwrap();
        assert_eq!(t.base, "http://127.0.0.1:4251");
        assert_eq!(t.token.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn url_and_token_file_override_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "# comment\n\n  abcdefghijklmnop  \nsecond\n").unwrap();
        let config = Config::parse("").unwrap();
        let t = Target::from_config(&config, Some("http://[::1]:9/"), Some(&file)).unwrap();
        assert_eq!(t.base, "http://[::1]:9");
        assert_eq!(t.token.as_deref(), Some("abcdefghijklmnop"));
    }
}

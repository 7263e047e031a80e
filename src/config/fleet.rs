//! `[fleet]` of the config file (SPEC §11): where the NATS servers are, who this node is, how it
//! authenticates, and the prefix of the JetStream objects. Checked once at start with the rest.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::valid_name;

/// `[fleet]`: follow one NATS JetStream with the other nodes of the fleet.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://host:4222`); the client fails over between them.
    pub nats_urls: Vec<String>,
    /// This node's id in the fleet, unique per node: it names its durable consumer and its status.
    pub node_id: String,
    /// A NATS `.creds` file (user JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// A file holding an NKey seed (`SU…`), for NKey authentication without JWTs.
    pub nkey_seed_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for the servers' TLS certificates (TLS required).
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for mutual TLS, with `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// Prefix of the bucket and stream names, so several fleets can share one NATS account.
    pub prefix: String,
    /// Replicas of each bucket and stream usher creates (3 on a 3-node cluster).
    pub replicas: usize,
    /// How often this node publishes its status to the fleet.
    pub status_interval_ms: u64,
    /// How long a control-plane write waits for JetStream to store it before answering 503.
    pub write_timeout_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            nats_urls: Vec::new(),
            node_id: String::new(),
            credentials_file: None,
            nkey_seed_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            prefix: "usher".into(),
            replicas: 1,
            status_interval_ms: 5_000,
            write_timeout_ms: 5_000,
        }
    }
}

impl FleetConfig {
    /// Every problem with the section; relative files are resolved against `base_dir`.
    pub fn problems(&self, base_dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if self.nats_urls.is_empty() {
            out.push("fleet.nats_urls: give at least one NATS server URL".into());
        }
        for url in &self.nats_urls {
            let scheme_ok = ["nats://", "tls://"].iter().any(|s| url.starts_with(s));
            if !scheme_ok || url.parse::<async_nats::ServerAddr>().is_err() {
                out.push(format!(
                    "fleet.nats_urls: {url:?} is not a nats:// or tls:// URL"
                ));
            }
        }
        if !valid_name(&self.node_id) {
            out.push("fleet.node_id must be 1..=128 characters of A-Z a-z 0-9 . _ -".into());
        }
        let prefix_ok = !self.prefix.is_empty()
            && self.prefix.len() <= 32
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !prefix_ok {
            out.push("fleet.prefix must be 1..=32 characters of A-Z a-z 0-9 _ -".into());
        }
        if self.credentials_file.is_some() && self.nkey_seed_file.is_some() {
            out.push("fleet: give credentials_file or nkey_seed_file, not both".into());
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            out.push("fleet: tls_cert_file and tls_key_file go together".into());
        }
        if !(1..=5).contains(&self.replicas) {
            out.push("fleet.replicas must be 1..=5".into());
        }
        if self.status_interval_ms < 100 || self.write_timeout_ms < 100 {
            out.push("fleet.status_interval_ms and write_timeout_ms must be at least 100".into());
        }
        for (name, file) in self.files() {
            let path = base_dir.join(file);
            if let Err(e) = std::fs::metadata(&path) {
                out.push(format!("fleet.{name} {}: {e}", path.display()));
            }
        }
        out
    }

    /// The files the section names, with their field names.
    fn files(&self) -> impl Iterator<Item = (&'static str, &PathBuf)> {
        [
            ("credentials_file", &self.credentials_file),
            ("nkey_seed_file", &self.nkey_seed_file),
            ("tls_ca_file", &self.tls_ca_file),
            ("tls_cert_file", &self.tls_cert_file),
            ("tls_key_file", &self.tls_key_file),
        ]
        .into_iter()
        .filter_map(|(n, f)| f.as_ref().map(|f| (n, f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(text: &str) -> FleetConfig {
        crate::config::Config::parse(text).unwrap().fleet.unwrap()
    }

    #[test]
    fn no_fleet_section_means_no_fleet() {
        assert!(crate::config::Config::parse("").unwrap().fleet.is_none());
    }

    #[test]
    fn a_valid_section_has_no_problems() {
        let f = fleet("[fleet]\nnats_urls = [\"nats://127.0.0.1:4222\"]\nnode_id = \"edge-1\"\n");
        assert_eq!(f.prefix, "usher");
        assert!(f.problems(Path::new(".")).is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let f = fleet(
            "[fleet]\nnats_urls = [\"http://x\"]\nnode_id = \"a b\"\nprefix = \"a.b\"\n\
             credentials_file = \"/nonexistent/x.creds\"\nnkey_seed_file = \"/nonexistent/seed\"\n\
             tls_cert_file = \"/nonexistent/c.pem\"\n",
        );
        let problems = f.problems(Path::new("."));
        let text = problems.join("\n");
        for needle in [
            "nats_urls",
            "node_id",
            "prefix",
            "not both",
            "go together",
            "credentials_file",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }
}

//! The config file (SPEC §8): serde structs with defaults, and one `validate` that reports every problem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::{KeySpec, Named, PolicySpec};

mod fleet;
pub use fleet::FleetConfig;

/// The whole `config.toml`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub trigger: TriggerConfig,
    pub control: ControlConfig,
    pub state: StateConfig,
    pub mist: MistConfig,
    pub cache: CacheConfig,
    pub default_policy: DefaultPolicyConfig,
    pub outbound: OutboundConfig,
    pub webhook: WebhookConfig,
    pub log: LogConfig,
    pub sessions: SessionsConfig,
    pub tenants: Vec<TenantConfig>,
    pub keys: Vec<KeyConfig>,
    pub policies: Vec<PolicyConfig>,
    /// `[fleet]` (SPEC §11): absent = a single node on its own.
    pub fleet: Option<FleetConfig>,
}

/// `[trigger]`: where MistServer posts its triggers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    pub listen: SocketAddr,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Upper bound for draining in-flight requests on SIGTERM.
    pub drain_timeout_s: u64,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4250)),
            max_connections: 16_384,
            drain_timeout_s: 10,
        }
    }
}

/// `[control]`: the control-plane API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    pub listen: SocketAddr,
    /// Bearer tokens accepted on `/v1/`.
    pub tokens: Vec<String>,
    /// A file with one token per line, read in addition to `tokens`.
    pub tokens_file: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4251)),
            tokens: Vec::new(),
            tokens_file: String::new(),
        }
    }
}

/// `[state]`: the embedded database of what the control plane set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("./data"),
        }
    }
}

/// `[mist]`: the MistServer API that usher calls to invalidate sessions.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MistConfig {
    pub api_url: String,
    pub username: String,
    pub password: String,
    /// How long an invalidating control-plane call waits for MistServer's acknowledgement before
    /// answering (the queue keeps retrying in the background either way).
    pub ack_wait_ms: u64,
}

impl Default for MistConfig {
    fn default() -> Self {
        MistConfig {
            api_url: "http://127.0.0.1:4242/api2".into(),
            username: String::new(),
            password: String::new(),
            ack_wait_ms: 2000,
        }
    }
}

/// `[cache]`: the per-session decision cache.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub allow_ttl_s: u64,
    pub deny_ttl_s: u64,
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            allow_ttl_s: 600,
            deny_ttl_s: 30,
            max_entries: 1_000_000,
        }
    }
}

/// `[default_policy]`: what applies to a stream no policy names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultPolicyConfig {
    #[serde(rename = "type")]
    pub kind: crate::spec::PolicyKind,
}

impl Default for DefaultPolicyConfig {
    fn default() -> Self {
        DefaultPolicyConfig {
            kind: crate::spec::PolicyKind::Deny,
        }
    }
}

/// `[outbound]`: how webhooks are dialed. Everything here but the defaults is for lab use.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Extra CIDRs that may be dialed although they are not globally routable.
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// Allow plain `http` webhook URLs.
    pub allow_http: bool,
    /// A PEM file of extra CA certificates to trust.
    pub ca_file: String,
    /// Name servers to resolve webhook hosts with (`ip:port`); empty = the system's.
    pub nameservers: Vec<SocketAddr>,
}

/// `[webhook]`: how webhook calls are made.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub signature_header: String,
    pub max_in_flight: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            signature_header: "X-Frameworks-Signature".into(),
            max_in_flight: 1024,
        }
    }
}

/// `[log]`: log format and level.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `usher=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// `[sessions]`: the size of the live-session table and how long a viewer revocation is kept
/// when a tenant's tokens have no bounded lifetime.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Most sessions tracked at once; 0 turns tracking off (policies with `cut_at_exp` or
    /// `max_sessions_per_viewer` then refuse their sessions).
    pub max_entries: usize,
    /// How long a viewer revocation is kept when some `jwt` policy of the tenant has no
    /// `max_lifetime_s` (so no token lifetime bounds it).
    pub revocation_max_age_s: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            max_entries: 1_000_000,
            revocation_max_age_s: 7 * 24 * 3600,
        }
    }
}

/// `[[tenants]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The claim naming the viewer (SPEC §9); `sub` when absent.
    #[serde(default)]
    pub viewer_claim: Option<String>,
    /// The claim carrying read/publish permissions (SPEC §10); `usher` when absent.
    #[serde(default)]
    pub permission_claim: Option<String>,
}

/// `[[keys]]`: a `kid` beside a [`KeySpec`] (a public key, or an HS256 secret).
pub type KeyConfig = Named<KeySpec>;

/// `[[policies]]`: an `object` beside a [`PolicySpec`].
pub type PolicyConfig = Named<PolicySpec>;

impl<'de> Deserialize<'de> for Named<KeySpec> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = serde_json::Map::deserialize(d)?;
        Named::from_table("kid", table).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Named<PolicySpec> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = serde_json::Map::deserialize(d)?;
        Named::from_table("object", table).map_err(serde::de::Error::custom)
    }
}

/// The sections `USHER_<SECTION>_<KEY>` may name.
const SECTIONS: [&str; 10] = [
    "trigger",
    "control",
    "state",
    "mist",
    "cache",
    "default_policy",
    "outbound",
    "webhook",
    "log",
    "fleet",
];

/// Reading the config failed before it could be validated.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

impl Config {
    /// Reads and parses a config file, applying `USHER_<SECTION>_<KEY>` overrides from the process
    /// environment (no semantic checks: see `setup::load` for those).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::env::vars())
    }

    /// Like [`Config::load`] with the environment given, so tests never touch the process's.
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse_with_env(&text, env).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses config text (no environment overrides).
    pub fn parse(text: &str) -> Result<Config, String> {
        Config::parse_with_env(text, std::iter::empty())
    }

    /// Parses config text, then applies `USHER_<SECTION>_<KEY>=value` overrides. A value that
    /// parses as a TOML value (number, bool, array, quoted string) is taken as such, anything
    /// else as a plain string: `USHER_CACHE_ALLOW_TTL_S=60`, `USHER_CONTROL_LISTEN=0.0.0.0:4251`.
    pub fn parse_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("USHER_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let (section, key) = SECTIONS
                .iter()
                .find_map(|s| Some((*s, rest.strip_prefix(s)?.strip_prefix('_')?)))
                .ok_or_else(|| format!("{name}: no config section matches"))?;
            let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value));
            let entry = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(key.to_string(), value);
                }
                _ => return Err(format!("{name}: [{section}] is not a table")),
            }
        }
        Config::deserialize(table).map_err(|e| e.to_string())
    }

    /// The directory relative paths in the config are resolved against.
    pub fn base_dir(path: &Path) -> PathBuf {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_single_values() {
        let c = Config::parse_with_env(
            "[cache]\nallow_ttl_s = 600\n",
            env(&[
                ("USHER_CACHE_ALLOW_TTL_S", "60"),
                ("USHER_CONTROL_LISTEN", "127.0.0.1:9999"),
                ("USHER_DEFAULT_POLICY_TYPE", "public"),
                ("USHER_CONTROL_TOKENS", "[\"0123456789abcdef\"]"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.cache.allow_ttl_s, 60);
        assert_eq!(c.control.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.default_policy.kind, crate::spec::PolicyKind::Public);
        assert_eq!(c.control.tokens, ["0123456789abcdef"]);
    }

    #[test]
    fn unknown_override_is_an_error() {
        assert!(Config::parse_with_env("", env(&[("USHER_NOPE_X", "1")])).is_err());
        let err = Config::parse_with_env("", env(&[("USHER_CACHE_NOPE", "1")])).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn unknown_fields_in_the_file_are_refused() {
        let err = Config::parse("[cache]\nallow_ttl = 5\n").unwrap_err();
        assert!(err.contains("allow_ttl"), "{err}");
    }
}

//! The one outbound HTTP client (SPEC §4): no proxy from the environment, no redirects, names
//! resolved only through the filtering resolver, kept-alive connections per host.

use std::sync::Arc;
use std::time::Duration;

use crate::config::OutboundConfig;

use super::addr::AddressPolicy;
use super::guard::SsrfGuard;
use super::resolver::FilteringResolver;

/// `User-Agent` of every outbound request (SPEC §3).
pub const USER_AGENT: &str = concat!("usher/", env!("CARGO_PKG_VERSION"));

/// How long an idle kept-alive connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per host.
const POOL_MAX_IDLE_PER_HOST: usize = 64;

/// Building the outbound client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `[outbound] ca_file` could not be read.
    #[error("cannot read outbound.ca_file {path}: {source}")]
    CaFileRead {
        /// The configured path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `[outbound] ca_file` holds no usable PEM certificate.
    #[error("outbound.ca_file {path}: {message}")]
    CaFileParse {
        /// The configured path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// reqwest refused the configuration (e.g. no usable TLS roots).
    #[error("cannot build the outbound HTTP client: {0}")]
    Build(String),
    /// The filtering resolver could not be configured.
    #[error("cannot set up the outbound resolver: {0}")]
    Resolver(String),
}

/// The outbound client together with the guard that judges every URL before it is requested,
/// both built from `[outbound]` with one filtering resolver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    /// The client; dials only addresses the resolver judged.
    pub client: reqwest::Client,
    /// Judges URLs (scheme, userinfo, IP literals) before every request.
    pub guard: SsrfGuard,
}

impl GuardedClient {
    /// Builds the resolver, the client and the guard from `[outbound]`, with the same rules as
    /// the webhook caller.
    pub fn new(outbound: &OutboundConfig) -> Result<GuardedClient, ClientError> {
        let policy = AddressPolicy::new(outbound.allow_cidrs.clone());
        let resolver = FilteringResolver::new(&outbound.nameservers, policy)
            .map_err(|e| ClientError::Resolver(e.message))?;
        let client = build_client(outbound, resolver.clone())?;
        Ok(GuardedClient {
            client,
            guard: SsrfGuard::new(resolver, outbound.allow_http),
        })
    }
}

impl GuardedClient {
    /// Whether both were built once and shared (same resolver, hence same client and pool).
    pub fn same_stack(&self, other: &GuardedClient) -> bool {
        self.guard.resolver().same_as(other.guard.resolver())
    }
}

/// Builds the outbound client.
///
/// reqwest does not consult the resolver for IP-literal hosts: callers must judge the URL with
/// [`SsrfGuard::check_url`](super::guard::SsrfGuard::check_url) before every request.
pub fn build_client(
    outbound: &OutboundConfig,
    resolver: FilteringResolver,
) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(resolver))
        .user_agent(USER_AGENT)
        .https_only(!outbound.allow_http)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd();
    if !outbound.ca_file.is_empty() {
        builder = builder.tls_certs_merge(read_ca_file(&outbound.ca_file)?);
    }
    builder
        .build()
        .map_err(|e| ClientError::Build(error_chain(&e)))
}

fn read_ca_file(path: &str) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem = std::fs::read(path).map_err(|source| ClientError::CaFileRead {
        path: path.to_owned(),
        source,
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::CaFileParse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ClientError::CaFileParse {
            path: path.to_owned(),
            message: "no PEM certificate found".into(),
        });
    }
    Ok(certs)
}

/// An error and its sources joined by `": "`, for details and logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

//! The filtering resolver (SPEC §4): usher resolves webhook hosts itself, judges every answer and
//! hands the HTTP client only judged addresses, so DNS rebinding cannot steer a dial inward.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use super::addr::AddressPolicy;

/// Every address the name resolved to was refused by the [`AddressPolicy`].
///
/// Returned (boxed) by the `reqwest` resolver hook; the webhook caller finds it in the error's
/// source chain and reports `webhook-blocked-ssrf` instead of `webhook-network`.
#[derive(Debug, Clone)]
pub struct BlockedByPolicy {
    /// The host name that was resolved.
    pub host: String,
    /// The refused answers (empty when the name had no answer that could be judged).
    pub refused: Vec<IpAddr>,
}

impl fmt::Display for BlockedByPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "every address of {} is refused", self.host)?;
        for (i, ip) in self.refused.iter().enumerate() {
            f.write_str(if i == 0 { " (" } else { ", " })?;
            write!(f, "{ip}")?;
        }
        if !self.refused.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl StdError for BlockedByPolicy {}

/// Resolving a name failed (no such name, no answer, server unreachable).
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {message}")]
pub struct ResolveFailed {
    /// The host name that was resolved.
    pub host: String,
    /// What the resolver said.
    pub message: String,
}

/// Resolves webhook host names and keeps only addresses the [`AddressPolicy`] allows.
///
/// Cheap to clone. hickory's answer cache is disabled (size 0, TTLs clamped to 0): every new
/// connection asks the name servers again, so a name that was judged when the policy was set
/// and later re-pointed at an internal address (DNS rebinding) is caught at the next dial.
/// The cost is one DNS round trip per new connection; kept-alive connections skip it.
#[derive(Clone)]
pub struct FilteringResolver {
    inner: Arc<TokioResolver>,
    policy: AddressPolicy,
}

impl FilteringResolver {
    /// Whether both are the same resolver (one cache, one set of name servers).
    pub fn same_as(&self, other: &FilteringResolver) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for FilteringResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilteringResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl FilteringResolver {
    /// Uses the system's resolver configuration when `nameservers` is empty, else exactly the
    /// given servers over plain UDP and TCP (the `[outbound] nameservers` lab knob; the hosts
    /// file is then ignored too, so tests see only their own DNS server).
    pub fn new(
        nameservers: &[SocketAddr],
        policy: AddressPolicy,
    ) -> Result<FilteringResolver, ResolveFailed> {
        let failed = |e: &dyn fmt::Display| ResolveFailed {
            host: "(resolver setup)".into(),
            message: e.to_string(),
        };
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| failed(&e))?
        } else {
            let servers = nameservers.iter().map(|sa| {
                let mut udp = ConnectionConfig::udp();
                udp.port = sa.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = sa.port();
                NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
            });
            let config = ResolverConfig::from_name_servers(servers.collect());
            let mut builder =
                TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        fresh_and_complete(builder.options_mut());
        let inner = builder.build().map_err(|e| failed(&e))?;
        Ok(FilteringResolver {
            inner: Arc::new(inner),
            policy,
        })
    }

    /// The address policy answers are judged by.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// Every current answer (A and AAAA) for `host`, unjudged. An IP literal is returned as is.
    pub async fn lookup_all(&self, host: &str) -> Result<Vec<IpAddr>, ResolveFailed> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        // A fully qualified name: webhook hosts are public names, the search list must not apply.
        let fqdn = if host.ends_with('.') {
            host.to_owned()
        } else {
            format!("{host}.")
        };
        let lookup = self
            .inner
            .lookup_ip(fqdn.as_str())
            .await
            .map_err(|e| ResolveFailed {
                host: host.to_owned(),
                message: e.to_string(),
            })?;
        Ok(lookup.iter().collect())
    }

    /// The allowed answers for `host`; [`BlockedByPolicy`] when none is left.
    pub async fn resolve_allowed(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let all = self.lookup_all(host).await.map_err(ResolveError::Failed)?;
        let (allowed, refused): (Vec<IpAddr>, Vec<IpAddr>) =
            all.into_iter().partition(|ip| self.policy.allows(*ip));
        if allowed.is_empty() {
            return Err(ResolveError::Blocked(BlockedByPolicy {
                host: host.to_owned(),
                refused,
            }));
        }
        if !refused.is_empty() {
            tracing::warn!(host, refused = refused.len(), "dropped refused DNS answers");
        }
        Ok(allowed)
    }
}

/// Why [`FilteringResolver::resolve_allowed`] returned no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The name resolved, but only to refused addresses.
    #[error(transparent)]
    Blocked(BlockedByPolicy),
    /// The name did not resolve.
    #[error(transparent)]
    Failed(ResolveFailed),
}

/// No answer cache (see [`FilteringResolver`]), and both A and AAAA asked every time so that
/// every current answer is judged, not only the first family that answers.
fn fresh_and_complete(opts: &mut ResolverOpts) {
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = match this.resolve_allowed(&host).await {
                Ok(ips) => ips,
                // Boxed as the concrete types so callers can downcast them from the chain.
                Err(ResolveError::Blocked(b)) => return Err(Box::new(b) as _),
                Err(ResolveError::Failed(f)) => return Err(Box::new(f) as _),
            };
            // Port 0: reqwest substitutes the URL's port.
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

//! The SSRF guard (SPEC §4): the one place that says whether a webhook URL may be called, both
//! when a policy is set (resolving the name) and before every call (judging IP literals, which
//! the HTTP client dials without asking the resolver).

use std::net::IpAddr;

use url::{Host, Url};

use super::addr::AddressPolicy;
use super::resolver::FilteringResolver;

/// Why a webhook URL is refused. The `Display` text is meant for an API 400/422 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// Not a URL at all.
    #[error("not a valid URL: {0}")]
    InvalidUrl(String),
    /// Not `https` (or `http` when `allow_http` is off).
    #[error("scheme `{0}` is not allowed: webhook URLs must use https")]
    SchemeNotAllowed(String),
    /// A user name or password in the URL.
    #[error("webhook URLs may not contain a user name or password")]
    Userinfo,
    /// No host in the URL.
    #[error("the URL has no host")]
    MissingHost,
    /// An IP literal (in any spelling) that is not allowed.
    #[error("address {0} is not a globally routable unicast address")]
    AddressRefused(IpAddr),
    /// The host name resolves to an address that is not allowed.
    #[error("host {host} resolves to {addr}, which is not a globally routable unicast address")]
    NameRefused {
        /// The host name.
        host: String,
        /// The first refused answer.
        addr: IpAddr,
    },
    /// The host name has no A or AAAA record.
    #[error("host {0} has no address")]
    NoAddress(String),
    /// The host name could not be resolved.
    #[error("cannot resolve host {host}: {message}")]
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        message: String,
    },
}

impl SsrfError {
    /// The host did not resolve here now (no answer, or no address): a state of the name
    /// server, not of the URL.
    pub fn is_dns_failure(&self) -> bool {
        matches!(self, SsrfError::Resolve { .. } | SsrfError::NoAddress(_))
    }

    /// A stable code for API error bodies: `invalid-url`, `url-not-allowed` or `dns-failure`.
    pub fn code(&self) -> &'static str {
        match self {
            SsrfError::InvalidUrl(_) | SsrfError::MissingHost => "invalid-url",
            SsrfError::Resolve { .. } | SsrfError::NoAddress(_) => "dns-failure",
            _ => "url-not-allowed",
        }
    }
}

/// Judges webhook URLs against the outbound rules of SPEC §4. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SsrfGuard {
    policy: AddressPolicy,
    allow_http: bool,
    resolver: FilteringResolver,
}

impl SsrfGuard {
    /// A guard with the resolver's address policy; `allow_http` admits plain `http` (lab use).
    pub fn new(resolver: FilteringResolver, allow_http: bool) -> SsrfGuard {
        SsrfGuard {
            policy: resolver.policy().clone(),
            allow_http,
            resolver,
        }
    }

    /// The address policy.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// The filtering resolver (shared with the HTTP client).
    pub fn resolver(&self) -> &FilteringResolver {
        &self.resolver
    }

    /// Checks a URL without any I/O: scheme, userinfo, host present, IP literals judged.
    ///
    /// The `url` crate parses special schemes the WHATWG way, so `2130706433`, `0x7f.1`,
    /// `0177.0.0.1` and `127.1` all arrive here as the IPv4 address `127.0.0.1`.
    pub fn check_url(&self, url: &str) -> Result<Url, SsrfError> {
        let parsed = Url::parse(url).map_err(|e| SsrfError::InvalidUrl(e.to_string()))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => return Err(SsrfError::SchemeNotAllowed(other.to_owned())),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(SsrfError::Userinfo);
        }
        let ip = match parsed.host() {
            None => return Err(SsrfError::MissingHost),
            Some(Host::Domain("")) => return Err(SsrfError::MissingHost),
            Some(Host::Domain(_)) => None,
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        };
        if let Some(ip) = ip
            && !self.policy.allows(ip)
        {
            return Err(SsrfError::AddressRefused(ip));
        }
        Ok(parsed)
    }

    /// A URL set where it was judged already — the config file being loaded, another node of the
    /// fleet — judged as [`validate_for_policy`](Self::validate_for_policy), except that a host
    /// that does not resolve here now is taken on [`check_url`](Self::check_url) alone (every
    /// dial resolves and filters again, failing closed). The DNS failure comes back beside the
    /// URL, for a warning.
    pub async fn validate_set_elsewhere(
        &self,
        url: &str,
    ) -> Result<(Url, Option<SsrfError>), SsrfError> {
        match self.validate_for_policy(url).await {
            Err(e) if e.is_dns_failure() => Ok((self.check_url(url)?, Some(e))),
            judged => judged.map(|url| (url, None)),
        }
    }

    /// [`check_url`](Self::check_url), then resolves a host name and refuses the URL when any
    /// current answer is refused, or when there is no answer. Used when a policy is set.
    pub async fn validate_for_policy(&self, url: &str) -> Result<Url, SsrfError> {
        let parsed = self.check_url(url)?;
        let Some(Host::Domain(host)) = parsed.host() else {
            return Ok(parsed);
        };
        let answers = self
            .resolver
            .lookup_all(host)
            .await
            .map_err(|e| SsrfError::Resolve {
                host: host.to_owned(),
                message: e.message,
            })?;
        if answers.is_empty() {
            return Err(SsrfError::NoAddress(host.to_owned()));
        }
        if let Some(addr) = answers.into_iter().find(|ip| !self.policy.allows(*ip)) {
            return Err(SsrfError::NameRefused {
                host: host.to_owned(),
                addr,
            });
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow_http: bool) -> SsrfGuard {
        // A lab name server that is never queried by these pure checks.
        let ns = ["127.0.0.1:9".parse().expect("addr")];
        let resolver =
            FilteringResolver::new(&ns, AddressPolicy::default()).expect("resolver builds");
        SsrfGuard::new(resolver, allow_http)
    }

    #[tokio::test]
    async fn private_literals_are_refused_in_every_spelling() {
        let g = guard(false);
        for url in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://10.1/",
            "https://0/",
            "https://[::1]/",
            "https://[::]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[64:ff9b::10.0.0.1]/",
            "https://[64:ff9b:1::a9fe:a9fe]/",
            "https://[2002:c0a8:0101::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            assert!(
                matches!(g.check_url(url), Err(SsrfError::AddressRefused(_))),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn public_literals_and_names_pass_the_pure_check() {
        let g = guard(false);
        for url in [
            "https://8.8.8.8/hook",
            "https://[2606:4700::1111]:8443/",
            "https://[::ffff:8.8.8.8]/",
            "https://hooks.example.com/x?y=1",
        ] {
            assert!(g.check_url(url).is_ok(), "{url}");
        }
    }

    #[tokio::test]
    async fn scheme_userinfo_and_host_are_checked() {
        let g = guard(false);
        let err = |u: &str| g.check_url(u).err();
        assert_eq!(
            err("http://hooks.example.com/"),
            Some(SsrfError::SchemeNotAllowed("http".into()))
        );
        assert_eq!(
            err("ftp://hooks.example.com/"),
            Some(SsrfError::SchemeNotAllowed("ftp".into()))
        );
        assert_eq!(
            err("https://u:p@hooks.example.com/"),
            Some(SsrfError::Userinfo)
        );
        assert_eq!(
            err("https://u@hooks.example.com/"),
            Some(SsrfError::Userinfo)
        );
        assert!(matches!(err("not a url"), Some(SsrfError::InvalidUrl(_))));
        assert!(matches!(err("https:///"), Some(SsrfError::InvalidUrl(_))));
        assert!(guard(true).check_url("http://hooks.example.com/").is_ok());
    }
}

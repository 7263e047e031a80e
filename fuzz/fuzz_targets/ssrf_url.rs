//! Arbitrary text as a webhook URL: `SsrfGuard::check_url` must never panic, and any URL it
//! accepts is `https`, has no userinfo, and names either a domain (judged again at dial time by
//! the filtering resolver) or an IP address the `AddressPolicy` allows.
//!
//! The resolver points at 127.0.0.1:9 and is never queried: `check_url` does no I/O.
#![no_main]

use std::net::IpAddr;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use url::Host;
use usher::net::addr::AddressPolicy;
use usher::net::guard::SsrfGuard;
use usher::net::resolver::FilteringResolver;

static GUARD: LazyLock<SsrfGuard> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let _entered = rt.enter();
    let ns = ["127.0.0.1:9".parse().expect("addr")];
    let resolver = FilteringResolver::new(&ns, AddressPolicy::default()).expect("resolver");
    SsrfGuard::new(resolver, false)
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let guard = &*GUARD;
    let Ok(url) = guard.check_url(text) else {
        return;
    };
    assert_eq!(url.scheme(), "https", "{text:?}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{text:?}"
    );
    match url.host() {
        None => panic!("accepted a URL without a host: {text:?}"),
        Some(Host::Domain(d)) => {
            assert!(!d.is_empty(), "{text:?}");
            // A "domain" that the HTTP connector or the resolver would take for an IP literal
            // (both use `IpAddr::from_str`, brackets trimmed) would be dialed unjudged. Names like
            // `8.8.8.8..` are fine: no one reads them as an address, so they go through the
            // filtering resolver, which judges every answer.
            let bare = d.trim_start_matches('[').trim_end_matches(']');
            assert!(
                bare.parse::<IpAddr>().is_err(),
                "IP literal passed as a domain: {text:?}"
            );
            let one_dot = bare.strip_suffix('.').unwrap_or(bare);
            assert!(
                one_dot.parse::<IpAddr>().is_err(),
                "IP literal passed as a domain: {text:?}"
            );
        }
        Some(Host::Ipv4(v4)) => {
            assert!(guard.policy().allows(IpAddr::V4(v4)), "{text:?} → {v4}")
        }
        Some(Host::Ipv6(v6)) => {
            assert!(guard.policy().allows(IpAddr::V6(v6)), "{text:?} → {v6}")
        }
    }
});

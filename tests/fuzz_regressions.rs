//! One test per input the fuzz targets (`fuzz/`) flagged, named after what it showed, so the
//! finding stays fixed (or, for a false alarm of a fuzz oracle, the reasoning stays written down).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::net::IpAddr;

use url::Host;
use usher::net::addr::AddressPolicy;
use usher::net::guard::SsrfGuard;
use usher::net::resolver::FilteringResolver;

fn guard() -> SsrfGuard {
    // A name server that is never queried: `check_url` does no I/O.
    let ns = ["127.0.0.1:9".parse().expect("addr")];
    let resolver = FilteringResolver::new(&ns, AddressPolicy::default()).expect("resolver");
    SsrfGuard::new(resolver, false)
}

/// `ssrf_url` found `https://8.8.8.8....../hook` accepted with a host that looks like an IP.
///
/// Not a bypass: WHATWG URL parsing drops only one trailing empty label, so `127.0.0.1..` is a
/// domain name, and no one dials it as an address — `IpAddr::from_str` (what the HTTP connector
/// and the filtering resolver use to spot literals) refuses it, so it goes through the filtering
/// resolver, which judges every DNS answer. The fuzz oracle was tightened to that invariant; this
/// test pins both halves so a change in either crate shows.
#[tokio::test]
async fn ip_lookalike_with_extra_trailing_dots_is_a_domain_judged_at_dial_time() {
    let g = guard();
    for url in [
        "https://8.8.8.8..../hook",
        "https://127.0.0.1../",
        "https://169.254.169.254.../latest/meta-data/",
    ] {
        let parsed = g
            .check_url(url)
            .expect("a domain name passes the pure check");
        let Some(Host::Domain(host)) = parsed.host() else {
            panic!("{url}: expected a domain host, got {:?}", parsed.host());
        };
        assert!(
            host.parse::<IpAddr>().is_err(),
            "{host} would be dialed as a literal"
        );
    }
    // One trailing dot is an IP literal to the URL parser, and judged as one.
    for url in ["https://127.0.0.1./", "https://169.254.169.254./"] {
        assert!(g.check_url(url).is_err(), "{url}");
    }
}

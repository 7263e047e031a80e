//! The Debian package's files (`packaging/`) stay what the README promises: its unit is the
//! repository's hardened unit with only the package's paths and user changed, and its config is
//! a loopback, deny-by-default config with the package's state directory and token file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::collections::BTreeSet;

use usher::config::Config;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `Key=Value` directives of a unit file, comments and blank lines left out.
fn directives(path: &str) -> BTreeSet<String> {
    std::fs::read_to_string(format!("{ROOT}/{path}"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && l.contains('='))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_package_unit_is_the_hardened_unit_with_the_package_paths_and_user() {
    let repo = directives("systemd/usher.service");
    let package = directives("packaging/usher.service");
    let only_repo: BTreeSet<&str> = repo.difference(&package).map(String::as_str).collect();
    let only_package: BTreeSet<&str> = package.difference(&repo).map(String::as_str).collect();
    assert_eq!(
        only_repo,
        BTreeSet::from([
            "ExecStart=/usr/local/bin/usher serve --config /etc/usher/config.toml",
            "DynamicUser=yes",
            "ConfigurationDirectory=usher",
        ])
    );
    assert_eq!(
        only_package,
        BTreeSet::from([
            "ExecStart=/usr/bin/usher serve --config /etc/usher/config.toml",
            "User=usher",
            "Group=usher",
        ])
    );
}

#[test]
fn the_package_config_is_loopback_deny_by_default_with_the_package_paths() {
    let text = std::fs::read_to_string(format!("{ROOT}/packaging/config.toml")).unwrap();
    let config = Config::parse(&text).unwrap();
    assert!(config.trigger.listen.ip().is_loopback());
    assert!(config.control.listen.ip().is_loopback());
    assert_eq!(config.default_policy.kind, usher::spec::PolicyKind::Deny);
    assert_eq!(config.state.dir, std::path::Path::new("/var/lib/usher"));
    assert_eq!(config.control.tokens_file, "/etc/usher/control-tokens");
    assert!(
        config.control.tokens.is_empty(),
        "no secret in a shipped file"
    );
    assert!(config.tenants.is_empty() && config.keys.is_empty() && config.policies.is_empty());
}

#[test]
fn the_maintainer_scripts_never_restart_on_upgrade_and_remove_state_only_on_purge() {
    let cargo = std::fs::read_to_string(format!("{ROOT}/Cargo.toml")).unwrap();
    assert!(
        cargo.contains("restart-after-upgrade = false"),
        "see [package.metadata.deb]"
    );
    assert!(
        cargo.contains("stop-on-upgrade = false"),
        "see [package.metadata.deb]"
    );
    let postrm = std::fs::read_to_string(format!("{ROOT}/packaging/debian/postrm")).unwrap();
    let purge = postrm
        .find("if [ \"$1\" = \"purge\" ]")
        .expect("a purge branch");
    let removal = postrm
        .find("rm -rf /var/lib/usher")
        .expect("state removed somewhere");
    assert!(
        removal > purge,
        "state is removed inside the purge branch only"
    );
    for script in ["postinst", "postrm"] {
        let text = std::fs::read_to_string(format!("{ROOT}/packaging/debian/{script}")).unwrap();
        assert!(
            text.contains("#DEBHELPER#"),
            "{script} needs the #DEBHELPER# token"
        );
        for line in text.lines().map(str::trim) {
            let runs = ["systemctl", "deb-systemd-invoke", "invoke-rc.d", "service "];
            if runs.iter().any(|r| line.starts_with(r)) {
                assert!(!line.contains("restart"), "{script} restarts usher: {line}");
            }
        }
    }
}

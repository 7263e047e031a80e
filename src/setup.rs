//! Turns a config file into the parts a running usher needs — the policy snapshot and the
//! evaluator — collecting every problem at once. `serve`, SIGHUP, `check-config` and `verify`
//! all load through here, so they agree on what a valid config is.

use std::path::Path;

use crate::config::Config;
use crate::decision::Evaluator;
use crate::net::client::GuardedClient;
use crate::policy::build::{self, Problems};
use crate::policy::model::Policy;
use crate::policy::store::Snapshot;
use crate::webhook::WebhookCaller;

/// A config that passed every check.
pub struct Loaded {
    pub config: Config,
    pub snapshot: Snapshot,
    pub evaluator: Evaluator,
    /// Things worth an operator's look that do not stop usher (e.g. a webhook host that does
    /// not resolve right now: every dial re-checks it anyway).
    pub warnings: Vec<String>,
}

/// Reads, checks and builds everything `path` describes, with a new outbound stack built from
/// its `[outbound]`. Must run inside a tokio runtime.
pub async fn load(path: &Path) -> Result<Loaded, Problems> {
    let config = Config::load(path).map_err(|e| Problems(vec![e.to_string()]))?;
    load_config(config, &Config::base_dir(path), None).await
}

/// Like [`load`], reusing the running outbound stack (SIGHUP: `[outbound]` changes take effect
/// on restart, and a reload builds no second resolver or pool).
pub async fn load_with(path: &Path, client: GuardedClient) -> Result<Loaded, Problems> {
    let config = Config::load(path).map_err(|e| Problems(vec![e.to_string()]))?;
    load_config(config, &Config::base_dir(path), Some(client)).await
}

/// Like [`load`], for a config already parsed; `client` is the outbound stack to use (`None`:
/// build one from `[outbound]`).
pub async fn load_config(
    config: Config,
    base_dir: &Path,
    client: Option<GuardedClient>,
) -> Result<Loaded, Problems> {
    let mut problems = Problems::default();
    let mut warnings = Vec::new();
    check_control(&config, &mut problems);
    if let Some(fleet) = &config.fleet {
        problems.0.extend(fleet.problems(base_dir));
    }
    let snapshot = build::from_config(&config, base_dir);
    let caller = match client {
        Some(client) => WebhookCaller::with_client(client, &config.webhook),
        None => WebhookCaller::new(&config.outbound, &config.webhook),
    };
    let (snapshot, caller) = match (snapshot, caller) {
        (Ok(s), Ok(c)) => (s, c),
        (s, c) => {
            if let Err(p) = s {
                problems.0.extend(p.0);
            }
            if let Err(e) = c {
                problems.0.push(e.to_string());
            }
            return Err(problems);
        }
    };
    for entry in snapshot.policies() {
        let publish_hook = match &entry.publish {
            crate::policy::model::PublishRule::Webhook(hook) => Some(hook),
            _ => None,
        };
        let hooks = match &entry.policy {
            Policy::Webhook(hook) => [Some(hook), publish_hook],
            _ => [publish_hook, None],
        };
        for hook in hooks.into_iter().flatten() {
            let at = format!("policies[object={:?}]", entry.object);
            match caller
                .guard()
                .validate_set_elsewhere(hook.url.as_str())
                .await
            {
                Ok((_, None)) => {}
                Ok((_, Some(dns))) => warnings.push(format!("{at}: {dns}")),
                Err(e) => problems.0.push(format!("{at}: {e}")),
            }
        }
    }
    for (id, tenant) in snapshot.tenants() {
        let Some(url) = &tenant.jwks_url else {
            continue;
        };
        let at = format!("tenants[id={id:?}].jwks_url");
        match caller.guard().validate_set_elsewhere(url).await {
            Ok((_, None)) => {}
            Ok((_, Some(dns))) => warnings.push(format!("{at}: {dns}")),
            Err(e) => problems.0.push(format!("{at}: {e}")),
        }
    }
    if config.sessions.max_entries == 0 {
        warnings.extend(untracked_rules(&snapshot));
    }
    if !problems.0.is_empty() {
        return Err(problems);
    }
    Ok(Loaded {
        config,
        snapshot,
        evaluator: Evaluator::new(caller),
        warnings,
    })
}

/// SPEC §5: no control listener on a non-loopback address without a token.
/// With tracking off (`max_entries = 0`), one warning per `jwt` policy whose session rules need
/// it: its sessions are refused with `viewer-session-limit`.
fn untracked_rules(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .policies()
        .filter(|e| match &e.policy {
            Policy::Jwt(rules) => rules.sessions.need_tracking(),
            _ => false,
        })
        .map(|e| {
            format!(
                "policies[object={:?}]: cut_at_exp or max_sessions_per_viewer with \
                 [sessions] max_entries = 0: its sessions are refused (viewer-session-limit)",
                e.object
            )
        })
        .collect()
}

fn check_control(config: &Config, problems: &mut Problems) {
    match control_tokens(config) {
        Ok(tokens) if tokens.is_empty() && !config.control.listen.ip().is_loopback() => {
            problems.0.push(format!(
                "control.listen {} is not a loopback address and no control token is set",
                config.control.listen
            ));
        }
        Ok(_) => {}
        Err(e) => problems.0.push(e),
    }
}

/// The control-plane bearer tokens: `[control] tokens` plus one per line of `tokens_file`.
pub fn control_tokens(config: &Config) -> Result<Vec<String>, String> {
    let mut tokens: Vec<String> = config.control.tokens.clone();
    if !config.control.tokens_file.is_empty() {
        let text = std::fs::read_to_string(&config.control.tokens_file)
            .map_err(|e| format!("control.tokens_file {}: {e}", config.control.tokens_file))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    if tokens.iter().any(|t| t.len() < 16) {
        return Err("control tokens must be at least 16 characters".into());
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reload_reuses_the_running_outbound_stack() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.toml");
        std::fs::write(&path, "[default_policy]\ntype = \"deny\"\n").unwrap();
        let running = load(&path).await.unwrap();
        let client = running.evaluator.webhooks().client().clone();
        let reloaded = load_with(&path, client.clone()).await.unwrap();
        assert!(reloaded.evaluator.webhooks().client().same_stack(&client));
        let fresh = load(&path).await.unwrap();
        assert!(!fresh.evaluator.webhooks().client().same_stack(&client));
    }
}

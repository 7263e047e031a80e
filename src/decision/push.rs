//! The publish decision (SPEC §10): one push and the `publish` rule of the stream's policy in,
//! one [`Decision`] out, through the same JWT check and webhook call as a viewer's. Nothing is
//! cached: every push (and every retry of one) is decided afresh.

use super::{Decision, Evaluator, JwtCheck, Mode, Request};
use crate::jwt::token::query_param;
use crate::policy::model::{JwtPolicy, PolicyEntry, PublishRule};
use crate::policy::store::Snapshot;
use crate::publish::StreamKeyHash;
use crate::publish::permission::Action;
use crate::reason::Reason;

/// One incoming push, as `STREAM_PUSH` or `PUSH_REWRITE` describes it. The push URL carries the
/// credential (`jwt` or `key` query parameter): never log it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushRequest<'a> {
    /// The stream name MistServer will use.
    pub stream: &'a str,
    /// The pushing party's address.
    pub host: &'a str,
    /// The connector (`RTMP`, …); empty for `PUSH_REWRITE`.
    pub connector: &'a str,
    /// The push URL with its query.
    pub push_url: &'a str,
}

impl PushRequest<'_> {
    /// The same push in the viewer's request shape, so the JWT check and the webhook call run
    /// unchanged: no session, the host as the address, the push URL as the request URL.
    fn as_request(&self) -> Request<'_> {
        Request {
            stream: self.stream,
            session_id: "",
            viewer_ip: self.host,
            token: "",
            connector: self.connector,
            request_url: self.push_url,
        }
    }
}

/// The push URL a dry run evaluates (`/v1/test`, `usher verify --publish`): an RTMP push of the
/// stream carrying the token as `jwt` and the stream key as `key`, as an encoder would send them.
pub fn dry_run_push_url(stream: &str, token: &str, key: &str) -> String {
    let Ok(mut url) = url::Url::parse("rtmp://localhost/live/") else {
        return String::new();
    };
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push(stream);
    }
    {
        let mut query = url.query_pairs_mut();
        if !token.is_empty() {
            query.append_pair("jwt", token);
        }
        if !key.is_empty() {
            query.append_pair("key", key);
        }
    }
    let mut url = String::from(url);
    if url.ends_with('?') {
        url.pop();
    }
    url
}

impl Evaluator {
    /// Decides `push` under `entry.publish` (the policy `snapshot` resolved for the stream).
    pub async fn evaluate_push(
        &self,
        snapshot: &Snapshot,
        entry: &PolicyEntry,
        push: &PushRequest<'_>,
        mode: Mode,
    ) -> Decision {
        let mut d = match &entry.publish {
            PublishRule::Deny => {
                Decision::new(entry, false, Reason::PublishDeny, "publish rule is deny")
            }
            PublishRule::Public => {
                Decision::new(entry, true, Reason::Allowed, "publish rule is public")
            }
            PublishRule::StreamKey(hash) => stream_key(entry, hash, push.push_url),
            PublishRule::Jwt(rules) => self.push_jwt(snapshot, entry, rules, push, mode).await,
            PublishRule::Webhook(hook) => {
                let request = push.as_request();
                self.evaluate_webhook(entry, hook, &request, mode, "publish")
                    .await
            }
        };
        d.policy_type = entry.publish.kind().decided_by();
        d
    }

    /// A publish token: every check of a viewer's, plus the stream in the claim's `publish` list.
    async fn push_jwt(
        &self,
        snapshot: &Snapshot,
        entry: &PolicyEntry,
        rules: &JwtPolicy,
        push: &PushRequest<'_>,
        mode: Mode,
    ) -> Decision {
        let Ok(now) = self.clock.unix_s() else {
            return Decision::new(
                entry,
                false,
                Reason::InternalError,
                "the system clock reads before 1970",
            );
        };
        let request = push.as_request();
        let check = JwtCheck {
            snapshot,
            entry,
            rules,
            request: &request,
            mode,
            // Nothing about a push outlives it, so no earlier verify is known either.
            verified_by: None,
            now,
            // A revoked viewer id is refused on a push too: the revocation is of its tokens.
            revocations: &self.revocations,
            permission: Some(Action::Publish),
        };
        let d = check.run(None);
        match self.refetched_keys(snapshot, entry, &d).await {
            Some(keys) => check.run(Some(&keys)),
            None => d,
        }
    }
}

/// The `key` query parameter against the stored hash, in constant time.
fn stream_key(entry: &PolicyEntry, hash: &StreamKeyHash, push_url: &str) -> Decision {
    match query_param(push_url, "key") {
        None => Decision::new(
            entry,
            false,
            Reason::StreamKeyMismatch,
            "no key parameter in the push URL",
        ),
        Some(key) if hash.matches(&key) => {
            Decision::new(entry, true, Reason::Allowed, "stream key matches")
        }
        Some(_) => Decision::new(
            entry,
            false,
            Reason::StreamKeyMismatch,
            "the key parameter is not the stream key",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dry_run_push_url_carries_token_and_key_as_an_encoder_would() {
        assert_eq!(
            dry_run_push_url("live+abc", "T", "K"),
            "rtmp://localhost/live/live+abc?jwt=T&key=K"
        );
        assert_eq!(dry_run_push_url("x", "", ""), "rtmp://localhost/live/x");
        let sneaky = dry_run_push_url("a?key=K#", "", "");
        assert_eq!(query_param(&sneaky, "key"), None, "{sneaky}");
    }
}

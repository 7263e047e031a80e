//! The control API as an OpenAPI 3.1 document, for control planes written by other teams. Request
//! bodies are described by the very types the handlers parse them into (`utoipa::ToSchema` on
//! [`KeyBody`], [`PolicySpec`], [`InvalidateBody`], [`TestBody`]), so the document cannot drift
//! from the parser; answers built as JSON by the handlers are described by the types below.
//!
//! The functions here are never called: each carries one route's description. `openapi.json` at
//! the repository root is this document; `tests/openapi.rs` fails when it is stale or when a route
//! of the router or a body type is missing from it (`cargo run -- openapi > openapi.json`
//! regenerates it).

#![allow(dead_code)]

use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::invalidate::InvalidateBody;
use super::keys::KeyBody;
use super::test::TestBody;
use crate::decision::Decision;
use crate::enforce::Invalidated;
use crate::fleet::status::NodeReport;
use crate::jwks::JwksTenantStatus;
use crate::spec::{KeyStatus, PolicySpec};
use crate::status::{CacheStatus, DecisionRates, InvalidationStatus, ReasonCount, StatusReport};

/// The document as JSON (what `GET /v1/openapi.json` serves).
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

/// The document as the pretty JSON committed as `openapi.json`.
pub fn pretty() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "usher control API",
        description = "Keys, playback policies, invalidation and dry runs of one usher daemon \
            (SPEC §5, §6). Every `/v1/` call needs `Authorization: Bearer <token>`; bodies are JSON of \
            at most 64 KiB and unknown fields are refused. Errors are `{\"error\": code, \"message\": \
            text}` with the codes listed in the README.",
        license(name = "Apache-2.0")
    ),
    servers((url = "http://127.0.0.1:4251", description = "the default control listener")),
    paths(
        list_keys, put_key, revoke_key,
        get_policy, put_policy, delete_policy,
        invalidate, test, status, openapi_json,
        healthz, metrics,
        super::viewers::revoke_doc, super::sessions::count_doc,
        fleet_list,
    ),
    components(schemas(
        KeyBody, KeyStatus, PolicySpec, InvalidateBody, TestBody,
        KeyView, KeyList, KeyChange, PolicyView, PolicyChange, PolicyDeleted, Invalidated,
        Decision, ErrorBody,
        super::viewers::RevokeViewerBody, super::viewers::ViewerRevoked,
        super::sessions::SessionCounts, super::sessions::TenantSessions,
        super::sessions::StreamSessions,
        StatusReport, DecisionRates, ReasonCount, CacheStatus, InvalidationStatus, JwksTenantStatus,
        FleetView, NodeReport,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "keys", description = "Signing keys set over the API (public keys only)."),
        (name = "policies", description = "Playback policies on stream names, objects or base names."),
        (name = "invalidation", description = "Dropping cached decisions and re-asking MistServer."),
        (name = "operations", description = "Dry runs, status, this document, health and metrics."),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme every `/v1/` call uses.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// An error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `bad-body`, `bad-name`, `unauthorized`, `not-found`, `method-not-allowed`,
    /// `read-only`, `kid-taken`, `key-revoked`, `too-many-keys`, `invalid-key`, `invalid-policy`,
    /// `url-not-allowed`, `invalid-url`, `dns-failure`, `storage-error`, `clock-error`; with `[fleet]` also
    /// `revision-conflict` (409) and `fleet-unavailable` (503).
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

/// A key as shown: never an HS* secret (its `jwk` is an `oct` JWK whose `k` is `********`).
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub tenant: String,
    pub alg: String,
    /// `active` or `revoked`.
    pub status: String,
    /// `config`, `api` or `jwks`.
    pub source: String,
    /// The public JWK; for HS* an `oct` JWK with `k` masked.
    pub jwk: Option<serde_json::Value>,
}

/// `GET /v1/keys`.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// A key change: the key as shown, and what it invalidated.
#[derive(Serialize, ToSchema)]
pub struct KeyChange {
    #[serde(flatten)]
    pub key: KeyView,
    #[serde(flatten)]
    pub invalidated: Invalidated,
}

/// A policy as shown: the body that would set it, plus `object` and `source`; a webhook secret
/// is always `********`.
#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    pub object: String,
    pub tenant: String,
    /// `public`, `deny`, `jwt` or `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `config` or `api`.
    pub source: String,
    pub allowed_kids: Option<Vec<String>>,
    pub required_audience: Option<String>,
    pub required_claims: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    pub object_claim: Option<String>,
    pub max_lifetime_s: Option<u64>,
    pub cut_at_exp: Option<bool>,
    pub max_sessions_per_viewer: Option<u32>,
    /// `deny-new` or `end-oldest`.
    pub on_exceed: Option<String>,
    pub url: Option<String>,
    /// Always `********`.
    pub secret: Option<String>,
    pub timeout_ms: Option<u64>,
    /// `jwt` policies: the token's permission claim must list the stream under `read`.
    pub require_permission: Option<bool>,
    /// Who may push (SPEC §10); `{"type": "deny"}` when none was set. A webhook `secret` and a
    /// `stream_key` are always `********`; `stream_key_sha256` is never shown.
    pub publish: Option<crate::spec::PublishSpec>,
}

/// A policy change: the policy as shown, and what it invalidated.
#[derive(Serialize, ToSchema)]
pub struct PolicyChange {
    #[serde(flatten)]
    pub policy: PolicyView,
    #[serde(flatten)]
    pub invalidated: Invalidated,
}

/// A deleted policy, and what its deletion invalidated.
#[derive(Serialize, ToSchema)]
pub struct PolicyDeleted {
    pub object: String,
    pub deleted: bool,
    #[serde(flatten)]
    pub invalidated: Invalidated,
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses(
        (status = 200, description = "Every key, active and revoked, sorted by kid", body = KeyList),
        (status = 401, body = ErrorBody),
    ))]
fn list_keys() {}

#[utoipa::path(put, path = "/v1/keys/{kid}", tag = "keys", request_body = KeyBody,
    params(("kid" = String, Path, description = "`[A-Za-z0-9._-]{1,128}`", pattern = r"^[A-Za-z0-9._-]{1,128}$"), ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]+"?$"#, description = "Fleet only: the revision the client read (`GET` answers carry it as `revision`); `0`: must not exist yet. Without it, the revision this node's copy holds.")),
    responses(
        (status = 201, description = "A new key", body = KeyChange),
        (status = 200, description = "The key replaced; new material invalidates the tenant", body = KeyChange),
        (status = 400, description = "`bad-body`, `bad-name`; also `secret`, `secret_file`, `public_key_file` and `status`, which only the config file may set (an HS* secret goes in as an `oct` JWK)", body = ErrorBody),
        (status = 401, body = ErrorBody),
(status = 409, description = "`read-only`, `kid-taken`, `key-revoked`; fleet: `revision-conflict`", body = ErrorBody),
        (status = 422, description = "`too-many-keys`, `invalid-key`", body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
        (status = 503, description = "Fleet: `fleet-unavailable`, JetStream did not confirm the write", body = ErrorBody),
    ))]
fn put_key() {}

#[utoipa::path(post, path = "/v1/keys/{kid}/revoke", tag = "keys",
    params(("kid" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,128}$"), ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]+"?$"#, description = "Fleet only: the revision the client read (`GET` answers carry it as `revision`); `0`: must not exist yet. Without it, the revision this node's copy holds.")),
    responses(
        (status = 200, description = "Revoked for good; the tenant's streams invalidated", body = KeyChange),
        (status = 400, description = "`bad-name`: the kid is not `[A-Za-z0-9._-]{1,128}`; `bad-body`: `If-Match` is not a revision", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`not-found`", body = ErrorBody),
        (status = 409, description = "`read-only`; fleet: `revision-conflict`", body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
        (status = 503, description = "Fleet: `fleet-unavailable`, JetStream did not confirm the write", body = ErrorBody),
    ))]
fn revoke_key() {}

#[utoipa::path(get, path = "/v1/policies/{object}", tag = "policies",
    params(("object" = String, Path, description = "A stream name, an object id or a base name; `+` stays `+`, `%XX` is decoded")),
    responses(
        (status = 200, body = PolicyView),
        (status = 400, description = "`bad-name`: not 1..=256 printable bytes without whitespace, or bad `%XX`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`not-found`", body = ErrorBody),
    ))]
fn get_policy() {}

#[utoipa::path(put, path = "/v1/policies/{object}", tag = "policies", request_body = PolicySpec,
    params(("object" = String, Path), ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]+"?$"#, description = "Fleet only: the revision the client read (`GET` answers carry it as `revision`); `0`: must not exist yet. Without it, the revision this node's copy holds.")),
    responses(
        (status = 201, description = "A new policy; its streams invalidated", body = PolicyChange),
        (status = 200, description = "The policy replaced; its streams invalidated", body = PolicyChange),
        (status = 400, description = "`bad-body`, `bad-name`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "`read-only`; fleet: `revision-conflict`", body = ErrorBody),
        (status = 422, description = "`invalid-policy`, `url-not-allowed`, `invalid-url`, `dns-failure`", body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
        (status = 503, description = "Fleet: `fleet-unavailable`, JetStream did not confirm the write", body = ErrorBody),
    ))]
fn put_policy() {}

#[utoipa::path(delete, path = "/v1/policies/{object}", tag = "policies",
    params(("object" = String, Path), ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]+"?$"#, description = "Fleet only: the revision the client read (`GET` answers carry it as `revision`); `0`: must not exist yet. Without it, the revision this node's copy holds.")),
    responses(
        (status = 200, description = "Deleted; the name falls back to the next policy in the lookup order", body = PolicyDeleted),
        (status = 400, description = "`bad-name`: not 1..=256 printable bytes without whitespace, or bad `%XX`; `bad-body`: `If-Match` is not a revision", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`not-found`", body = ErrorBody),
        (status = 409, description = "`read-only`; fleet: `revision-conflict`", body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
        (status = 503, description = "Fleet: `fleet-unavailable`, JetStream did not confirm the write", body = ErrorBody),
    ))]
fn delete_policy() {}

#[utoipa::path(post, path = "/v1/invalidate", tag = "invalidation", request_body = InvalidateBody,
    responses(
        (status = 200, description = "Dropped here and handed to MistServer (fleet: published to every node, with its `sequence`)", body = Invalidated),
        (status = 400, description = "`bad-body`, `bad-name`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, description = "Fleet: `fleet-unavailable`", body = ErrorBody),
    ))]
fn invalidate() {}

#[utoipa::path(post, path = "/v1/test", tag = "operations", request_body = TestBody,
    responses(
        (status = 200, description = "The decision (`allowed` says the outcome)", body = Decision),
        (status = 400, description = "`bad-body`, `bad-name`", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
fn test() {}

#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses(
        (status = 200, description = "What `usher status` shows", body = StatusReport),
        (status = 401, body = ErrorBody),
    ))]
fn status() {}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses(
        (status = 200, description = "This document", content_type = "application/json", body = Object),
        (status = 401, body = ErrorBody),
    ))]
fn openapi_json() {}

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "`\"ok\"` (JSON), no token needed", content_type = "application/json", body = String)))]
fn healthz() {}

#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text, no token needed", content_type = "text/plain", body = String)))]
fn metrics() {}

/// `GET /v1/fleet`: this node's view of the fleet (SPEC §11).
#[derive(Serialize, ToSchema)]
pub struct FleetView {
    /// This node.
    pub node_id: String,
    /// Whether this node's NATS connection is up.
    pub connected: bool,
    /// Every node's last report (this node's made now), sorted by id; each also has `stale`
    /// (no report for three status intervals).
    pub nodes: Vec<NodeReport>,
}

#[utoipa::path(get, path = "/v1/fleet", tag = "operations",
    responses(
        (status = 200, description = "Every node: applied revisions, lag, pending invalidations, last seen", body = FleetView),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`not-found`: no `[fleet]` section", body = ErrorBody),
    ))]
fn fleet_list() {}

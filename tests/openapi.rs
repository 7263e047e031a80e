//! The OpenAPI document of the control API (`openapi.json`): current, complete (every route of
//! the router, every body type, exactly the fields the parser accepts) and served, authenticated,
//! at `GET /v1/openapi.json`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::collections::BTreeSet;

use common::api::Api;
use common::daemon::Daemon;
use serde::de::DeserializeOwned;
use serde_json::Value;
use usher::control::invalidate::InvalidateBody;
use usher::control::keys::KeyBody;
use usher::control::openapi;
use usher::control::test::TestBody;
use usher::control::viewers::RevokeViewerBody;
use usher::spec::PolicySpec;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn doc() -> Value {
    openapi::document()
}

#[test]
fn the_committed_openapi_json_is_current() {
    let fresh = openapi::pretty();
    let path = format!("{ROOT}/openapi.json");
    if std::env::var_os("USHER_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "openapi.json is stale: regenerate it with `cargo run -q -- openapi > openapi.json` \
         (or USHER_BLESS=1 cargo test --test openapi)"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_bearer_auth() {
    let d = doc();
    assert_eq!(d["openapi"], "3.1.0");
    assert_eq!(
        d["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(d["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        d["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([{}])
    );
}

/// The `(method, path)` pairs of the control API's route table.
fn router_routes() -> BTreeSet<(String, String)> {
    usher::control::routes()
        .map(|(method, path)| (method.to_ascii_lowercase(), path.to_owned()))
        .collect()
}

fn documented_routes() -> BTreeSet<(String, String)> {
    let d = doc();
    let mut routes = BTreeSet::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                routes.insert((method.clone(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_route_of_the_router_is_in_the_document() {
    let router = router_routes();
    assert!(
        router.len() >= 12,
        "the router scan found too little: {router:?}"
    );
    assert!(
        router.contains(&("put".into(), "/v1/keys/{kid}".into())),
        "{router:?}"
    );
    assert!(
        router.contains(&("get".into(), "/metrics".into())),
        "{router:?}"
    );
    let documented = documented_routes();
    let missing: Vec<_> = router.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&router).collect();
    assert!(
        extra.is_empty(),
        "documented routes the router does not have: {extra:?}"
    );
}

/// The fields serde accepts for `T`, read from its unknown-field error.
fn accepted_fields<T: DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
    let err = serde_json::from_str::<T>(r#"{"\u0001":1}"#)
        .unwrap_err()
        .to_string();
    let list = err
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    list.split(", ")
        .map(|f| f.split('`').nth(1).unwrap().to_owned())
        .collect()
}

fn schema_fields(name: &str) -> BTreeSet<String> {
    let d = doc();
    let schema = &d["components"]["schemas"][name];
    assert_eq!(
        schema["additionalProperties"], false,
        "{name} must refuse unknown fields"
    );
    schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name}"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn every_request_body_is_the_type_that_parses_it_with_exactly_its_fields() {
    let d = doc();
    let body_of = |method: &str, path: &str| {
        d["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no request body"))
            .trim_start_matches("#/components/schemas/")
            .to_owned()
    };
    let cases = [
        (
            "put",
            "/v1/keys/{kid}",
            "KeyBody",
            accepted_fields::<KeyBody>(),
        ),
        (
            "put",
            "/v1/policies/{object}",
            "PolicySpec",
            accepted_fields::<PolicySpec>(),
        ),
        (
            "post",
            "/v1/invalidate",
            "InvalidateBody",
            accepted_fields::<InvalidateBody>(),
        ),
        (
            "post",
            "/v1/test",
            "TestBody",
            accepted_fields::<TestBody>(),
        ),
        (
            "post",
            "/v1/viewers/revoke",
            "RevokeViewerBody",
            accepted_fields::<RevokeViewerBody>(),
        ),
    ];
    for (method, path, ty, fields) in cases {
        assert_eq!(body_of(method, path), ty);
        assert_eq!(
            schema_fields(ty),
            fields,
            "{ty}: schema fields differ from the parser's"
        );
    }
    // Only these routes take a body; any other route with one must be added above.
    let with_body: BTreeSet<_> = documented_routes()
        .into_iter()
        .filter(|(m, p)| !d["paths"][p][m]["requestBody"].is_null())
        .collect();
    assert_eq!(with_body.len(), 5, "{with_body:?}");
}

#[tokio::test]
async fn every_documented_route_reaches_a_handler_and_the_document_is_served_with_auth() {
    let d = tokio::task::spawn_blocking(|| Daemon::start(""))
        .await
        .unwrap();
    let api = Api::new(&d);
    for (method, path) in documented_routes() {
        let concrete = path.replace("{kid}", "k1").replace("{object}", "abc");
        let body = matches!(method.as_str(), "put" | "post").then(|| serde_json::json!({}));
        let (code, answer) = api
            .call(&method.to_ascii_uppercase(), &concrete, body)
            .await;
        assert_ne!(code, 405, "{method} {path}: {answer}");
        assert!(
            !(code == 404 && answer["message"] == "no such endpoint"),
            "{method} {path} is documented but not routed"
        );
    }
    let (code, served) = api.call("GET", "/v1/openapi.json", None).await;
    assert_eq!(code, 200);
    assert_eq!(served, doc());
    let (code, _) = api.call_as(None, "GET", "/v1/openapi.json", None).await;
    assert_eq!(code, 401);
}

/// The documented `(required, all)` property names of a schema, through `$ref` and `allOf`.
fn documented_fields(d: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    if let Some(name) = schema["$ref"].as_str() {
        let name = name.trim_start_matches("#/components/schemas/");
        return documented_fields(d, &d["components"]["schemas"][name]);
    }
    let (mut required, mut all) = (BTreeSet::new(), BTreeSet::new());
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (r, a) = documented_fields(d, part);
        required.extend(r);
        all.extend(a);
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        required.insert(name.as_str().unwrap().to_owned());
    }
    for name in schema["properties"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
    {
        all.insert(name.clone());
    }
    (required, all)
}

#[tokio::test]
async fn every_answer_has_the_fields_its_documented_schema_names() {
    let d = tokio::task::spawn_blocking(|| Daemon::start(""))
        .await
        .unwrap();
    let api = Api::new(&d);
    let key = common::api::Key::new("k1");
    let calls: Vec<(&str, String, Option<Value>, u16)> = vec![
        (
            "put",
            "/v1/keys/{kid}".into(),
            Some(
                serde_json::json!({"tenant": "t1", "alg": "ES256", "public_key_pem": key.public_pem}),
            ),
            201,
        ),
        ("get", "/v1/keys".into(), None, 200),
        (
            "put",
            "/v1/policies/{object}".into(),
            Some(serde_json::json!({"tenant": "t1", "type": "jwt", "allowed_kids": ["k1"]})),
            201,
        ),
        ("get", "/v1/policies/{object}".into(), None, 200),
        (
            "post",
            "/v1/test".into(),
            Some(serde_json::json!({"stream": "live+abc", "viewer_token": key.token()})),
            200,
        ),
        (
            "post",
            "/v1/invalidate".into(),
            Some(serde_json::json!({"tenant": "t1"})),
            200,
        ),
        ("delete", "/v1/policies/{object}".into(), None, 200),
        ("post", "/v1/keys/{kid}/revoke".into(), None, 200),
        ("get", "/v1/status".into(), None, 200),
        (
            "put",
            "/v1/keys/{kid}".into(),
            Some(serde_json::json!({"tenant": "t1", "secret": "only in the config file"})),
            400,
        ),
    ];
    let doc = doc();
    for (method, path, body, status) in calls {
        let concrete = path.replace("{kid}", "k1").replace("{object}", "abc");
        let (code, answer) = api
            .call(&method.to_ascii_uppercase(), &concrete, body)
            .await;
        assert_eq!(code, status, "{method} {concrete}: {answer}");
        let schema = &doc["paths"][&path][method]["responses"][status.to_string()]["content"]["application/json"]
            ["schema"];
        let (required, all) = documented_fields(&doc, schema);
        assert!(
            !all.is_empty(),
            "{method} {path} {status}: no documented fields"
        );
        let got: BTreeSet<String> = answer.as_object().unwrap().keys().cloned().collect();
        let undocumented: Vec<_> = got.difference(&all).collect();
        assert!(
            undocumented.is_empty(),
            "{method} {path}: undocumented fields {undocumented:?}"
        );
        let missing: Vec<_> = required.difference(&got).collect();
        assert!(
            missing.is_empty(),
            "{method} {path}: documented but missing {missing:?}"
        );
        if path == "/v1/keys" {
            let item = &doc["components"]["schemas"]["KeyView"];
            let (_, all) = documented_fields(&doc, item);
            let got: BTreeSet<String> = answer["keys"][0]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            assert_eq!(got, all, "a listed key");
        }
    }
}

//! Speaks to the control API the way an operator's tooling does: JSON over HTTP with the test
//! bearer token, no proxy; and ES256 keys with viewer tokens signed by them.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use usher::keys::keygen::generate_es256;
use usher::keys::sign::{SignOptions, sign};

use super::daemon::Daemon;

/// The control token of [`super::daemon::base_config`].
pub const TOKEN: &str = "test-control-token";

/// A client for one daemon's control listener.
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(d: &Daemon) -> Api {
        let control = d.control.expect("ready line names the control address");
        Api {
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: format!("http://{control}"),
        }
    }

    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("control answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// The `/metrics` text (no token needed).
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(Some(TOKEN), method, path, body).await
    }

    pub async fn raw(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (
            status,
            serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
        )
    }
}

/// A key pair; `token` signs a viewer token with it.
pub struct Key {
    pub kid: String,
    pub private_pem: String,
    pub public_pem: String,
}

impl Key {
    pub fn new(kid: &str) -> Key {
        let pair = generate_es256(kid).unwrap();
        Key {
            kid: kid.into(),
            private_pem: pair.private_pem.to_string(),
            public_pem: pair.public_pem,
        }
    }

    pub fn token(&self) -> String {
        let opts = SignOptions {
            kid: self.kid.clone(),
            sub: Some("vod".into()),
            ..SignOptions::default()
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        sign(self.private_pem.as_bytes(), &opts, now).unwrap()
    }

    pub fn body(&self, tenant: &str) -> Value {
        json!({"tenant": tenant, "alg": "ES256", "public_key_pem": self.public_pem})
    }
}

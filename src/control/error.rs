//! Every way a control call can fail, and the one mapping to an HTTP status and a stable code.

use hyper::StatusCode;

use crate::enforce::Refused;
use crate::state::StateError;

/// A control API error. `Display` is the human message; [`ApiError::code`] the stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or not one of the configured ones.
    #[error("a valid bearer token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    /// Not JSON, the wrong shape, an unknown or missing field, too large.
    #[error("{0}")]
    BadBody(String),
    /// A kid, tenant or object name that is not allowed.
    #[error("{0}")]
    BadName(String),
    /// No such endpoint, key or policy.
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// Defined in the config file: read-only to the API.
    #[error("{0}")]
    ReadOnly(String),
    /// The kid belongs to another tenant.
    #[error("{0}")]
    KidTaken(String),
    /// A revoked kid stays revoked.
    #[error("{0}")]
    KeyRevoked(String),
    /// The tenant already has its maximum of active keys.
    #[error("{0}")]
    TooManyKeys(String),
    /// The key material does not load.
    #[error("{0}")]
    InvalidKey(String),
    /// The policy does not hold together (type, fields, secret, timeout).
    #[error("{0}")]
    InvalidPolicy(String),
    /// The SSRF guard refused a webhook URL; `code` is the guard's stable code.
    #[error("{message}")]
    UrlRefused {
        /// `invalid-url`, `url-not-allowed` or `dns-failure`.
        code: &'static str,
        /// The guard's message.
        message: String,
    },
    /// The state database failed; nothing was changed.
    #[error("{0}")]
    Storage(#[from] StateError),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadBody(_) | ApiError::BadName(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ReadOnly(_) | ApiError::KidTaken(_) | ApiError::KeyRevoked(_) => {
                StatusCode::CONFLICT
            }
            ApiError::TooManyKeys(_)
            | ApiError::InvalidKey(_)
            | ApiError::InvalidPolicy(_)
            | ApiError::UrlRefused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadBody(_) => "bad-body",
            ApiError::BadName(_) => "bad-name",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::ReadOnly(_) => "read-only",
            ApiError::KidTaken(_) => "kid-taken",
            ApiError::KeyRevoked(_) => "key-revoked",
            ApiError::TooManyKeys(_) => "too-many-keys",
            ApiError::InvalidKey(_) => "invalid-key",
            ApiError::InvalidPolicy(_) => "invalid-policy",
            ApiError::UrlRefused { code, .. } => code,
            ApiError::Storage(_) => "storage-error",
        }
    }

    /// The JSON body: `{"error": code, "message": text}`.
    pub fn body(&self) -> serde_json::Value {
        if let ApiError::Storage(e) = self {
            tracing::error!(error = %e, "state database");
        }
        serde_json::json!({ "error": self.code(), "message": self.to_string() })
    }
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> Self {
        match e {
            Refused::NotFound(m) => ApiError::NotFound(m),
            Refused::ReadOnly(m) => ApiError::ReadOnly(m),
            Refused::KidTaken(m) => ApiError::KidTaken(m),
            Refused::KeyRevoked(m) => ApiError::KeyRevoked(m),
            Refused::TooManyKeys(m) => ApiError::TooManyKeys(m),
            Refused::InvalidKey(m) => ApiError::InvalidKey(m),
            Refused::InvalidPolicy(m) => ApiError::InvalidPolicy(m),
            Refused::UrlRefused { code, message } => ApiError::UrlRefused { code, message },
            Refused::Storage(e) => ApiError::Storage(e),
        }
    }
}

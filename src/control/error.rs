//! Every way a control call can fail, and the one mapping to an HTTP status and a stable code.

use hyper::StatusCode;

use crate::enforce::Refused;
use crate::fleet::write::WriteError;

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
    /// The path exists but not with this method; the methods it answers (the `Allow` header).
    #[error("method not allowed on this endpoint (allowed: {0})")]
    MethodNotAllowed(&'static str),
    /// Fleet (SPEC §11): the write names a revision that is no longer the latest (409).
    #[error("{0}")]
    Conflict(String),
    /// Fleet (SPEC §11): JetStream did not confirm the write (503); see README "Fleet".
    #[error("{0}")]
    FleetUnavailable(String),
    /// The change path refused the change; nothing was changed.
    #[error(transparent)]
    Refused(#[from] Refused),
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        match e {
            WriteError::Conflict(detail) => ApiError::Conflict(detail),
            WriteError::Unavailable(detail) => ApiError::FleetUnavailable(detail),
        }
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadBody(_) | ApiError::BadName(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::FleetUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused(refused) => match refused {
                Refused::BadName(_) => StatusCode::BAD_REQUEST,
                Refused::ReadOnly(_) | Refused::KidTaken(_) | Refused::KeyRevoked(_) => {
                    StatusCode::CONFLICT
                }
                Refused::TooManyKeys(_)
                | Refused::InvalidKey(_)
                | Refused::InvalidPolicy(_)
                | Refused::UrlRefused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                Refused::NotFound(_) => StatusCode::NOT_FOUND,
                Refused::TooManyRevocations(_) => StatusCode::CONFLICT,
                Refused::Storage(_) | Refused::Clock(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The stable code of the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadBody(_) => "bad-body",
            ApiError::BadName(_) => "bad-name",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed(_) => "method-not-allowed",
            ApiError::Conflict(_) => "revision-conflict",
            ApiError::FleetUnavailable(_) => "fleet-unavailable",
            ApiError::Refused(refused) => match refused {
                Refused::BadName(_) => "bad-name",
                Refused::NotFound(_) => "not-found",
                Refused::ReadOnly(_) => "read-only",
                Refused::KidTaken(_) => "kid-taken",
                Refused::KeyRevoked(_) => "key-revoked",
                Refused::TooManyKeys(_) => "too-many-keys",
                Refused::InvalidKey(_) => "invalid-key",
                Refused::InvalidPolicy(_) => "invalid-policy",
                Refused::UrlRefused { code, .. } => code,
                Refused::Storage(_) => "storage-error",
                Refused::Clock(_) => "clock-error",
                Refused::TooManyRevocations(_) => "too-many-revocations",
            },
        }
    }

    /// The JSON body: `{"error": code, "message": text}`.
    pub fn body(&self) -> serde_json::Value {
        if let ApiError::Refused(Refused::Storage(e)) = self {
            tracing::error!(error = %e, "state database");
        }
        serde_json::json!({ "error": self.code(), "message": self.to_string() })
    }
}

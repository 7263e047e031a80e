//! The type of a policy and of a publish rule, as written (`"type": "jwt"`): parsed by serde at
//! the boundary, matched by variant everywhere after.

use serde::{Deserialize, Serialize};

use crate::reason::DecidedBy;

/// A viewer policy's type (SPEC §2).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Public,
    #[default]
    Deny,
    Jwt,
    Webhook,
}

impl PolicyKind {
    /// The name as written.
    pub const fn as_str(self) -> &'static str {
        self.decided_by().as_str()
    }

    /// The same type as what decides an answer.
    pub const fn decided_by(self) -> DecidedBy {
        match self {
            PolicyKind::Public => DecidedBy::Public,
            PolicyKind::Deny => DecidedBy::Deny,
            PolicyKind::Jwt => DecidedBy::Jwt,
            PolicyKind::Webhook => DecidedBy::Webhook,
        }
    }
}

/// A publish rule's type (SPEC §10): a policy type, or `stream_key`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PublishKind {
    #[default]
    Deny,
    Public,
    Jwt,
    Webhook,
    StreamKey,
}

impl PublishKind {
    /// The viewer policy type a rule of this type is built like; `None` for `stream_key`.
    pub const fn policy(self) -> Option<PolicyKind> {
        match self {
            PublishKind::Deny => Some(PolicyKind::Deny),
            PublishKind::Public => Some(PolicyKind::Public),
            PublishKind::Jwt => Some(PolicyKind::Jwt),
            PublishKind::Webhook => Some(PolicyKind::Webhook),
            PublishKind::StreamKey => None,
        }
    }

    /// The name as written.
    pub const fn as_str(self) -> &'static str {
        self.decided_by().as_str()
    }

    /// The same type as what decides an answer.
    pub const fn decided_by(self) -> DecidedBy {
        match self.policy() {
            Some(kind) => kind.decided_by(),
            None => DecidedBy::StreamKey,
        }
    }
}

impl std::fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for PublishKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_is_written_as_its_name_and_an_unknown_one_is_refused_at_the_boundary() {
        for kind in [
            PolicyKind::Public,
            PolicyKind::Deny,
            PolicyKind::Jwt,
            PolicyKind::Webhook,
        ] {
            let written = serde_json::to_value(kind).unwrap();
            assert_eq!(written, kind.as_str());
            assert_eq!(serde_json::from_value::<PolicyKind>(written).unwrap(), kind);
        }
        assert_eq!(
            serde_json::to_value(PublishKind::StreamKey).unwrap(),
            "stream_key"
        );
        assert!(serde_json::from_str::<PolicyKind>(r#""stream_key""#).is_err());
        assert!(serde_json::from_str::<PolicyKind>(r#""JWT""#).is_err());
        assert_eq!(PublishKind::Webhook.policy(), Some(PolicyKind::Webhook));
        assert_eq!(PublishKind::StreamKey.decided_by().as_str(), "stream_key");
    }
}

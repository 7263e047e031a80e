//! The permission step of a `jwt` check (SPEC §10): after every other check passed, the
//! verified claims must grant the stream — `read` for a viewer policy with
//! `require_permission`, `publish` for every push.

use super::JwtCheck;
use crate::publish::permission;

impl JwtCheck<'_> {
    /// Whether the verified claims grant [`JwtCheck::permission`] on the stream through `claim`
    /// (the [`permission_claim`](Self::permission_claim), looked up once by the caller); always,
    /// when none is required.
    pub(super) fn permitted(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        claim: Option<&str>,
    ) -> bool {
        match self.permission.zip(claim) {
            Some((action, claim)) => {
                permission::permits(claims, claim, action, self.request.stream)
            }
            None => true,
        }
    }

    /// The claim that must grant the permission, when one is required.
    pub(super) fn permission_claim(&self) -> Option<&str> {
        self.permission?;
        Some(
            self.snapshot
                .tenant(&self.entry.tenant)
                .map_or(permission::DEFAULT_CLAIM, |t| t.permission_claim()),
        )
    }
}

//! Which string is the viewer's token (SPEC §3). (Stub.)

use std::borrow::Cow;

/// The token for a `jwt` or `webhook` policy: the `jwt` query parameter of `request_url`; else
/// `line3` when it is a JWS compact string, repairing MistServer's Bearer quirk (`yJ…` → `eyJ…`).
pub fn extract<'a>(request_url: &'a str, line3: &'a str) -> Option<Cow<'a, str>> {
    let _ = (request_url, line3);
    None
}

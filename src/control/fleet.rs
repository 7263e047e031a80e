//! The control API's view of the fleet (SPEC §11): `GET /v1/fleet` lists every node, and
//! `If-Match` names the revision a write is conditional on. Where a write goes is
//! [`super::writer`]'s; reads are served from this node's copy as always.

use hyper::StatusCode;

use super::{ApiError, Control, Reply};

/// `GET /v1/fleet`: every node's id, applied revisions, lag, pending invalidations, last seen.
pub fn list(ctl: &Control) -> Reply {
    match ctl.app.fleet() {
        Some(fleet) => Ok((StatusCode::OK, fleet.view())),
        None => Err(ApiError::NotFound(
            "this node is not part of a fleet (no [fleet] section)".into(),
        )),
    }
}

/// `If-Match: <revision>` (quotes allowed): the revision the client read; `0`: must not exist.
pub fn if_match(header: Option<&hyper::header::HeaderValue>) -> Result<Option<u64>, ApiError> {
    let Some(value) = header else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadBody("If-Match must be a revision number".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn parsed(v: &str) -> Result<Option<u64>, ApiError> {
        if_match(Some(&HeaderValue::from_str(v).unwrap()))
    }

    #[test]
    fn if_match_takes_a_revision_quoted_or_not() {
        assert_eq!(if_match(None).unwrap(), None);
        assert_eq!(parsed("7").unwrap(), Some(7));
        assert_eq!(parsed("\"7\"").unwrap(), Some(7));
        assert_eq!(parsed("W/\"0\"").unwrap(), Some(0));
        for bad in ["*", "abc", "-1", "\"\""] {
            assert!(matches!(parsed(bad), Err(ApiError::BadBody(_))), "{bad}");
        }
    }
}

//! `POST /v1/invalidate`: drops cached decisions by exact stream names, by object names (every
//! stream that looks them up) or by tenant, and tells MistServer to re-ask for those streams.

use hyper::StatusCode;
use serde::Deserialize;

use super::writer;
use super::{ApiError, Control, Reply, parse};
use crate::enforce::{Change, Target};

/// The body: exactly one of `streams`, `objects`, `tenant`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateBody {
    #[serde(default)]
    pub streams: Option<Vec<String>>,
    #[serde(default)]
    pub objects: Option<Vec<String>>,
    #[serde(default)]
    pub tenant: Option<String>,
}

impl InvalidateBody {
    /// The one target the body names (its names are the plan's to judge: `Change::check_names`).
    pub fn target(self) -> Result<Target, ApiError> {
        let names = |mut list: Vec<String>| {
            list.sort();
            list.dedup();
            list
        };
        match (self.streams, self.objects, self.tenant) {
            (Some(s), None, None) => Ok(Target::Streams(names(s))),
            (None, Some(o), None) => Ok(Target::Objects(names(o))),
            (None, None, Some(t)) => Ok(Target::Tenant(t)),
            _ => Err(ApiError::BadBody(
                "give exactly one of streams, objects, tenant".into(),
            )),
        }
    }
}

/// `POST /v1/invalidate`: what it dropped here and sent MistServer (in a fleet, the event's
/// sequence and what this node did with it).
pub async fn post(ctl: &Control, body: &[u8]) -> Reply {
    let target = parse::<InvalidateBody>(body)?.target()?;
    let stored = writer::write(ctl, Change::Invalidate(target), None).await?;
    stored.answer(StatusCode::OK, serde_json::json!({}), stored.invalidated())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(json: &str) -> Result<Target, ApiError> {
        parse::<InvalidateBody>(json.as_bytes())?.target()
    }

    #[test]
    fn exactly_one_target_is_accepted() {
        assert_eq!(
            target(r#"{"streams":["b","a","b"]}"#).unwrap(),
            Target::Streams(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            target(r#"{"tenant":"t1"}"#).unwrap(),
            Target::Tenant("t1".into())
        );
        assert!(matches!(target("{}"), Err(ApiError::BadBody(_))));
        assert!(matches!(
            target(r#"{"streams":["a"],"tenant":"t1"}"#),
            Err(ApiError::BadBody(_))
        ));
    }

    #[test]
    fn bad_names_are_refused_by_the_plan() {
        for body in [r#"{"objects":["a b"]}"#, r#"{"tenant":"t 1"}"#] {
            let change = Change::Invalidate(target(body).unwrap());
            assert!(matches!(
                change.check_names(),
                Err(crate::enforce::Refused::BadName(_))
            ));
        }
    }
}

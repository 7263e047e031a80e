//! `POST /v1/invalidate`: drops cached decisions by exact stream names, by object names (every
//! stream that looks them up) or by tenant, and tells MistServer to re-ask for those streams.

use hyper::StatusCode;
use serde::Deserialize;

use super::keys::check_name;
use super::{ApiError, Control, Reply, parse};
use crate::enforce::{Change, Target};
use crate::spec::valid_object;

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
    /// Checks that exactly one target is given and every name is valid.
    pub fn target(self) -> Result<Target, ApiError> {
        let names = |list: Vec<String>| {
            if let Some(bad) = list.iter().find(|n| !valid_object(n)) {
                return Err(ApiError::BadName(format!(
                    "invalid stream or object name {bad:?}"
                )));
            }
            let mut list = list;
            list.sort();
            list.dedup();
            Ok(list)
        };
        match (self.streams, self.objects, self.tenant) {
            (Some(s), None, None) => Ok(Target::Streams(names(s)?)),
            (None, Some(o), None) => Ok(Target::Objects(names(o)?)),
            (None, None, Some(t)) => {
                check_name("tenant", &t)?;
                Ok(Target::Tenant(t))
            }
            _ => Err(ApiError::BadBody(
                "give exactly one of streams, objects, tenant".into(),
            )),
        }
    }
}

/// `POST /v1/invalidate`: durable like any change (the names are committed before MistServer
/// is told); the answer says how many cached decisions were dropped and whether MistServer acked.
pub async fn post(ctl: &Control, body: &[u8]) -> Reply {
    let target = parse::<InvalidateBody>(body)?.target()?;
    let applied = ctl.app.enforcer().apply(Change::Invalidate(target)).await?;
    Ok((
        StatusCode::OK,
        serde_json::to_value(applied.invalidated).unwrap_or_default(),
    ))
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
    fn bad_names_are_refused() {
        assert!(matches!(
            target(r#"{"objects":["a b"]}"#),
            Err(ApiError::BadName(_))
        ));
        assert!(matches!(
            target(r#"{"tenant":"t 1"}"#),
            Err(ApiError::BadName(_))
        ));
    }
}

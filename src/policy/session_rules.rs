//! What a `jwt` policy asks of live sessions (SPEC §9): cut at token expiry, and a cap on the
//! sessions one viewer holds at once with what to do when a new one would exceed it.

/// What happens to a new session beyond `max_sessions_per_viewer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnExceed {
    /// The new session is refused with `viewer-session-limit`.
    #[default]
    DenyNew,
    /// The new session plays; the viewer's oldest sessions are ended.
    EndOldest,
}

impl OnExceed {
    /// `deny-new` or `end-oldest`, as config files and the API write it.
    pub fn parse(name: &str) -> Option<OnExceed> {
        match name {
            "deny-new" => Some(OnExceed::DenyNew),
            "end-oldest" => Some(OnExceed::EndOldest),
            _ => None,
        }
    }

    /// The name as written.
    pub const fn as_str(self) -> &'static str {
        match self {
            OnExceed::DenyNew => "deny-new",
            OnExceed::EndOldest => "end-oldest",
        }
    }
}

/// The live-session rules of one `jwt` policy; all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionRules {
    /// End the session when its token expires (`exp` + the 60 s leeway).
    pub cut_at_exp: bool,
    /// At most this many sessions per viewer (tenant-wide) at once.
    pub max_per_viewer: Option<u32>,
    pub on_exceed: OnExceed,
}

impl SessionRules {
    /// Whether the policy only works when usher tracks the session: such a session is refused
    /// when it cannot be tracked (table full), instead of playing without its rule.
    pub fn need_tracking(&self) -> bool {
        self.cut_at_exp || self.max_per_viewer.is_some()
    }

    /// Builds the rules from the spec's fields; a problem is a message naming the field.
    pub fn from_spec(
        cut_at_exp: Option<bool>,
        max_per_viewer: Option<u32>,
        on_exceed: Option<&str>,
    ) -> Result<SessionRules, String> {
        let on_exceed = match on_exceed {
            None => OnExceed::default(),
            Some(name) => OnExceed::parse(name).ok_or_else(|| {
                format!("on_exceed {name:?} is not one of \"deny-new\", \"end-oldest\"")
            })?,
        };
        if max_per_viewer.is_none() && on_exceed != OnExceed::DenyNew {
            return Err("on_exceed needs max_sessions_per_viewer".into());
        }
        if max_per_viewer == Some(0) {
            return Err("max_sessions_per_viewer must be at least 1".into());
        }
        Ok(SessionRules {
            cut_at_exp: cut_at_exp.unwrap_or(false),
            max_per_viewer,
            on_exceed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_read_from_the_spec_fields_and_refuse_nonsense() {
        let r = SessionRules::from_spec(Some(true), Some(2), Some("end-oldest")).unwrap();
        assert!(r.cut_at_exp && r.need_tracking());
        assert_eq!(r.on_exceed, OnExceed::EndOldest);
        assert!(
            !SessionRules::from_spec(None, None, None)
                .unwrap()
                .need_tracking()
        );
        assert!(SessionRules::from_spec(None, Some(0), None).is_err());
        assert!(SessionRules::from_spec(None, Some(1), Some("kick")).is_err());
        assert!(SessionRules::from_spec(None, None, Some("end-oldest")).is_err());
    }
}

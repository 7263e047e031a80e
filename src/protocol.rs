//! MistServer's vocabulary that usher speaks: the triggers it answers, named as the `X-Trigger`
//! header and MistServer's trigger config name them. Parsed once at the listener, matched by
//! variant everywhere after (the endpoint, the metrics, `usher mist-setup`).

/// A trigger usher answers (SPEC §1, §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A viewer opens a session: `true`/`false`, blocking.
    UserNew,
    /// A session ended: informational.
    UserEnd,
    /// A push starts: `true`/`false`, blocking.
    StreamPush,
    /// A push arrives: the stream name, or empty, blocking.
    PushRewrite,
}

impl Trigger {
    /// Every trigger usher answers.
    pub const ALL: [Trigger; 4] = [
        Trigger::UserNew,
        Trigger::UserEnd,
        Trigger::StreamPush,
        Trigger::PushRewrite,
    ];

    /// The publisher triggers, in the order the metrics list them.
    pub const PUSHES: [Trigger; 2] = [Trigger::StreamPush, Trigger::PushRewrite];

    /// The name, as MistServer writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::UserNew => "USER_NEW",
            Trigger::UserEnd => "USER_END",
            Trigger::StreamPush => "STREAM_PUSH",
            Trigger::PushRewrite => "PUSH_REWRITE",
        }
    }

    /// The trigger an `X-Trigger` header value names; `None` for one usher does not answer.
    pub fn from_header(name: &[u8]) -> Option<Trigger> {
        Trigger::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes() == name)
    }

    /// Whether MistServer waits for the answer and takes a `default` when usher cannot give one
    /// (every trigger but `USER_END`).
    pub const fn blocking(self) -> bool {
        !matches!(self, Trigger::UserEnd)
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_names_a_trigger_exactly_and_nothing_else() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::from_header(t.as_str().as_bytes()), Some(t));
        }
        for other in [&b"user_new"[..], b"USER_NEW ", b"", b"PUSH_END"] {
            assert_eq!(Trigger::from_header(other), None);
        }
    }
}

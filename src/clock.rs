//! The one wall clock. Every "now" in seconds since the Unix epoch — token times, session
//! admissions, viewer revocations — is read from the [`Clock`] the daemon builds once and hands to
//! the evaluator and the enforcer, and a clock before 1970 is one error, [`BeforeEpoch`], with one
//! rule: the trigger path answers `false` with `internal-error`, the control path refuses the
//! write. (Tests hand in a clock of their own.)

use std::time::{SystemTime, UNIX_EPOCH};

/// A wall clock; `Copy`, so every part that reads it holds the same one.
#[derive(Clone, Copy)]
pub struct Clock {
    read: fn() -> SystemTime,
}

/// The clock reads before 1970: no "now" can be given (0 would make every `exp` the future).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system clock reads before 1970")]
pub struct BeforeEpoch;

impl Default for Clock {
    /// The system clock.
    fn default() -> Self {
        Clock {
            read: SystemTime::now,
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Clock {
    /// A clock reading `read` (tests: a clock before 1970, a fixed instant).
    pub const fn new(read: fn() -> SystemTime) -> Clock {
        Clock { read }
    }

    /// Now, in seconds since the Unix epoch, as a float (NumericDate precision).
    pub fn unix_s(&self) -> Result<f64, BeforeEpoch> {
        (self.read)()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .map_err(|_| BeforeEpoch)
    }

    /// Now, in whole seconds since the Unix epoch.
    pub fn unix_secs(&self) -> Result<u64, BeforeEpoch> {
        self.unix_s().map(|s| s as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_clock_before_1970_gives_no_now_and_the_system_clock_does() {
        let before = Clock::new(|| UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(before.unix_s(), Err(BeforeEpoch));
        assert_eq!(before.unix_secs(), Err(BeforeEpoch));
        let fixed = Clock::new(|| UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
        assert_eq!(fixed.unix_s(), Ok(1_700_000_000.5));
        assert_eq!(fixed.unix_secs(), Ok(1_700_000_000));
        assert!(Clock::default().unix_secs().unwrap() > 1_700_000_000);
    }
}

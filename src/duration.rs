//! Human durations in configuration files: `"90s"`, `"15m"`, `"24h"`, `"360d"`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// No lifetime, window or lock lasts longer: keeps time arithmetic far from overflow.
const MAX: Duration = Duration::from_secs(10 * 365 * 86_400);

/// A duration written as a human string in a config or dialect file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let duration = humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write e.g. \"90s\", \"15m\", \"1h\", \"30d\""
            ))
        })?;
        if duration.is_zero() {
            return Err(serde::de::Error::custom(
                "a duration must be longer than zero",
            ));
        }
        if duration > MAX {
            return Err(serde::de::Error::custom(format!(
                "`{text}` is longer than the 10 years a duration may last"
            )));
        }
        Ok(Self(duration))
    }
}

//! Instants in configuration files, written as RFC 3339 date-times:
//! `"2026-12-31T00:00:00Z"`, `"2026-12-31T01:00:00+01:00"`, or a TOML
//! date-time without quotes.

use std::fmt;

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant as unix seconds (fractions dropped; before 1970 is 0), with
/// the text it was written as, for messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Timestamp {
    pub unix: u64,
    pub text: String,
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
            format!(
                "`{text}` is not an RFC 3339 date-time ({e}); write e.g. \"2026-12-31T00:00:00Z\""
            )
        })?;
        Ok(Self {
            unix: u64::try_from(parsed.unix_timestamp()).unwrap_or(0),
            text: text.to_owned(),
        })
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Timestamp;

    fn unix(text: &str) -> Result<u64, String> {
        text.parse::<Timestamp>().map(|t| t.unix)
    }

    #[test]
    fn offsets_and_fractions_name_the_same_instant() {
        assert_eq!(unix("2026-12-31T00:00:00Z"), Ok(1_798_675_200));
        assert_eq!(unix("2026-12-31T01:00:00+01:00"), Ok(1_798_675_200));
        assert_eq!(unix("2026-12-31t00:00:00.999z"), Ok(1_798_675_200));
        assert_eq!(unix("1969-12-31T23:59:59Z"), Ok(0));
        for bad in [
            "2026-12-31",
            "2026-12-31T00:00:00",
            "soon",
            "1798675200",
            "",
        ] {
            let error = unix(bad).unwrap_err();
            assert!(error.contains("RFC 3339"), "{bad}: {error}");
        }
    }
}

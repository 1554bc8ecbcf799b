//! Points in time as whole Unix seconds, written on the wire as RFC 3339 UTC strings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A point in time, in whole seconds since the Unix epoch (UTC).
///
/// Serialises as an RFC 3339 string (`2026-11-23T11:31:01Z`); deserialises from such a string or
/// from a plain number of Unix seconds, the two forms API users send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, format = DateTime, example = "2026-11-23T11:31:01Z")
)]
pub struct Timestamp(pub i64);

/// Earliest and latest instants accepted: year 1970 to year 9999.
const MIN_SECONDS: i64 = 0;
const MAX_SECONDS: i64 = 253_402_300_799;

impl Timestamp {
    /// Whole Unix seconds.
    #[must_use]
    pub fn unix(self) -> i64 {
        self.0
    }

    /// This instant plus `seconds` (saturating).
    #[must_use]
    pub fn plus(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds))
    }

    /// RFC 3339 in UTC, second precision (`2026-11-23T11:31:01Z`), clamped to years
    /// 1970..=9999. Written by hand: the edge's verdicts carry it, and a formatting library
    /// would cost the edge's WASM more than these lines.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        const DAY: i64 = 86_400;
        let t = self.0.clamp(MIN_SECONDS, MAX_SECONDS);
        let (year, month, day) = crate::credits::civil_from_days(t.div_euclid(DAY));
        let s = t.rem_euclid(DAY);
        let mut out = String::with_capacity(20);
        for (n, width, then) in [
            (year, 4, '-'),
            (i64::from(month), 2, '-'),
            (i64::from(day), 2, 'T'),
            (s / 3600, 2, ':'),
            (s / 60 % 60, 2, ':'),
            (s % 60, 2, 'Z'),
        ] {
            let digits = n.to_string();
            for _ in digits.len()..width {
                out.push('0');
            }
            out.push_str(&digits);
            out.push(then);
        }
        out
    }

    /// The UTC calendar day, `yyyy-mm-dd` (the usage counters' bucket).
    #[must_use]
    pub fn day(self) -> String {
        let mut s = self.to_rfc3339();
        s.truncate(10);
        s
    }

    /// Parses RFC 3339 (any offset, fractional seconds dropped).
    ///
    /// # Errors
    /// [`TimestampError`] when `s` is not RFC 3339 or lies outside 1970..=9999.
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimestampError> {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| TimestampError)?;
        Self::from_unix(t.unix_timestamp())
    }

    /// Checks the range of a number of Unix seconds.
    ///
    /// # Errors
    /// [`TimestampError`] outside 1970..=9999.
    pub fn from_unix(seconds: i64) -> Result<Self, TimestampError> {
        if (MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(TimestampError)
        }
    }
}

/// Whole Unix seconds of a Unix time in milliseconds (what `Date.now()` and `SystemTime` give),
/// saturating at `i64::MAX`.
#[must_use]
pub fn unix_seconds(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch from a duration since it, saturating at `u64::MAX` (the
/// conversion of `SystemTime::now().duration_since(UNIX_EPOCH)`).
#[must_use]
pub fn unix_millis(since_epoch: std::time::Duration) -> u64 {
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// A time value that is neither RFC 3339 nor Unix seconds within years 1970..=9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an RFC 3339 date-time (e.g. 2030-01-01T00:00:00Z) or Unix seconds")]
pub struct TimestampError;

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 date-time or Unix seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Timestamp::from_unix(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map_err(|_| E::custom(TimestampError))
                    .and_then(|v| self.visit_i64(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let t = Timestamp(1_795_000_000);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-18T11:06:40Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_is_what_the_time_crate_writes(t in -10i64..MAX_SECONDS + 10) {
            let theirs = OffsetDateTime::from_unix_timestamp(t.clamp(MIN_SECONDS, MAX_SECONDS))
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            proptest::prop_assert_eq!(Timestamp(t).to_rfc3339(), theirs);
        }
    }

    #[test]
    fn unix_seconds_are_accepted_on_input() {
        assert_eq!(
            serde_json::from_str::<Timestamp>("1795000000").unwrap(),
            Timestamp(1_795_000_000)
        );
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-18T13:06:40+02:00").unwrap();
        assert_eq!(t, Timestamp(1_795_000_000));
    }

    #[test]
    fn garbage_and_out_of_range_values_are_refused() {
        assert!(serde_json::from_str::<Timestamp>("\"tomorrow\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("-5").is_err());
        assert!(serde_json::from_str::<Timestamp>("99999999999999").is_err());
    }

    #[test]
    fn clock_conversions_truncate_and_saturate() {
        assert_eq!(unix_seconds(1_795_000_000_999), 1_795_000_000);
        assert_eq!(
            unix_seconds(u64::MAX),
            i64::try_from(u64::MAX / 1000).unwrap()
        );
        assert_eq!(unix_millis(std::time::Duration::from_millis(1_500)), 1_500);
        assert_eq!(unix_millis(std::time::Duration::MAX), u64::MAX);
    }

    #[test]
    fn day_is_the_utc_calendar_day() {
        assert_eq!(Timestamp(1_795_000_000).day(), "2026-11-18");
    }
}

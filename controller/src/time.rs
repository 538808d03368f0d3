//! Time as the engine sees it: a plain value passed in, never read from a clock inside the
//! logic. Milliseconds since the Unix epoch, written as RFC 3339 in statuses (as Kubernetes
//! writes `metav1.Time`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub i64);

impl Time {
    /// The current wall-clock time. Only the runtimes call this; the engine is given time.
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Time(ms)
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        Time(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// `self - earlier`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    fn to_system(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_millis(self.0.unsigned_abs())
        } else {
            UNIX_EPOCH
        }
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.to_system()))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = humantime::parse_rfc3339_weak(&text).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time: {e}"))
        })?;
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_err(|_| serde::de::Error::custom("time before 1970"))?
            .as_millis();
        Ok(Time(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}

crate::spec::schema::hand_written_schema!(Time, "Time", crate::spec::schema::time);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let t = Time(1_764_300_000_123);
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, "\"2025-11-28T03:20:00.123Z\"");
        assert_eq!(serde_json::from_str::<Time>(&s).unwrap(), t);
        assert_eq!(
            t.plus(Duration::from_secs(2)).since(t),
            Duration::from_secs(2)
        );
        assert_eq!(t.since(t.plus(Duration::from_secs(2))), Duration::ZERO);
    }
}

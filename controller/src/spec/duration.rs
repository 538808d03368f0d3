//! Durations as Argo Rollouts writes them: `10` or `"10"` (seconds), `"10s"`, `"5m"`, `"1h"`,
//! `"1h30m"`, `"500ms"`. Kept as written, so that a document round-trips unchanged.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration and the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoDuration {
    /// The value.
    pub value: Duration,
    written: Written,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    Seconds(u64),
    Text(String),
}

impl ArgoDuration {
    /// Parses the text forms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(Self {
                value: Duration::from_secs(secs),
                written: Written::Text(text.to_owned()),
            });
        }
        if t.is_empty() || t.starts_with('-') {
            return Err(format!(
                "{text:?} is not a duration like 10, 10s, 5m, 1h or 1h30m"
            ));
        }
        let mut total = Duration::ZERO;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "{text:?} is not a duration like 10, 10s, 5m, 1h or 1h30m"
                ));
            }
            let number: f64 = rest[..digits]
                .parse()
                .map_err(|_| format!("{text:?}: {:?} is not a number", &rest[..digits]))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let secs = match unit {
                "ms" => number / 1000.0,
                "s" => number,
                "m" => number * 60.0,
                "h" => number * 3600.0,
                "" => {
                    return Err(format!(
                        "{text:?}: a number inside a duration needs a unit (s, m, h)"
                    ));
                }
                other => {
                    return Err(format!(
                        "{text:?}: unknown unit {other:?} (use ms, s, m or h)"
                    ));
                }
            };
            total +=
                Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is too long"))?;
        }
        Ok(Self {
            value: total,
            written: Written::Text(text.to_owned()),
        })
    }

    /// Whole seconds, written as a number.
    pub fn from_secs(secs: u64) -> Self {
        Self {
            value: Duration::from_secs(secs),
            written: Written::Seconds(secs),
        }
    }
}

impl fmt::Display for ArgoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.written {
            Written::Seconds(s) => write!(f, "{s}s"),
            Written::Text(t) if t.parse::<u64>().is_ok() => write!(f, "{t}s"),
            Written::Text(t) => write!(f, "{t}"),
        }
    }
}

impl Serialize for ArgoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.written {
            Written::Seconds(n) => s.serialize_u64(*n),
            Written::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for ArgoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
            Float(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Self::from_secs(n)),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
            Raw::Float(f) => Err(serde::de::Error::custom(format!(
                "{f} is not a duration: use whole seconds or a text like \"1.5s\""
            ))),
        }
    }
}

crate::spec::schema::hand_written_schema!(
    ArgoDuration,
    "ArgoDuration",
    super::schema::int_or_string
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_argo_form_parses() {
        let secs = |t: &str| ArgoDuration::parse(t).unwrap().value.as_secs_f64();
        assert_eq!(secs("10"), 10.0);
        assert_eq!(secs("10s"), 10.0);
        assert_eq!(secs("5m"), 300.0);
        assert_eq!(secs("1h"), 3600.0);
        assert_eq!(secs("1h30m"), 5400.0);
        assert_eq!(secs("1m30s"), 90.0);
        assert_eq!(secs("500ms"), 0.5);
        assert_eq!(secs("1.5s"), 1.5);
        let from_int: ArgoDuration = serde_json::from_str("10").unwrap();
        assert_eq!(from_int.value, Duration::from_secs(10));
        assert_eq!(serde_json::to_string(&from_int).unwrap(), "10");
        let from_text: ArgoDuration = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(serde_json::to_string(&from_text).unwrap(), "\"1h30m\"");
    }

    #[test]
    fn bad_durations_say_why() {
        for (t, why) in [
            ("", "not a duration"),
            ("-5s", "not a duration"),
            ("5x", "unknown unit"),
            ("s", "not a duration"),
            ("1h30", "needs a unit"),
            ("1..5s", "not a number"),
        ] {
            let e = ArgoDuration::parse(t).unwrap_err();
            assert!(e.contains(why), "{t}: {e}");
        }
        assert!(serde_json::from_str::<ArgoDuration>("1.5").is_err());
        assert!(serde_json::from_str::<ArgoDuration>("-3").is_err());
    }
}

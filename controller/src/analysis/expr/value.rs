//! The values conditions work on: what `result` holds (a number, a vector of numbers, a
//! provider's JSON answer) and what expressions make of it, with expr-lang's kinds: nil,
//! booleans, numbers, strings, lists, maps, and the times and durations of `now()` and
//! `duration()`.

use std::collections::BTreeMap;
use std::fmt;

/// A value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (`nil`, JSON `null`, a missing map key).
    Nil,
    /// A boolean.
    Bool(bool),
    /// A number (expr-lang's ints and floats alike).
    Number(f64),
    /// Text.
    String(String),
    /// A list (a Prometheus vector is a list of numbers).
    List(Vec<Value>),
    /// A map with text keys (a JSON object).
    Map(BTreeMap<String, Value>),
    /// A moment, in seconds since the Unix epoch (`now()`).
    Time(f64),
    /// A length of time, in seconds (`duration("5m")`).
    Duration(f64),
}

impl Value {
    /// A list of numbers: what a Prometheus vector gives.
    pub fn numbers(xs: impl IntoIterator<Item = f64>) -> Self {
        Value::List(xs.into_iter().map(Value::Number).collect())
    }

    /// A JSON value as expr-lang sees the same value decoded by Go: objects are maps, arrays
    /// lists, numbers numbers, `null` nil.
    pub fn from_json(j: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Nil,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => Value::String(s.clone()),
            J::Array(items) => Value::List(items.iter().map(Value::from_json).collect()),
            J::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
            Value::Time(_) => "a time",
            Value::Duration(_) => "a duration",
        }
    }

    /// expr-lang's `==`: values of different kinds are unequal, lists and maps compare by
    /// content, NaN equals nothing.
    pub fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b))
            | (Value::Time(a), Value::Time(b))
            | (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.equals(vb))
            }
            _ => false,
        }
    }
}

fn number(f: &mut fmt::Formatter<'_>, n: f64) -> fmt::Result {
    if n.is_nan() {
        write!(f, "NaN")
    } else if n.is_infinite() {
        write!(f, "{}", if n > 0.0 { "+Inf" } else { "-Inf" })
    } else {
        write!(f, "{n}")
    }
}

/// As JSON where JSON can say it (what a measurement shows as its value), with NaN, ±Inf,
/// times (RFC 3339) and durations (seconds) as text.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => number(f, *n),
            Value::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, "]")
            }
            Value::Map(map) => {
                write!(f, "{{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, "{}:{v}", serde_json::Value::String(k.clone()))?;
                }
                write!(f, "}}")
            }
            Value::Time(t) => {
                let at = std::time::UNIX_EPOCH
                    .checked_add(std::time::Duration::try_from_secs_f64(*t).unwrap_or_default());
                match at {
                    Some(at) if *t >= 0.0 => write!(f, "{}", humantime::format_rfc3339_millis(at)),
                    _ => number(f, *t),
                }
            }
            Value::Duration(d) => {
                number(f, *d)?;
                write!(f, "s")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_become_values_as_go_decodes_them() {
        let j = serde_json::json!({"status": "ok", "data": {"ok": true, "p99": [1, 2.5]}, "none": null});
        let v = Value::from_json(&j);
        let Value::Map(m) = &v else { panic!("{v:?}") };
        assert_eq!(m["status"], Value::String("ok".into()));
        assert_eq!(m["none"], Value::Nil);
        assert_eq!(
            v.to_string(),
            r#"{"data":{"ok":true,"p99":[1,2.5]},"none":null,"status":"ok"}"#
        );
        assert_eq!(Value::numbers([0.97, f64::NAN]).to_string(), "[0.97,NaN]");
    }

    #[test]
    fn equality_is_by_kind_and_content() {
        assert!(Value::numbers([1.0]).equals(&Value::numbers([1.0])));
        assert!(!Value::Number(f64::NAN).equals(&Value::Number(f64::NAN)));
        assert!(!Value::Number(1.0).equals(&Value::String("1".into())));
        assert!(Value::Nil.equals(&Value::Nil));
        assert!(!Value::Nil.equals(&Value::Bool(false)));
    }
}

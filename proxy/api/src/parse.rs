//! Text into the contract's types: YAML (JSON is YAML too) for files, strict JSON for API
//! bodies, and durations written as `500ms`, `2s`, `1m30s`. Every error names its field.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Parses YAML (JSON is YAML too) into `T`; errors name the field path.
pub fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T> {
    let tree: serde_json::Value = serde_saphyr::from_str(text)
        .map_err(|e| Error::invalid("", format!("not valid YAML: {}", first_line(&e))))?;
    from_tree(tree)
}

/// Parses a JSON body into `T`; errors name the field path. A key written twice in one
/// object is refused ([`crate::json::duplicate_key`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if let Some(e) = crate::json::duplicate_key(bytes) {
        return Err(Error::Invalid(vec![e]));
    }
    // read straight into `T` (no tree in between: a report of a hundred routes is read about
    // twice as fast), the path kept by serde_path_to_error
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let refused = |path: String, e: serde_json::Error| {
        if e.is_data() {
            Error::invalid(path, without_position(&e))
        } else {
            Error::invalid("", format!("not valid JSON: {e}"))
        }
    };
    let t = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        refused(path, e.into_inner())
    })?;
    de.end().map_err(|e| refused(String::new(), e))?;
    Ok(t)
}

/// A data error's message without the ` at line L column C` serde_json adds: the path says
/// where.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&tail).map(str::to_owned).unwrap_or(text)
}

/// Deserializes a generic tree into `T`, with the field path in the error.
pub fn from_tree<T: DeserializeOwned>(tree: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        Error::invalid(path, e.into_inner().to_string())
    })
}

fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// Serde adapter for durations written as `500ms`, `2s`, `1m30s`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a duration as humantime text.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Reads a duration from humantime text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration like 500ms, 2s or 1m30s ({e})"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TableSpec;

    #[test]
    fn an_error_names_the_field_deep_in_the_table() {
        let e = parse_json::<TableSpec>(
            br#"{"backends": [{"name": "v1", "endpoints": ["a:1"], "protocol": "gopher"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.fields()[0].path, "backends[0].protocol", "{e}");
        let e =
            parse_yaml::<TableSpec>("routes:\n  - {name: a, stable: v1, wieght: 3}\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("routes[0].wieght: unknown field `wieght`"),
            "{e}"
        );
    }

    #[test]
    fn a_key_written_twice_is_refused_with_its_path() {
        let e = parse_json::<TableSpec>(br#"{"routes": [], "routes": []}"#).unwrap_err();
        assert_eq!(e.fields()[0].path, "routes", "{e}");
    }

    #[test]
    fn broken_text_is_an_error_not_a_panic() {
        assert!(parse_yaml::<TableSpec>("routes: [").is_err());
        assert!(parse_json::<TableSpec>(b"{").is_err());
    }
}

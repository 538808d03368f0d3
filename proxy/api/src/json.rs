//! Strict JSON for API bodies: a key written twice in one object is refused with its path.
//!
//! serde_json keeps the last of two equal keys when it builds a tree, so
//! `{"weight": 20, "weight": 90}` would apply 90 while a reviewer of the body read 20. Every
//! body the admin and control APIs take is walked once by [`duplicate_key`] before it is
//! parsed. The walk keeps one set of keys per open object and nothing else, so it costs
//! about what the parse does. Written here because neither serde_json nor
//! serde_path_to_error offers the check.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::FieldError;

/// The first key written twice in one object of `bytes`, with its path (`routes[1].weight`),
/// or `None`. Invalid JSON is `None` too: the parse that follows reports it.
pub fn duplicate_key(bytes: &[u8]) -> Option<FieldError> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let _ = Walk {
        at: &Place::Root,
        found: &mut found,
    }
    .deserialize(&mut de);
    found
}

/// Where a value is: a chain of borrowed steps back to the root, written out as a path only
/// when a duplicate is found (a body of long number arrays costs no string per element).
enum Place<'a> {
    Root,
    Key(&'a Place<'a>, &'a str),
    Index(&'a Place<'a>, usize),
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Place::Root => Ok(()),
            Place::Key(Place::Root, k) => f.write_str(k),
            Place::Key(parent, k) => write!(f, "{parent}.{k}"),
            Place::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Walks one value at `at`; stops at the first duplicate, recorded in `found`.
struct Walk<'a, 'p> {
    at: &'p Place<'p>,
    found: &'a mut Option<FieldError>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// What stops the walk once a duplicate is found.
const STOP: &str = "duplicate key";

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let at = Place::Index(self.at, i);
            let item = Walk {
                at: &at,
                found: &mut *self.found,
            };
            if seq.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                let at = Place::Key(self.at, &key);
                *self.found = Some(FieldError::new(at.to_string(), "the key is written twice"));
                return Err(de::Error::custom(STOP));
            }
            {
                let at = Place::Key(self.at, &key);
                map.next_value_seed(Walk {
                    at: &at,
                    found: &mut *self.found,
                })?;
            }
            seen.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_written_twice_is_found_with_its_path() {
        let e = duplicate_key(br#"{"weight": 20, "weight": 90}"#).unwrap();
        assert_eq!(e.path, "weight");
        let e =
            duplicate_key(br#"{"routes": [{"name": "a"}, {"name": "b", "name": "c"}]}"#).unwrap();
        assert_eq!(e.path, "routes[1].name");
        let e = duplicate_key(br#"{"a": {"b": [[{"x": 1, "y": 2, "x": 3}]]}}"#).unwrap();
        assert_eq!(e.path, "a.b[0][0].x");
        assert_eq!(e.reason, "the key is written twice");
    }

    #[test]
    fn distinct_keys_and_invalid_json_pass() {
        assert!(duplicate_key(br#"{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}"#).is_none());
        assert!(duplicate_key(br#"[1, "two", null, true, 2.5, -3]"#).is_none());
        assert!(duplicate_key(b"{").is_none());
        assert!(duplicate_key(b"").is_none());
    }

    #[test]
    fn escaped_keys_are_compared_as_text() {
        let e = duplicate_key(br#"{"w": 1, "\u0077": 2}"#).unwrap();
        assert_eq!(e.path, "w");
    }
}

//! The compiled matchers of a route: header and cookie rules, host patterns, the sticky key,
//! and the short keys that make comparing header names cheap.

use http::header::HeaderName;
use regex::Regex;

/// How a rule's value is matched, compiled.
pub(crate) enum Matcher {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    AlwaysNever,
}

/// A compiled header or cookie rule.
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) header: Option<HeaderName>,
    /// The header name's key, for comparing names quickly.
    pub(crate) key: NameKey,
    pub(crate) matcher: Matcher,
    /// Target index for value rules; unused for always-never.
    pub(crate) target: usize,
}

/// Where the sticky key comes from.
pub(crate) enum StickyKey {
    Header(HeaderName),
    Cookie(String),
}

/// A host pattern: exact (`a.example.com`) or suffix (`*.example.com`).
pub(crate) enum HostPattern {
    Exact(String),
    Suffix(String),
}

impl HostPattern {
    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => h.eq_ignore_ascii_case(host),
            Self::Suffix(s) => {
                host.len() > s.len()
                    && host
                        .get(host.len() - s.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            }
        }
    }
}

/// A header name reduced to its length and its first and last eight (or four) bytes. Equal keys mean
/// equal names up to 16 bytes (nearly every header name); longer names are compared in full
/// once their keys agree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameKey {
    len: usize,
    head: u64,
    tail: u64,
}

impl NameKey {
    /// The key of a (lowercase) header name.
    pub fn of(name: &[u8]) -> Self {
        let n = name.len();
        let eight = |b: &[u8]| <[u8; 8]>::try_from(b).map_or(0, u64::from_le_bytes);
        let four =
            |b: &[u8]| <[u8; 4]>::try_from(b).map_or(0, |x| u64::from(u32::from_le_bytes(x)));
        // overlapping loads: with the length in the key, they cover every byte
        let (head, tail) = match n {
            8.. => (eight(&name[..8]), eight(&name[n - 8..])),
            4..8 => (four(&name[..4]) | four(&name[n - 4..]) << 32, 0),
            _ => (name.iter().fold(0, |v, &b| v << 8 | u64::from(b)), 0),
        };
        NameKey { len: n, head, tail }
    }
}

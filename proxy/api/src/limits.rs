//! The limits both sides check: the name rule, the largest weight total, and the regex
//! compilation with its size limit. The controller validates specs with these before it
//! publishes; the proxy checks them again when it compiles a table.

use regex::Regex;

/// The largest `total` a route's weights may have (weights are out of `total`).
pub const MAX_TOTAL: u32 = 10_000;

/// The `total` of a route that does not say: weights are percentages.
pub const DEFAULT_TOTAL: u32 = 100;

/// Characters allowed in route and backend names (they become metrics labels and headers).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':'))
}

/// [`valid_name`] in words, for an error message.
pub const NAME_RULE: &str =
    "must be 1 to 128 characters of letters, digits, '-', '_', '.', '/', ':'";

/// The most memory a compiled rule regex may take.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a rule's regex with the proxy's size limit; the error says why in one line.
pub fn compile_regex(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let last = e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned();
            format!("invalid regex {pattern:?}: {last}")
        })
}

/// Checks a regex the way the proxy will compile it.
pub fn check_regex(pattern: &str) -> Result<(), String> {
    compile_regex(pattern).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["app", "a.b-c_d/e:f", &"x".repeat(128)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a b", "é", &"x".repeat(129), "a\nb"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_regex_too_large_or_broken_is_refused_in_one_line() {
        assert!(check_regex("^/api/v[0-9]+").is_ok());
        let broken = check_regex("(").unwrap_err();
        assert!(broken.starts_with("invalid regex \"(\""), "{broken}");
        assert!(!broken.contains('\n'), "{broken}");
        assert!(check_regex("a{1000}{1000}").is_err());
    }
}

//! The `Date` value of the answers, rendered once a second per worker thread rather than for
//! every answer.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// The second a value was rendered for, and the value.
struct Rendered {
    second: u64,
    value: String,
}

thread_local! {
    static RENDERED: RefCell<Rendered> = const {
        RefCell::new(Rendered {
            second: u64::MAX,
            value: String::new(),
        })
    };
}

/// Calls `f` with the `Date` value for `now`.
pub fn with_date<T>(now: SystemTime, f: impl FnOnce(&[u8]) -> T) -> T {
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    RENDERED.with(|r| {
        let mut r = r.borrow_mut();
        if r.second != second {
            r.value = httpdate::fmt_http_date(now);
            r.second = second;
        }
        f(r.value.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_value_changes_with_the_second_only() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let first = with_date(t, |d| d.to_vec());
        assert_eq!(first, b"Sun, 06 Nov 1994 08:49:37 GMT");
        let same = with_date(t + Duration::from_millis(999), |d| d.to_vec());
        assert_eq!(same, first);
        let next = with_date(t + Duration::from_secs(1), |d| d.to_vec());
        assert_eq!(next, b"Sun, 06 Nov 1994 08:49:38 GMT");
    }
}

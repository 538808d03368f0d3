//! Analysis conditions: an expression, a NUL, then the measured result as JSON. Parsing and
//! evaluation never panic, and an expression that parses evaluates the same way twice.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_controller::analysis::expr::{Expr, Value};

fuzz_target!(|data: &[u8]| {
    let (expr, result) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"0.5"[..]),
    };
    let Ok(expr) = std::str::from_utf8(expr) else {
        return;
    };
    let value = serde_json::from_slice::<serde_json::Value>(result)
        .map(|j| Value::from_json(&j))
        .unwrap_or(Value::Nil);
    match Expr::parse(expr) {
        Ok(e) => {
            let first = e.condition_at(&value, 1_700_000_000.0);
            let again = e.condition_at(&value, 1_700_000_000.0);
            assert_eq!(first, again);
            let _ = e.eval_time(1_700_000_000.0);
        }
        Err(e) => assert!(e.to_string().contains("position")),
    }
});

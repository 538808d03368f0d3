//! The expression table: every form users write, NaN, vectors, precedence and errors.

use super::*;
use proptest::prelude::*;

fn n(x: f64) -> Value {
    Value::Number(x)
}
fn v(xs: &[f64]) -> Value {
    Value::numbers(xs.iter().copied())
}

#[test]
fn expression_table() {
    use Value::Bool as B;
    // (expression, result, expected value)
    let cases: Vec<(&str, Value, Value)> = vec![
        ("result[0] >= 0.95", v(&[0.97]), B(true)),
        ("result[0] >= 0.95", v(&[0.95]), B(true)),
        ("result[0] >= 0.95", v(&[0.94]), B(false)),
        ("result < 0.05", n(0.01), B(true)),
        ("result < 0.05", n(0.05), B(false)),
        ("result <= 0.05", n(0.05), B(true)),
        ("result > 1", n(2.0), B(true)),
        ("result == 1", n(1.0), B(true)),
        ("result != 1", n(1.0), B(false)),
        ("result[0] >= 0.9 && result[0] <= 1", v(&[0.93]), B(true)),
        ("result[0] >= 0.9 && result[0] <= 1", v(&[1.2]), B(false)),
        ("result[0] >= 0.9 and result[0] <= 1", v(&[0.93]), B(true)),
        ("result < 0.1 || result > 0.9", n(0.95), B(true)),
        ("result < 0.1 or result > 0.9", n(0.5), B(false)),
        ("isNaN(result)", n(f64::NAN), B(true)),
        ("isNaN(result)", n(0.0), B(false)),
        ("isNaN(result[1])", v(&[1.0, f64::NAN]), B(true)),
        ("isInf(result)", n(f64::INFINITY), B(true)),
        ("isInf(result)", n(-f64::INFINITY), B(true)),
        ("isInf(result)", n(1e308), B(false)),
        ("len(result) == 0", v(&[]), B(true)),
        ("len(result) == 2", v(&[1.0, 2.0]), B(true)),
        ("!(result > 1)", n(0.0), B(true)),
        ("not (result > 1)", n(0.0), B(true)),
        ("!isNaN(result) && result >= 0.95", n(0.99), B(true)),
        ("!isNaN(result) && result >= 0.95", n(f64::NAN), B(false)),
        // NaN: every comparison is false, except != which is true
        ("result >= 0.95", n(f64::NAN), B(false)),
        ("result < 0.95", n(f64::NAN), B(false)),
        ("result == result", n(f64::NAN), B(false)),
        ("result != result", n(f64::NAN), B(true)),
        // arithmetic and precedence
        ("1 + 2 * 3", n(0.0), n(7.0)),
        ("(1 + 2) * 3", n(0.0), n(9.0)),
        ("10 - 4 - 3", n(0.0), n(3.0)),
        ("2 * 3 % 4", n(0.0), n(2.0)),
        ("-result + 1", n(3.0), n(-2.0)),
        ("- -result", n(3.0), n(3.0)),
        ("result[0] / result[1] < 0.01", v(&[1.0, 1000.0]), B(true)),
        ("result[0] / result[1]", v(&[1.0, 0.0]), n(f64::INFINITY)),
        ("1 + 2 > 2 && 3 * 2 == 6 || false", n(0.0), B(true)),
        ("false || true && false", n(0.0), B(false)),
        ("!true == false", n(0.0), B(true)),
        ("abs(result - 1) < 0.1", n(0.95), B(true)),
        ("1.5e2 == 150", n(0.0), B(true)),
        (".5 == 0.5", n(0.0), B(true)),
        ("true == true", n(0.0), B(true)),
        // && and || short-circuit, so a guard protects an index
        ("len(result) > 0 && result[0] > 1", v(&[]), B(false)),
        ("len(result) == 0 || result[0] > 1", v(&[]), B(true)),
    ];
    for (text, result, want) in &cases {
        let e = Expr::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        let got = e.eval(result).unwrap_or_else(|err| panic!("{text}: {err}"));
        let same = match (&got, want) {
            (Value::Number(a), Value::Number(b)) => a == b || (a.is_nan() && b.is_nan()),
            _ => got == *want,
        };
        assert!(same, "{text} with result={result}: got {got}, want {want}");
    }
    assert!(cases.len() >= 40);
}

fn s(x: &str) -> Value {
    Value::String(x.to_owned())
}

fn json(j: serde_json::Value) -> Value {
    Value::from_json(&j)
}

/// The forms of Argo Rollouts' documentation and of expr-lang's, with the value Argo gives.
#[test]
fn argo_expression_language_table() {
    use Value::Bool as B;
    let web = json(serde_json::json!({
        "status": "ok",
        "data": {"ok": true, "p99": 0.25, "errors": 3},
        "major": "1",
        "latencies": [120, 340, 90],
        "p99": 0.4,
        "items": [{"name": "api", "healthy": true}, {"name": "db", "healthy": false}],
        "missing": null
    }));
    let cases: Vec<(&str, Value, Value)> = vec![
        // member access on structured results
        ("result.status == 'ok'", web.clone(), B(true)),
        ("result.data.ok", web.clone(), B(true)),
        ("result.data.ok == true", web.clone(), B(true)),
        ("result['p99'] < 0.5", web.clone(), B(true)),
        ("result[\"data\"]['errors'] == 3", web.clone(), B(true)),
        ("result.nothing == nil", web.clone(), B(true)),
        ("result.missing == nil", web.clone(), B(true)),
        ("result?.nothing?.deeper == nil", web.clone(), B(true)),
        ("result.items[1].name", web.clone(), s("db")),
        ("result.items[-1].healthy", web.clone(), B(false)),
        // strings and booleans
        ("result == 'It worked!'", s("It worked!"), B(true)),
        ("result == \"It worked!\"", s("It failed"), B(false)),
        ("result.major == '1'", web.clone(), B(true)),
        ("result.major == 1", web.clone(), B(false)),
        ("asInt(result.major) == 1", web.clone(), B(true)),
        ("asFloat('0.95') >= 0.95", n(0.0), B(true)),
        ("asInt(result) == 3", n(3.9), B(true)),
        ("asFloat(result) > 0.9", s("0.97"), B(true)),
        ("result == true", B(true), B(true)),
        ("result != false", B(true), B(true)),
        ("result", B(true), B(true)),
        ("'abc' < 'abd'", n(0.0), B(true)),
        ("'can' + 'ary' == 'canary'", n(0.0), B(true)),
        ("result contains 'work'", s("It worked!"), B(true)),
        ("result startsWith 'It'", s("It worked!"), B(true)),
        ("result endsWith '!'", s("It worked!"), B(true)),
        ("result matches '^It w.+!$'", s("It worked!"), B(true)),
        ("lower(result) == 'ok'", s("OK"), B(true)),
        ("len(result)", s("héllo"), n(5.0)),
        // in / not in
        ("result.status in ['ok', 'fine']", web.clone(), B(true)),
        ("result.status not in ['ok', 'fine']", web.clone(), B(false)),
        ("'data' in result", web.clone(), B(true)),
        ("'nope' not in result", web.clone(), B(true)),
        ("2 in result", v(&[1.0, 2.0]), B(true)),
        // ternary, ??, **
        ("result > 0.5 ? 'high' : 'low'", n(0.7), s("high")),
        ("len(result) == 0 ? true : result[0] < 1", v(&[]), B(true)),
        ("(result ?? 0) < 1", Value::Nil, B(true)),
        ("result.missing ?? 5", web.clone(), n(5.0)),
        ("2 ** 10", n(0.0), n(1024.0)),
        ("2 ** 3 ** 2", n(0.0), n(512.0)),
        ("-2 ** 2", n(0.0), n(-4.0)),
        ("2 ^ 3", n(0.0), n(8.0)),
        ("7 / 2", n(0.0), n(3.5)),
        // default, isNil, abs, len
        ("default(result, 0) >= 0.95", Value::Nil, B(false)),
        ("default(result, 1) >= 0.95", Value::Nil, B(true)),
        ("default(result, 0) >= 0.95", n(0.97), B(true)),
        ("isNil(result)", Value::Nil, B(true)),
        ("isNil(result)", v(&[]), B(false)),
        ("abs(result[0]) < 1", v(&[-0.5]), B(true)),
        ("len(result.items) == 2", web.clone(), B(true)),
        ("len(result)", web.clone(), n(7.0)),
        // predicates, written with and without braces
        ("all(result, {# < 1000})", v(&[120.0, 340.0, 90.0]), B(true)),
        ("all(result, # < 1000)", v(&[120.0, 1340.0]), B(false)),
        ("all(result, # < 1000)", v(&[]), B(true)),
        ("all(result.latencies, {# < 500})", web.clone(), B(true)),
        ("any(result, # > 300)", v(&[120.0, 340.0]), B(true)),
        ("none(result, isNaN(#))", v(&[1.0, 2.0]), B(true)),
        ("none(result, isNaN(#))", v(&[1.0, f64::NAN]), B(false)),
        ("one(result, # > 100)", v(&[120.0, 90.0]), B(true)),
        (
            "len(filter(result, # > 100)) == 2",
            v(&[120.0, 340.0, 90.0]),
            B(true),
        ),
        (
            "filter(result, # > 100)",
            v(&[120.0, 340.0, 90.0]),
            v(&[120.0, 340.0]),
        ),
        ("map(result, # * 2)", v(&[1.0, 2.0]), v(&[2.0, 4.0])),
        ("map(result, {# / 1000})[1]", v(&[500.0, 250.0]), n(0.25)),
        ("all(result.items, .healthy)", web.clone(), B(false)),
        (
            "any(result.items, #.name == 'api' && #.healthy)",
            web.clone(),
            B(true),
        ),
        ("count(result.items, !.healthy)", web.clone(), n(1.0)),
        (
            "find(result.items, .name == 'db').healthy",
            web.clone(),
            B(false),
        ),
        (
            "all(result, all(#, # > 0))",
            json(serde_json::json!([[1, 2], [3]])),
            B(true),
        ),
        // aggregates
        ("sum(result)", v(&[1.0, 2.0, 3.5]), n(6.5)),
        ("mean(result)", v(&[1.0, 2.0, 3.0]), n(2.0)),
        ("max(result) < 400", v(&[120.0, 340.0]), B(true)),
        ("min(result[0], result[1])", v(&[3.0, 2.0]), n(2.0)),
        ("first(result)", v(&[]), Value::Nil),
        ("last(result)", v(&[1.0, 9.0]), n(9.0)),
        ("result[1:]", v(&[1.0, 2.0, 3.0]), v(&[2.0, 3.0])),
        ("1..3", n(0.0), v(&[1.0, 2.0, 3.0])),
        // isNaN / isInf on what Prometheus gives
        (
            "isNaN(result[0]) || result[0] >= 0.95",
            v(&[f64::NAN]),
            B(true),
        ),
        ("isInf(result[0])", v(&[f64::NEG_INFINITY]), B(true)),
    ];
    for (text, result, want) in &cases {
        let e = Expr::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        let got = e.eval(result).unwrap_or_else(|err| panic!("{text}: {err}"));
        assert!(
            got.equals(want) || got.to_string() == want.to_string(),
            "{text} with result={result}: got {got}, want {want}"
        );
    }
}

#[test]
fn times_and_durations_for_range_queries() {
    let now = 1_700_000_000.0;
    let at = |t: &str| Expr::parse(t).unwrap().eval_time(now);
    assert_eq!(at("now()"), Ok(now));
    assert_eq!(at("now() - duration(\"5m\")"), Ok(now - 300.0));
    assert_eq!(
        at("now() - duration('1h30m') + duration('10s')"),
        Ok(now - 5390.0)
    );
    let e = at("duration('5m')").unwrap_err().to_string();
    assert!(e.contains("a time is needed"), "{e}");
    let e = at("now() - duration('soon')").unwrap_err().to_string();
    assert!(e.contains("at position 17"), "{e}");
    let cond = Expr::parse("now() - duration('1m') < now()").unwrap();
    assert_eq!(cond.condition_at(&Value::Nil, now), Ok(true));
}

#[test]
fn syntax_errors_name_the_position() {
    let cases: &[(&str, usize, &str)] = &[
        ("result >=", 9, "expected a value"),
        ("result[0 >= 1", 13, "expected `]`"),
        ("(result > 1", 11, "expected `)`"),
        ("result = 1", 7, "use `==`"),
        ("result & 1", 7, "use `&&`"),
        ("result | 1", 7, "use `||`"),
        ("resutl > 1", 0, "unknown name `resutl`"),
        ("result > 1 2", 11, "unexpected text"),
        ("isNaN result", 6, "expected `(` after `isNaN`"),
        ("len(result, 1)", 10, "takes one argument"),
        ("1 < result < 2", 11, "do not chain"),
        ("result > 1 @", 11, "unexpected character `@`"),
        ("", 0, "expected a value"),
        ("é > 1", 0, "unexpected character `é`"),
        ("result == 'open", 10, "not closed"),
        ("all(result, # < 1", 17, "expected `)`"),
        ("all(result, {# < 1)", 18, "expected `}`"),
        ("# > 1", 0, "only inside a predicate"),
        ("result > 0 ? 1", 14, "expected `:`"),
        ("result.", 7, "expected a member name"),
        ("now(1)", 4, "takes no argument"),
        ("default(result)", 0, "at least 2"),
        ("'a\\q'", 2, "unknown escape"),
        ("1 > é", 4, "unexpected character `é`"),
    ];
    for (text, pos, msg) in cases {
        match Expr::parse(text) {
            Err(ExprError::Syntax {
                position,
                message,
                expr,
            }) => {
                assert_eq!(position, *pos, "{text}: {message}");
                assert!(message.contains(msg), "{text}: {message}");
                assert_eq!(expr, *text);
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    let e = Expr::parse("result >").unwrap_err().to_string();
    assert_eq!(
        e,
        "syntax error in `result >` at position 8: expected a value"
    );
}

#[test]
fn evaluation_errors_are_errors_not_panics() {
    let cases: &[(&str, Value, &str)] = &[
        ("result[3] > 1", v(&[1.0]), "out of range for a list of 1"),
        ("result[-2] > 1", v(&[1.0]), "out of range for a list of 1"),
        ("result[0.5] > 1", v(&[1.0]), "not a whole number"),
        (
            "result[0] > 1",
            n(1.0),
            "only a list, a map or a string can be indexed",
        ),
        ("result > 1", v(&[1.0]), "index it: result[0]"),
        (
            "len(result) > 1",
            n(1.0),
            "len needs a list, a map or a string",
        ),
        ("result && true", n(1.0), "needs true or false"),
        ("result + true", n(1.0), "needs a number"),
        ("result[1e30] > 0", v(&[1.0]), "out of range"),
        (
            "result.a.b == 1",
            json(serde_json::json!({"a": null})),
            "cannot read \"b\" of nil",
        ),
        (
            "result.status > 1",
            json(serde_json::json!({"status": "ok"})),
            "cannot compare a string with a number",
        ),
        ("asInt(result)", s("1.5x"), "is not a whole number"),
        ("asFloat(result) > 0", s("abc"), "is not a number"),
        ("all(result, # + 1)", v(&[1.0]), "needs true or false"),
        ("all(result, # > 1)", n(1.0), "needs a list"),
        ("result ? 1 : 2", n(1.0), "needs true or false"),
        ("result matches '('", s("x"), "invalid regex"),
        ("max(result) > 1", v(&[]), "empty list"),
        ("1..1000000 == 1", n(0.0), "at most"),
    ];
    for (text, result, msg) in cases {
        let e = Expr::parse(text).unwrap();
        match e.eval_condition(result) {
            Err(ExprError::Eval { message, .. }) => {
                assert!(message.contains(msg), "{text}: {message}")
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    // the position of the part that failed is named
    let e = Expr::parse("result.ok && result.data.p99 > 1").unwrap();
    let err = e
        .eval_condition(&json(serde_json::json!({"ok": true, "data": {"p99": "x"}})))
        .unwrap_err();
    assert!(
        matches!(&err, ExprError::Eval { position: 13, .. }),
        "{err}"
    );
    let e = Expr::parse("result + 1").unwrap();
    let err = e.eval_condition(&n(1.0)).unwrap_err().to_string();
    assert!(err.contains("must be true or false"), "{err}");
}

#[test]
fn nesting_is_bounded() {
    let deep = format!(
        "{}1{}",
        "(".repeat(MAX_DEPTH + 5),
        ")".repeat(MAX_DEPTH + 5)
    );
    let err = Expr::parse(&deep).unwrap_err().to_string();
    assert!(err.contains("nested more than"), "{err}");
    let fine = format!("{}1{} == 1", "(".repeat(20), ")".repeat(20));
    assert!(Expr::parse(&fine).is_ok());
    let nots = format!("{}true", "!".repeat(10_000));
    assert!(Expr::parse(&nots).is_err());
    assert!(Expr::parse(&"1+".repeat(3000)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        if let Ok(e) = Expr::parse(&text) {
            let _ = e.eval(&Value::numbers([1.0, f64::NAN]));
            let _ = e.eval(&Value::Number(0.5));
        }
    }

    #[test]
    fn arbitrary_token_soup_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("result"), Just("["), Just("]"), Just("("), Just(")"), Just("0"), Just("1.5"),
                Just("&&"), Just("||"), Just("!"), Just("-"), Just("+"), Just("*"), Just("/"),
                Just("%"), Just(">="), Just("<"), Just("=="), Just("isNaN"), Just("len"),
                Just("not"), Just("and"), Just("true"), Just(","), Just(" ")
            ],
            0..60,
        )
    ) {
        let text = parts.concat();
        if let Ok(e) = Expr::parse(&text) {
            let _ = e.eval(&Value::numbers([0.1, 0.2]));
            let _ = e.eval_condition(&Value::Number(f64::INFINITY));
        }
    }
}

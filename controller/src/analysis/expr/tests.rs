//! The expression table: every form users write, NaN, vectors, precedence and errors.

use super::*;
use proptest::prelude::*;

fn n(x: f64) -> Value {
    Value::Number(x)
}
fn v(xs: &[f64]) -> Value {
    Value::Vector(xs.to_vec())
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
        ("result > 1 $", 11, "unexpected character `$`"),
        ("", 0, "expected a value"),
        ("é > 1", 0, "unexpected character `é`"),
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
        ("result[3] > 1", v(&[1.0]), "out of range for a vector of 1"),
        ("result[-1] > 1", v(&[1.0]), "not a whole number"),
        ("result[0.5] > 1", v(&[1.0]), "not a whole number"),
        ("result[0] > 1", n(1.0), "only a vector can be indexed"),
        ("result > 1", v(&[1.0]), "index a vector"),
        ("len(result) > 1", n(1.0), "len needs a vector"),
        ("result && true", n(1.0), "needs true or false"),
        ("result + true", n(1.0), "needs a number"),
        ("result[1e30] > 0", v(&[1.0]), "out of range"),
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
            let _ = e.eval(&Value::Vector(vec![1.0, f64::NAN]));
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
            let _ = e.eval(&Value::Vector(vec![0.1, 0.2]));
            let _ = e.eval_condition(&Value::Number(f64::INFINITY));
        }
    }
}

//! Condition expressions of analysis metrics (`successCondition`, `failureCondition`) and the
//! times of a Prometheus range query, in Argo Rollouts' language (expr-lang): numbers,
//! strings, booleans, `nil`, lists and maps; member access (`result.status`,
//! `result['p99']`, `result[0]`, `result[-1]`, `result?.data`, `result[1:3]`); comparisons,
//! `in`, `not in`, `contains`, `startsWith`, `endsWith`, `matches`; `&&`/`and`, `||`/`or`,
//! `!`/`not`; `+ - * / % **`; `?:` and `??`; Argo's `asInt`, `asFloat`, `isNaN`, `isInf`,
//! `isNil`, `default`; expr-lang's built-ins (`len`, `abs`, `all`, `any`, `none`, `one`,
//! `filter`, `map`, `count`, `find`, `sum`, `max`, `now()`, `duration("5m")`…) with `#` for
//! the element a predicate looks at.
//!
//! Written here rather than taken from a crate: the expression crates on the registry
//! implement other languages (CEL, their own), and this one needs Argo's exact forms,
//! positions in every error, and hard bounds. Guarantees:
//! - parsing is linear in the input and nesting is bounded ([`MAX_DEPTH`]), so no input can
//!   loop or overflow the stack; input longer than [`MAX_LEN`] is refused;
//! - a syntax error names the expression and the character position (0-based);
//! - evaluation never panics: a bad index, a type mismatch or a non-boolean condition is an
//!   [`ExprError::Eval`] with the position of the part that failed, which the analysis
//!   records as a measurement Error, as Argo does.
//!
//! NaN semantics follow IEEE 754 as in Go: every comparison with NaN is false except `!=`,
//! which is true; arithmetic with NaN gives NaN; division by zero gives ±Inf or NaN. Use
//! `isNaN(result)` to test for it.

mod eval;
mod lex;
mod parse;
mod value;

pub use value::Value;

/// Longest expression accepted, in bytes.
pub const MAX_LEN: usize = 4096;
pub use parse::MAX_DEPTH;

/// Why an expression could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// The text is not a valid expression.
    #[error("syntax error in `{expr}` at position {position}: {message}")]
    Syntax {
        /// The expression.
        expr: String,
        /// 0-based character position.
        position: usize,
        /// What was expected.
        message: String,
    },
    /// The expression is valid but cannot be evaluated on this value.
    #[error("cannot evaluate `{expr}` at position {position}: {message}")]
    Eval {
        /// The expression.
        expr: String,
        /// 0-based character position of the part that failed.
        position: usize,
        /// Why.
        message: String,
    },
}

/// A parsed expression, ready to evaluate many times.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    text: String,
    root: parse::Node,
}

impl Expr {
    /// Parses an expression.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        let syntax = |position: usize, message: String| ExprError::Syntax {
            expr: text.to_owned(),
            position,
            message,
        };
        if text.len() > MAX_LEN {
            return Err(syntax(MAX_LEN, format!("longer than {MAX_LEN} bytes")));
        }
        let toks = lex::lex(text).map_err(|(p, m)| syntax(p, m))?;
        let root = parse::Parser::new(toks, text.chars().count())
            .whole()
            .map_err(|(p, m)| syntax(p, m))?;
        Ok(Self {
            text: text.to_owned(),
            root,
        })
    }

    /// The source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates with `result` bound to `value` and `now()` at `now` (seconds since the
    /// Unix epoch).
    pub fn eval_at(&self, value: &Value, now: f64) -> Result<Value, ExprError> {
        let scope = eval::Scope {
            result: value,
            pointer: None,
            now,
        };
        eval::eval(&self.root, scope).map_err(|(position, message)| self.error(position, message))
    }

    /// Evaluates with `result` bound to `value` (and `now()` at the epoch).
    pub fn eval(&self, value: &Value) -> Result<Value, ExprError> {
        self.eval_at(value, 0.0)
    }

    /// Evaluates a condition, which must give a boolean.
    pub fn eval_condition(&self, value: &Value) -> Result<bool, ExprError> {
        self.condition_at(value, 0.0)
    }

    /// Evaluates a condition at `now` (seconds since the Unix epoch).
    pub fn condition_at(&self, value: &Value, now: f64) -> Result<bool, ExprError> {
        match self.eval_at(value, now)? {
            Value::Bool(b) => Ok(b),
            other => Err(self.error(
                0,
                format!("a condition must be true or false, not {}", other.kind()),
            )),
        }
    }

    /// Evaluates a time (a range query's `start` or `end`, e.g. `now() - duration("5m")`)
    /// at `now`, in seconds since the Unix epoch.
    pub fn eval_time(&self, now: f64) -> Result<f64, ExprError> {
        match self.eval_at(&Value::Nil, now)? {
            Value::Time(t) => Ok(t),
            other => Err(self.error(
                0,
                format!(
                    "a time is needed (such as now() - duration(\"5m\")), not {}",
                    other.kind()
                ),
            )),
        }
    }

    fn error(&self, position: usize, message: String) -> ExprError {
        ExprError::Eval {
            expr: self.text.clone(),
            position,
            message,
        }
    }
}

#[cfg(test)]
mod tests;

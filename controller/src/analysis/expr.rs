//! Condition expressions of analysis metrics (`successCondition`, `failureCondition`), in the
//! forms Argo Rollouts users write: `result[0] >= 0.95`, `result < 0.05`, `isNaN(result)`,
//! `len(result) == 0`, `!`, `&&`, `||`, `and`, `or`, `not`, arithmetic and parentheses.
//!
//! A small parser written here: the expression crates on the registry either pull a large
//! runtime for this handful of forms or lack precise error positions. Guarantees:
//! - parsing is linear in the input and nesting is bounded ([`MAX_DEPTH`]), so no input can
//!   loop or overflow the stack; input longer than [`MAX_LEN`] is refused;
//! - a syntax error names the expression and the character position (0-based);
//! - evaluation never panics: a bad index, a type mismatch or a non-boolean condition is an
//!   [`ExprError::Eval`], which the analysis records as a measurement Error.
//!
//! NaN semantics follow IEEE 754: every comparison with NaN is false except `!=`, which is
//! true; arithmetic with NaN gives NaN; division by zero gives ±Inf or NaN. Use `isNaN(result)`
//! to test for it.

use std::fmt;

/// Longest expression accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses, indexes, calls and unary operators.
pub const MAX_DEPTH: usize = 64;

/// A measured value: what `result` stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single number.
    Number(f64),
    /// A vector of numbers (e.g. a Prometheus vector).
    Vector(Vec<f64>),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Vector(v) => {
                write!(f, "[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, "]")
            }
        }
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Number(_) => "a number",
            Value::Vector(_) => "a vector",
            Value::Bool(_) => "a boolean",
        }
    }
}

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
    #[error("cannot evaluate `{expr}`: {message}")]
    Eval {
        /// The expression.
        expr: String,
        /// Why.
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    IsNaN,
    IsInf,
    Len,
    Abs,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    Bool(bool),
    Result,
    Not(Box<Node>),
    Neg(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Index(Box<Node>, Box<Node>),
    Call(Func, Box<Node>),
}

/// A parsed expression, ready to evaluate many times.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    text: String,
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, (usize, String)> {
    let mut toks = Vec::new();
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut i = 0;
    // positions are reported in characters, not bytes
    while let Some(&(_, c)) = chars.get(i) {
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit()))
        {
            while chars
                .get(i)
                .is_some_and(|(_, d)| d.is_ascii_digit() || *d == '.')
            {
                i += 1;
            }
            if chars.get(i).is_some_and(|(_, d)| *d == 'e' || *d == 'E') {
                let mut j = i + 1;
                if chars.get(j).is_some_and(|(_, d)| *d == '+' || *d == '-') {
                    j += 1;
                }
                if chars.get(j).is_some_and(|(_, d)| d.is_ascii_digit()) {
                    i = j;
                    while chars.get(i).is_some_and(|(_, d)| d.is_ascii_digit()) {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().map(|(_, c)| c).collect();
            let n: f64 = text
                .parse()
                .map_err(|_| (start, format!("`{text}` is not a number")))?;
            toks.push((Tok::Num(n), start));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while chars
                .get(i)
                .is_some_and(|(_, d)| d.is_ascii_alphanumeric() || *d == '_')
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().map(|(_, c)| c).collect();
            toks.push((Tok::Ident(text), start));
            continue;
        }
        let next = chars.get(i + 1).map(|(_, d)| *d);
        let two = match (c, next) {
            ('&', Some('&')) => Some("&&"),
            ('|', Some('|')) => Some("||"),
            ('=', Some('=')) => Some("=="),
            ('!', Some('=')) => Some("!="),
            ('<', Some('=')) => Some("<="),
            ('>', Some('=')) => Some(">="),
            _ => None,
        };
        if let Some(op) = two {
            toks.push((Tok::Op(op), start));
            i += 2;
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '<' => Tok::Op("<"),
            '>' => Tok::Op(">"),
            '!' => Tok::Op("!"),
            '+' => Tok::Op("+"),
            '-' => Tok::Op("-"),
            '*' => Tok::Op("*"),
            '/' => Tok::Op("/"),
            '%' => Tok::Op("%"),
            '=' => return Err((start, "`=` is not an operator; use `==`".to_owned())),
            '&' => return Err((start, "`&` is not an operator; use `&&`".to_owned())),
            '|' => return Err((start, "`|` is not an operator; use `||`".to_owned())),
            other => return Err((start, format!("unexpected character `{other}`"))),
        };
        toks.push((tok, start));
        i += 1;
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    depth: usize,
}

type PResult<T> = Result<T, (usize, String)>;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, p)| *p)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(i)) if i == w)
    }

    fn deeper(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((
                self.at(),
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> PResult<Node> {
        self.deeper()?;
        let r = self.or();
        self.depth -= 1;
        r
    }

    fn or(&mut self) -> PResult<Node> {
        let mut lhs = self.and()?;
        while self.is_op("||") || self.is_word("or") {
            self.bump();
            let rhs = self.and()?;
            lhs = Node::Bin(BinOp::Or, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn and(&mut self) -> PResult<Node> {
        let mut lhs = self.not()?;
        while self.is_op("&&") || self.is_word("and") {
            self.bump();
            let rhs = self.not()?;
            lhs = Node::Bin(BinOp::And, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn not(&mut self) -> PResult<Node> {
        if self.is_op("!") || self.is_word("not") {
            self.bump();
            self.deeper()?;
            let inner = self.not();
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> PResult<Node> {
        let lhs = self.add()?;
        let op = match self.peek() {
            Some(Tok::Op("==")) => BinOp::Eq,
            Some(Tok::Op("!=")) => BinOp::Ne,
            Some(Tok::Op("<")) => BinOp::Lt,
            Some(Tok::Op("<=")) => BinOp::Le,
            Some(Tok::Op(">")) => BinOp::Gt,
            Some(Tok::Op(">=")) => BinOp::Ge,
            _ => return Ok(lhs),
        };
        self.bump();
        let rhs = self.add()?;
        if matches!(
            self.peek(),
            Some(Tok::Op("==" | "!=" | "<" | "<=" | ">" | ">="))
        ) {
            return Err((
                self.at(),
                "comparisons do not chain; join them with `&&`".to_owned(),
            ));
        }
        Ok(Node::Bin(op, Box::new(lhs), Box::new(rhs)))
    }

    fn add(&mut self) -> PResult<Node> {
        let mut lhs = self.mul()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("+")) => BinOp::Add,
                Some(Tok::Op("-")) => BinOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.mul()?;
            lhs = Node::Bin(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn mul(&mut self) -> PResult<Node> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("*")) => BinOp::Mul,
                Some(Tok::Op("/")) => BinOp::Div,
                Some(Tok::Op("%")) => BinOp::Rem,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.unary()?;
            lhs = Node::Bin(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn unary(&mut self) -> PResult<Node> {
        if self.is_op("-") || self.is_op("+") {
            let neg = self.is_op("-");
            self.bump();
            self.deeper()?;
            let inner = self.unary();
            self.depth -= 1;
            let inner = inner?;
            return Ok(if neg {
                Node::Neg(Box::new(inner))
            } else {
                inner
            });
        }
        if self.is_op("!") || self.is_word("not") {
            return self.not();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> PResult<Node> {
        let mut node = self.primary()?;
        while matches!(self.peek(), Some(Tok::LBracket)) {
            self.bump();
            let index = self.expr()?;
            self.expect(&Tok::RBracket, "`]`")?;
            node = Node::Index(Box::new(node), Box::new(index));
        }
        Ok(node)
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> PResult<()> {
        if self.peek() == Some(tok) {
            self.bump();
            Ok(())
        } else {
            Err((self.at(), format!("expected {what}")))
        }
    }

    fn primary(&mut self) -> PResult<Node> {
        let at = self.at();
        match self.bump() {
            Some(Tok::Num(n)) => Ok(Node::Num(n)),
            Some(Tok::LParen) => {
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "`)`")?;
                Ok(inner)
            }
            Some(Tok::Ident(word)) => match word.as_str() {
                "result" => Ok(Node::Result),
                "true" => Ok(Node::Bool(true)),
                "false" => Ok(Node::Bool(false)),
                "NaN" => Ok(Node::Num(f64::NAN)),
                "Inf" => Ok(Node::Num(f64::INFINITY)),
                "isNaN" | "isInf" | "len" | "abs" => {
                    let f = match word.as_str() {
                        "isNaN" => Func::IsNaN,
                        "isInf" => Func::IsInf,
                        "len" => Func::Len,
                        _ => Func::Abs,
                    };
                    self.expect(&Tok::LParen, &format!("`(` after `{word}`"))?;
                    let arg = self.expr()?;
                    if matches!(self.peek(), Some(Tok::Comma)) {
                        return Err((self.at(), format!("`{word}` takes one argument")));
                    }
                    self.expect(&Tok::RParen, "`)`")?;
                    Ok(Node::Call(f, Box::new(arg)))
                }
                other => Err((
                    at,
                    format!(
                        "unknown name `{other}` (known: result, true, false, NaN, Inf, isNaN, isInf, len, abs, and, or, not)"
                    ),
                )),
            },
            Some(_) | None => Err((at, "expected a value".to_owned())),
        }
    }
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
        let toks = lex(text).map_err(|(p, m)| syntax(p, m))?;
        let mut p = Parser {
            toks,
            pos: 0,
            end: text.chars().count(),
            depth: 0,
        };
        let root = p.expr().map_err(|(pos, m)| syntax(pos, m))?;
        if p.pos < p.toks.len() {
            return Err(syntax(
                p.at(),
                "unexpected text after the expression".to_owned(),
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            root,
        })
    }

    /// The source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates with `result` bound to `value`.
    pub fn eval(&self, value: &Value) -> Result<Value, ExprError> {
        eval(&self.root, value).map_err(|message| ExprError::Eval {
            expr: self.text.clone(),
            message,
        })
    }

    /// Evaluates a condition, which must give a boolean.
    pub fn eval_condition(&self, value: &Value) -> Result<bool, ExprError> {
        match self.eval(value)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::Eval {
                expr: self.text.clone(),
                message: format!("a condition must be true or false, not {}", other.kind()),
            }),
        }
    }
}

fn number(v: &Value, what: &str) -> Result<f64, String> {
    match v {
        Value::Number(n) => Ok(*n),
        other => Err(format!(
            "{what} needs a number, got {} (index a vector: result[0])",
            other.kind()
        )),
    }
}

fn boolean(v: &Value, what: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(format!("{what} needs true or false, got {}", other.kind())),
    }
}

fn eval(node: &Node, result: &Value) -> Result<Value, String> {
    Ok(match node {
        Node::Num(n) => Value::Number(*n),
        Node::Bool(b) => Value::Bool(*b),
        Node::Result => result.clone(),
        Node::Not(inner) => Value::Bool(!boolean(&eval(inner, result)?, "`!`")?),
        Node::Neg(inner) => Value::Number(-number(&eval(inner, result)?, "`-`")?),
        Node::Bin(BinOp::And, l, r) => {
            // short-circuit, as users expect from `len(result) > 0 && result[0] > 1`
            if !boolean(&eval(l, result)?, "`&&`")? {
                Value::Bool(false)
            } else {
                Value::Bool(boolean(&eval(r, result)?, "`&&`")?)
            }
        }
        Node::Bin(BinOp::Or, l, r) => {
            if boolean(&eval(l, result)?, "`||`")? {
                Value::Bool(true)
            } else {
                Value::Bool(boolean(&eval(r, result)?, "`||`")?)
            }
        }
        Node::Bin(op, l, r) => {
            let (lv, rv) = (eval(l, result)?, eval(r, result)?);
            if let (BinOp::Eq | BinOp::Ne, Value::Bool(a), Value::Bool(b)) = (op, &lv, &rv) {
                return Ok(Value::Bool((a == b) == (*op == BinOp::Eq)));
            }
            let sym = op_symbol(*op);
            let (a, b) = (number(&lv, sym)?, number(&rv, sym)?);
            match op {
                BinOp::Eq => Value::Bool(a == b),
                BinOp::Ne => Value::Bool(a != b),
                BinOp::Lt => Value::Bool(a < b),
                BinOp::Le => Value::Bool(a <= b),
                BinOp::Gt => Value::Bool(a > b),
                BinOp::Ge => Value::Bool(a >= b),
                BinOp::Add => Value::Number(a + b),
                BinOp::Sub => Value::Number(a - b),
                BinOp::Mul => Value::Number(a * b),
                BinOp::Div => Value::Number(a / b),
                BinOp::Rem => Value::Number(a % b),
                BinOp::And | BinOp::Or => unreachable_bool(),
            }
        }
        Node::Index(target, index) => {
            let t = eval(target, result)?;
            let i = number(&eval(index, result)?, "an index")?;
            let Value::Vector(items) = t else {
                return Err(format!("only a vector can be indexed, not {}", t.kind()));
            };
            if i.fract() != 0.0 || i < 0.0 {
                return Err(format!("index {i} is not a whole number ≥ 0"));
            }
            // `i` is a non-negative whole number; huge values saturate and miss below
            let idx = i as usize;
            match items.get(idx) {
                Some(x) => Value::Number(*x),
                None => {
                    return Err(format!(
                        "index {idx} is out of range for a vector of {} element(s)",
                        items.len()
                    ));
                }
            }
        }
        Node::Call(f, arg) => {
            let v = eval(arg, result)?;
            match f {
                Func::IsNaN => Value::Bool(number(&v, "isNaN")?.is_nan()),
                Func::IsInf => Value::Bool(number(&v, "isInf")?.is_infinite()),
                Func::Abs => Value::Number(number(&v, "abs")?.abs()),
                Func::Len => match v {
                    Value::Vector(items) => Value::Number(items.len() as f64),
                    other => return Err(format!("len needs a vector, got {}", other.kind())),
                },
            }
        }
    })
}

/// `&&` and `||` are evaluated before the arithmetic match; this arm is never reached.
fn unreachable_bool() -> Value {
    Value::Bool(false)
}

fn op_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::Or => "`||`",
        BinOp::And => "`&&`",
        BinOp::Eq => "`==`",
        BinOp::Ne => "`!=`",
        BinOp::Lt => "`<`",
        BinOp::Le => "`<=`",
        BinOp::Gt => "`>`",
        BinOp::Ge => "`>=`",
        BinOp::Add => "`+`",
        BinOp::Sub => "`-`",
        BinOp::Mul => "`*`",
        BinOp::Div => "`/`",
        BinOp::Rem => "`%`",
    }
}

#[cfg(test)]
mod tests;

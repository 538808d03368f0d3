//! Parses tokens into a tree, with expr-lang's grammar and precedence (lowest first):
//! `?:`; `||`/`or`; `&&`/`and`; `!`/`not`; comparisons, `in`, `not in`, `contains`,
//! `startsWith`, `endsWith`, `matches` (which do not chain); `..`; `+ -`; `* / %`; unary
//! `-`/`+`; `**`/`^` (right to left); `??`; then member access (`.a`, `?.a`, `[i]`, `['k']`,
//! `[a:b]`) and calls. Predicates (`all(list, # < 1)`, also written `{# < 1}`) bind `#` to
//! each element and `.name` to its member.
//!
//! Nesting is bounded ([`MAX_DEPTH`]) so that no input can overflow the stack.

use super::lex::Tok;
use super::value::Value;

/// Deepest nesting of parentheses, indexes, calls and unary operators.
pub const MAX_DEPTH: usize = 64;

/// A node and where it starts (character position).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Character position in the expression.
    pub pos: usize,
    /// What it is.
    pub kind: Kind,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    Range,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
    Coalesce,
}

impl BinOp {
    /// As written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Contains => "contains",
            BinOp::StartsWith => "startsWith",
            BinOp::EndsWith => "endsWith",
            BinOp::Matches => "matches",
            BinOp::Range => "..",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Pow => "**",
            BinOp::Coalesce => "??",
        }
    }
}

/// Built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    IsNaN,
    IsInf,
    IsNil,
    Len,
    Abs,
    AsInt,
    AsFloat,
    Int,
    Float,
    String,
    Default,
    Lower,
    Upper,
    Trim,
    Round,
    Floor,
    Ceil,
    Keys,
    Values,
    First,
    Last,
    Sum,
    Mean,
    Median,
    Max,
    Min,
    Now,
    Duration,
    All,
    Any,
    None,
    One,
    Filter,
    Map,
    Count,
    Find,
    FindIndex,
}

impl Func {
    /// As written.
    pub fn name(self) -> &'static str {
        FUNCS.iter().find(|x| x.1 == self).map_or("?", |x| x.0)
    }

    /// Whether its second argument is a predicate over a list's elements.
    pub fn takes_predicate(self) -> bool {
        FUNCS.iter().find(|x| x.1 == self).is_some_and(|x| x.4)
    }
}

/// (name, function, fewest arguments, most arguments, whether the second is a predicate).
const FUNCS: &[(&str, Func, usize, usize, bool)] = &[
    ("isNaN", Func::IsNaN, 1, 1, false),
    ("isInf", Func::IsInf, 1, 1, false),
    ("isNil", Func::IsNil, 1, 1, false),
    ("len", Func::Len, 1, 1, false),
    ("abs", Func::Abs, 1, 1, false),
    ("asInt", Func::AsInt, 1, 1, false),
    ("asFloat", Func::AsFloat, 1, 1, false),
    ("int", Func::Int, 1, 1, false),
    ("float", Func::Float, 1, 1, false),
    ("string", Func::String, 1, 1, false),
    ("default", Func::Default, 2, 2, false),
    ("lower", Func::Lower, 1, 1, false),
    ("upper", Func::Upper, 1, 1, false),
    ("trim", Func::Trim, 1, 1, false),
    ("round", Func::Round, 1, 1, false),
    ("floor", Func::Floor, 1, 1, false),
    ("ceil", Func::Ceil, 1, 1, false),
    ("keys", Func::Keys, 1, 1, false),
    ("values", Func::Values, 1, 1, false),
    ("first", Func::First, 1, 1, false),
    ("last", Func::Last, 1, 1, false),
    ("sum", Func::Sum, 1, 1, false),
    ("mean", Func::Mean, 1, 1, false),
    ("median", Func::Median, 1, 1, false),
    ("max", Func::Max, 1, 64, false),
    ("min", Func::Min, 1, 64, false),
    ("now", Func::Now, 0, 0, false),
    ("duration", Func::Duration, 1, 1, false),
    ("all", Func::All, 2, 2, true),
    ("any", Func::Any, 2, 2, true),
    ("none", Func::None, 2, 2, true),
    ("one", Func::One, 2, 2, true),
    ("filter", Func::Filter, 2, 2, true),
    ("map", Func::Map, 2, 2, true),
    ("count", Func::Count, 2, 2, true),
    ("find", Func::Find, 2, 2, true),
    ("findIndex", Func::FindIndex, 2, 2, true),
];

/// Names that are values rather than functions.
const WORDS: &[&str] = &["result", "true", "false", "nil", "NaN", "Inf"];

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A literal.
    Lit(Value),
    /// `result`.
    Result,
    /// `#`: the element a predicate is looking at.
    Pointer,
    /// `[a, b]`.
    List(Vec<Node>),
    /// `!x` / `not x`.
    Not(Box<Node>),
    /// `-x`.
    Neg(Box<Node>),
    /// `a OP b`.
    Bin(BinOp, Box<Node>, Box<Node>),
    /// `a.b`, `a[k]`, and with `optional` `a?.b`: nil when `a` is nil.
    Member {
        /// What is looked into.
        target: Box<Node>,
        /// The key or index.
        key: Box<Node>,
        /// `?.`.
        optional: bool,
    },
    /// `a[from:to]`.
    Slice(Box<Node>, Option<Box<Node>>, Option<Box<Node>>),
    /// `c ? a : b`.
    Cond(Box<Node>, Box<Node>, Box<Node>),
    /// A built-in call; a predicate's body is its second argument.
    Call(Func, Vec<Node>),
}

/// What a parse step gives: a node, or the position and reason of an error.
pub type PResult<T> = Result<T, (usize, String)>;

/// The parser's state.
pub struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    depth: usize,
    /// How many predicates the parser is inside (where `#` means something).
    closures: usize,
}

fn node(pos: usize, kind: Kind) -> Node {
    Node { pos, kind }
}

fn bin(op: BinOp, l: Node, r: Node) -> Node {
    node(l.pos, Kind::Bin(op, Box::new(l), Box::new(r)))
}

impl Parser {
    /// A parser over `toks`; `end` is the text's length in characters.
    pub fn new(toks: Vec<(Tok, usize)>, end: usize) -> Self {
        Self {
            toks,
            pos: 0,
            end,
            depth: 0,
            closures: 0,
        }
    }

    /// The whole expression: one, and nothing after it.
    pub fn whole(mut self) -> PResult<Node> {
        let root = self.expr()?;
        if self.pos < self.toks.len() {
            return Err((self.at(), "unexpected text after the expression".to_owned()));
        }
        Ok(root)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn peek2(&self) -> Option<&Tok> {
        self.toks.get(self.pos + 1).map(|(t, _)| t)
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

    fn expect(&mut self, op: &str, what: &str) -> PResult<()> {
        if self.is_op(op) {
            self.bump();
            Ok(())
        } else {
            Err((self.at(), format!("expected {what}")))
        }
    }

    /// Runs `f` one level deeper, refusing to go past [`MAX_DEPTH`].
    fn deeper<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((
                self.at(),
                format!("nested more than {} levels deep", MAX_DEPTH),
            ));
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn expr(&mut self) -> PResult<Node> {
        self.deeper(Self::ternary)
    }

    fn ternary(&mut self) -> PResult<Node> {
        let cond = self.or()?;
        if !self.is_op("?") {
            return Ok(cond);
        }
        self.bump();
        let yes = self.expr()?;
        self.expect(":", "`:` of `? :`")?;
        let no = self.expr()?;
        Ok(node(
            cond.pos,
            Kind::Cond(Box::new(cond), Box::new(yes), Box::new(no)),
        ))
    }

    fn or(&mut self) -> PResult<Node> {
        let mut lhs = self.and()?;
        while self.is_op("||") || self.is_word("or") {
            self.bump();
            let rhs = self.and()?;
            lhs = bin(BinOp::Or, lhs, rhs);
        }
        Ok(lhs)
    }

    fn and(&mut self) -> PResult<Node> {
        let mut lhs = self.not()?;
        while self.is_op("&&") || self.is_word("and") {
            self.bump();
            let rhs = self.not()?;
            lhs = bin(BinOp::And, lhs, rhs);
        }
        Ok(lhs)
    }

    fn not(&mut self) -> PResult<Node> {
        if self.is_op("!") || self.is_word("not") {
            let at = self.at();
            self.bump();
            let inner = self.deeper(Self::not)?;
            return Ok(node(at, Kind::Not(Box::new(inner))));
        }
        self.cmp()
    }

    fn cmp_op(&self) -> Option<(BinOp, usize)> {
        let op = match self.peek()? {
            Tok::Op("==") => BinOp::Eq,
            Tok::Op("!=") => BinOp::Ne,
            Tok::Op("<") => BinOp::Lt,
            Tok::Op("<=") => BinOp::Le,
            Tok::Op(">") => BinOp::Gt,
            Tok::Op(">=") => BinOp::Ge,
            Tok::Ident(w) => match w.as_str() {
                "in" => BinOp::In,
                "not" if matches!(self.peek2(), Some(Tok::Ident(i)) if i == "in") => {
                    return Some((BinOp::NotIn, 2));
                }
                "contains" => BinOp::Contains,
                "startsWith" => BinOp::StartsWith,
                "endsWith" => BinOp::EndsWith,
                "matches" => BinOp::Matches,
                _ => return None,
            },
            _ => return None,
        };
        Some((op, 1))
    }

    fn cmp(&mut self) -> PResult<Node> {
        let lhs = self.range()?;
        let Some((op, width)) = self.cmp_op() else {
            return Ok(lhs);
        };
        self.pos += width;
        let rhs = self.range()?;
        if self.cmp_op().is_some() {
            return Err((
                self.at(),
                "comparisons do not chain; join them with `&&`".to_owned(),
            ));
        }
        Ok(bin(op, lhs, rhs))
    }

    fn range(&mut self) -> PResult<Node> {
        let lhs = self.add()?;
        if !self.is_op("..") {
            return Ok(lhs);
        }
        self.bump();
        let rhs = self.add()?;
        Ok(bin(BinOp::Range, lhs, rhs))
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
            lhs = bin(op, lhs, rhs);
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
            lhs = bin(op, lhs, rhs);
        }
    }

    fn unary(&mut self) -> PResult<Node> {
        if self.is_op("-") || self.is_op("+") {
            let neg = self.is_op("-");
            let at = self.at();
            self.bump();
            let inner = self.deeper(Self::unary)?;
            return Ok(if neg {
                node(at, Kind::Neg(Box::new(inner)))
            } else {
                inner
            });
        }
        if self.is_op("!") || self.is_word("not") {
            return self.not();
        }
        self.pow()
    }

    fn pow(&mut self) -> PResult<Node> {
        let base = self.coalesce()?;
        if self.is_op("**") || self.is_op("^") {
            self.bump();
            let exp = self.deeper(Self::unary)?;
            return Ok(bin(BinOp::Pow, base, exp));
        }
        Ok(base)
    }

    fn coalesce(&mut self) -> PResult<Node> {
        let mut lhs = self.postfix()?;
        while self.is_op("??") {
            self.bump();
            let rhs = self.postfix()?;
            lhs = bin(BinOp::Coalesce, lhs, rhs);
        }
        Ok(lhs)
    }

    fn postfix(&mut self) -> PResult<Node> {
        let mut n = self.primary()?;
        loop {
            let optional = self.is_op("?.");
            if optional || self.is_op(".") {
                self.bump();
                if self.is_op("[") {
                    n = self.index(n, optional)?;
                    continue;
                }
                let at = self.at();
                let Some(Tok::Ident(name)) = self.bump() else {
                    return Err((at, "expected a member name after `.`".to_owned()));
                };
                n = node(
                    n.pos,
                    Kind::Member {
                        target: Box::new(n),
                        key: Box::new(node(at, Kind::Lit(Value::String(name)))),
                        optional,
                    },
                );
            } else if self.is_op("[") {
                n = self.index(n, false)?;
            } else {
                return Ok(n);
            }
        }
    }

    /// `[i]`, `['k']` or `[a:b]` after `target`.
    fn index(&mut self, target: Node, optional: bool) -> PResult<Node> {
        self.bump();
        let from = if self.is_op(":") {
            None
        } else {
            Some(self.expr()?)
        };
        if self.is_op(":") {
            self.bump();
            let to = if self.is_op("]") {
                None
            } else {
                Some(self.expr()?)
            };
            self.expect("]", "`]`")?;
            return Ok(node(
                target.pos,
                Kind::Slice(Box::new(target), from.map(Box::new), to.map(Box::new)),
            ));
        }
        self.expect("]", "`]`")?;
        let key = from.ok_or((self.at(), "expected an index".to_owned()))?;
        Ok(node(
            target.pos,
            Kind::Member {
                target: Box::new(target),
                key: Box::new(key),
                optional,
            },
        ))
    }

    fn primary(&mut self) -> PResult<Node> {
        let at = self.at();
        let lit = |v: Value| Ok(node(at, Kind::Lit(v)));
        match self.bump() {
            Some(Tok::Num(n)) => lit(Value::Number(n)),
            Some(Tok::Str(s)) => lit(Value::String(s)),
            Some(Tok::Op("(")) => {
                let inner = self.expr()?;
                self.expect(")", "`)`")?;
                Ok(inner)
            }
            Some(Tok::Op("[")) => {
                let mut items = Vec::new();
                while !self.is_op("]") {
                    items.push(self.expr()?);
                    if !self.is_op(",") {
                        break;
                    }
                    self.bump();
                }
                self.expect("]", "`]` or `,`")?;
                Ok(node(at, Kind::List(items)))
            }
            Some(Tok::Pointer(name)) => {
                if self.closures == 0 {
                    return Err((
                        at,
                        "`#` means something only inside a predicate such as all(result, # > 0)"
                            .to_owned(),
                    ));
                }
                if !name.is_empty() {
                    return Err((at, format!("unknown name `#{name}` (use `#`)")));
                }
                Ok(node(at, Kind::Pointer))
            }
            // `.name` inside a predicate is the element's member
            Some(Tok::Op(".")) if self.closures > 0 => {
                let name_at = self.at();
                let Some(Tok::Ident(name)) = self.bump() else {
                    return Err((name_at, "expected a member name after `.`".to_owned()));
                };
                Ok(node(
                    at,
                    Kind::Member {
                        target: Box::new(node(at, Kind::Pointer)),
                        key: Box::new(node(name_at, Kind::Lit(Value::String(name)))),
                        optional: false,
                    },
                ))
            }
            Some(Tok::Ident(word)) => match word.as_str() {
                "result" => Ok(node(at, Kind::Result)),
                "true" => lit(Value::Bool(true)),
                "false" => lit(Value::Bool(false)),
                "nil" => lit(Value::Nil),
                "NaN" => lit(Value::Number(f64::NAN)),
                "Inf" => lit(Value::Number(f64::INFINITY)),
                name => match FUNCS.iter().find(|f| f.0 == name) {
                    Some(&(_, f, min, max, predicate)) => self.call(name, f, min, max, predicate),
                    None => {
                        let funcs: Vec<&str> = FUNCS.iter().map(|f| f.0).collect();
                        Err((
                            at,
                            format!(
                                "unknown name `{name}` (known: {}, {}; and, or, not, in, contains, startsWith, endsWith, matches)",
                                WORDS.join(", "),
                                funcs.join(", ")
                            ),
                        ))
                    }
                },
            },
            Some(_) | None => Err((at, "expected a value".to_owned())),
        }
    }

    fn call(
        &mut self,
        name: &str,
        f: Func,
        min: usize,
        max: usize,
        predicate: bool,
    ) -> PResult<Node> {
        let at = self.toks.get(self.pos.saturating_sub(1)).map_or(0, |t| t.1);
        self.expect("(", &format!("`(` after `{name}`"))?;
        let many = match max {
            0 => "no argument".to_owned(),
            1 => "one argument".to_owned(),
            n => format!("at most {n} arguments"),
        };
        let mut args = Vec::new();
        while !self.is_op(")") {
            if args.len() == max {
                return Err((self.at(), format!("`{name}` takes {many}")));
            }
            let arg = if predicate && args.len() == 1 {
                self.predicate()?
            } else {
                self.expr()?
            };
            args.push(arg);
            if !self.is_op(",") {
                break;
            }
            if args.len() == max {
                return Err((self.at(), format!("`{name}` takes {many}")));
            }
            self.bump();
        }
        self.expect(")", "`)`")?;
        if args.len() < min {
            return Err((at, format!("`{name}` takes at least {min} argument(s)")));
        }
        Ok(node(at, Kind::Call(f, args)))
    }

    /// A predicate: `{…}` or a bare expression, where `#` is the element.
    fn predicate(&mut self) -> PResult<Node> {
        self.closures += 1;
        let braced = self.is_op("{");
        if braced {
            self.bump();
        }
        let body = self.expr();
        self.closures -= 1;
        let body = body?;
        if braced {
            self.expect("}", "`}`")?;
        }
        Ok(body)
    }
}

//! Evaluates a parsed condition against a value of `result`, with expr-lang's semantics as
//! Argo Rollouts runs them: `==` between different kinds is false, a missing map key is nil,
//! a list index out of range is an error (a negative one counts from the end), `/` divides
//! as floats, `&&` and `||` short-circuit and need booleans. Every failure is an error with
//! the position of the part that failed; nothing panics.

use std::cmp::Ordering;

use super::parse::{BinOp, Func, Kind, Node};
use super::value::Value;

/// What `result`, `#` and `now()` stand for.
#[derive(Clone, Copy)]
pub struct Scope<'v> {
    /// `result`.
    pub result: &'v Value,
    /// `#`, inside a predicate.
    pub pointer: Option<&'v Value>,
    /// `now()`, in seconds since the Unix epoch.
    pub now: f64,
}

/// An evaluation error: where, and why.
pub type EResult<T> = Result<T, (usize, String)>;

/// Longest list `a..b` may make.
const MAX_RANGE: f64 = 100_000.0;

fn num(v: &Value, pos: usize, what: &str) -> EResult<f64> {
    match v {
        Value::Number(n) => Ok(*n),
        Value::List(_) => Err((
            pos,
            format!("{what} needs a number, got a list (index it: result[0])"),
        )),
        other => Err((pos, format!("{what} needs a number, got {}", other.kind()))),
    }
}

fn boolean(v: &Value, pos: usize, what: &str) -> EResult<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err((
            pos,
            format!("{what} needs true or false, got {}", other.kind()),
        )),
    }
}

fn text<'v>(v: &'v Value, pos: usize, what: &str) -> EResult<&'v str> {
    match v {
        Value::String(s) => Ok(s),
        other => Err((pos, format!("{what} needs a string, got {}", other.kind()))),
    }
}

fn list<'v>(v: &'v Value, pos: usize, what: &str) -> EResult<&'v [Value]> {
    match v {
        Value::List(items) => Ok(items),
        other => Err((pos, format!("{what} needs a list, got {}", other.kind()))),
    }
}

/// A whole number usable as an index into `len` elements (negative counts from the end).
fn position(i: f64, len: usize, pos: usize) -> EResult<usize> {
    if i.fract() != 0.0 || !i.is_finite() {
        return Err((pos, format!("index {i} is not a whole number")));
    }
    let len_f = len as f64;
    let at = if i < 0.0 { len_f + i } else { i };
    if at < 0.0 || at >= len_f {
        return Err((
            pos,
            format!("index {i} is out of range for a list of {len} element(s)"),
        ));
    }
    // a whole number in 0..len
    Ok(at as usize)
}

/// Evaluates `n`.
pub fn eval(n: &Node, s: Scope<'_>) -> EResult<Value> {
    let pos = n.pos;
    Ok(match &n.kind {
        Kind::Lit(v) => v.clone(),
        Kind::Result => s.result.clone(),
        Kind::Pointer => s.pointer.cloned().unwrap_or(Value::Nil),
        Kind::List(items) => Value::List(
            items
                .iter()
                .map(|i| eval(i, s))
                .collect::<EResult<Vec<_>>>()?,
        ),
        Kind::Not(inner) => Value::Bool(!boolean(&eval(inner, s)?, pos, "`!`")?),
        Kind::Neg(inner) => match eval(inner, s)? {
            Value::Duration(d) => Value::Duration(-d),
            v => Value::Number(-num(&v, pos, "`-`")?),
        },
        Kind::Cond(c, yes, no) => {
            if boolean(&eval(c, s)?, c.pos, "`? :`")? {
                eval(yes, s)?
            } else {
                eval(no, s)?
            }
        }
        Kind::Bin(BinOp::And, l, r) => Value::Bool(
            boolean(&eval(l, s)?, l.pos, "`&&`")? && boolean(&eval(r, s)?, r.pos, "`&&`")?,
        ),
        Kind::Bin(BinOp::Or, l, r) => Value::Bool(
            boolean(&eval(l, s)?, l.pos, "`||`")? || boolean(&eval(r, s)?, r.pos, "`||`")?,
        ),
        Kind::Bin(BinOp::Coalesce, l, r) => match eval(l, s)? {
            Value::Nil => eval(r, s)?,
            v => v,
        },
        Kind::Bin(op, l, r) => binary(*op, eval(l, s)?, eval(r, s)?, pos)?,
        Kind::Member {
            target,
            key,
            optional,
        } => {
            let t = eval(target, s)?;
            let k = eval(key, s)?;
            member(t, &k, *optional, key.pos)?
        }
        Kind::Slice(target, from, to) => {
            let t = eval(target, s)?;
            let bound = |b: &Option<Box<Node>>, default: usize, len: usize| -> EResult<usize> {
                let Some(b) = b else { return Ok(default) };
                let i = num(&eval(b, s)?, b.pos, "a slice bound")?;
                if i.fract() != 0.0 || !i.is_finite() {
                    return Err((b.pos, format!("slice bound {i} is not a whole number")));
                }
                let at = if i < 0.0 { len as f64 + i } else { i };
                // clamped into 0..=len, so the cast is exact
                Ok(at.clamp(0.0, len as f64) as usize)
            };
            match t {
                Value::List(items) => {
                    let (a, b) = (
                        bound(from, 0, items.len())?,
                        bound(to, items.len(), items.len())?,
                    );
                    Value::List(items.get(a..b.max(a)).unwrap_or_default().to_vec())
                }
                Value::String(st) => {
                    let chars: Vec<char> = st.chars().collect();
                    let (a, b) = (
                        bound(from, 0, chars.len())?,
                        bound(to, chars.len(), chars.len())?,
                    );
                    Value::String(chars.get(a..b.max(a)).unwrap_or_default().iter().collect())
                }
                other => {
                    return Err((
                        pos,
                        format!(
                            "only a list or a string can be sliced, not {}",
                            other.kind()
                        ),
                    ));
                }
            }
        }
        Kind::Call(f, args) => call(*f, args, s, pos)?,
    })
}

fn member(t: Value, k: &Value, optional: bool, pos: usize) -> EResult<Value> {
    Ok(match (t, k) {
        (Value::Nil, _) if optional => Value::Nil,
        (Value::Map(mut m), Value::String(key)) => m.remove(key).unwrap_or(Value::Nil),
        (Value::List(items), Value::Number(i)) => {
            let at = position(*i, items.len(), pos)?;
            items.into_iter().nth(at).unwrap_or(Value::Nil)
        }
        (Value::String(st), Value::Number(i)) => {
            let chars: Vec<char> = st.chars().collect();
            Value::String(chars[position(*i, chars.len(), pos)?].to_string())
        }
        (Value::Nil, k) => {
            return Err((pos, format!("cannot read {k} of nil (use ?. to allow nil)")));
        }
        (t @ (Value::Map(_) | Value::List(_) | Value::String(_)), k) => {
            return Err((
                pos,
                format!("{} cannot be indexed by {}", t.kind(), k.kind()),
            ));
        }
        (t, _) => {
            return Err((
                pos,
                format!(
                    "only a list, a map or a string can be indexed, not {}",
                    t.kind()
                ),
            ));
        }
    })
}

fn order(a: &Value, b: &Value, pos: usize, sym: &str) -> EResult<Option<Ordering>> {
    match (a, b) {
        (Value::Number(x), Value::Number(y))
        | (Value::Time(x), Value::Time(y))
        | (Value::Duration(x), Value::Duration(y)) => Ok(x.partial_cmp(y)),
        (Value::String(x), Value::String(y)) => Ok(Some(x.cmp(y))),
        (Value::List(_), _) | (_, Value::List(_)) => Err((
            pos,
            format!("`{sym}` needs a number, got a list (index it: result[0])"),
        )),
        _ => Err((
            pos,
            format!("`{sym}` cannot compare {} with {}", a.kind(), b.kind()),
        )),
    }
}

fn binary(op: BinOp, a: Value, b: Value, pos: usize) -> EResult<Value> {
    let sym = op.symbol();
    let cmp = |want: fn(Ordering) -> bool| -> EResult<Value> {
        Ok(Value::Bool(order(&a, &b, pos, sym)?.is_some_and(want)))
    };
    Ok(match op {
        BinOp::Eq => Value::Bool(a.equals(&b)),
        BinOp::Ne => Value::Bool(!a.equals(&b)),
        BinOp::Lt => cmp(Ordering::is_lt)?,
        BinOp::Le => cmp(Ordering::is_le)?,
        BinOp::Gt => cmp(Ordering::is_gt)?,
        BinOp::Ge => cmp(Ordering::is_ge)?,
        BinOp::In | BinOp::NotIn => {
            let found = match &b {
                Value::List(items) => items.iter().any(|i| i.equals(&a)),
                Value::Map(m) => m.contains_key(text(&a, pos, "`in` a map")?),
                other => {
                    return Err((
                        pos,
                        format!("`{sym}` needs a list or a map, got {}", other.kind()),
                    ));
                }
            };
            Value::Bool(found == (op == BinOp::In))
        }
        BinOp::Contains => Value::Bool(text(&a, pos, sym)?.contains(text(&b, pos, sym)?)),
        BinOp::StartsWith => Value::Bool(text(&a, pos, sym)?.starts_with(text(&b, pos, sym)?)),
        BinOp::EndsWith => Value::Bool(text(&a, pos, sym)?.ends_with(text(&b, pos, sym)?)),
        BinOp::Matches => {
            let re =
                sluice_api::limits::compile_regex(text(&b, pos, sym)?).map_err(|e| (pos, e))?;
            Value::Bool(re.is_match(text(&a, pos, sym)?))
        }
        BinOp::Range => {
            let (x, y) = (num(&a, pos, sym)?, num(&b, pos, sym)?);
            if x.fract() != 0.0 || y.fract() != 0.0 || (y - x).is_nan() || y - x >= MAX_RANGE {
                return Err((
                    pos,
                    format!("`..` needs whole numbers at most {MAX_RANGE} apart"),
                ));
            }
            let mut out = Vec::new();
            let mut i = x;
            while i <= y {
                out.push(Value::Number(i));
                i += 1.0;
            }
            Value::List(out)
        }
        BinOp::Add => match (a, b) {
            (Value::String(x), Value::String(y)) => Value::String(x + &y),
            (Value::List(mut x), Value::List(y)) => {
                x.extend(y);
                Value::List(x)
            }
            (Value::Time(t), Value::Duration(d)) | (Value::Duration(d), Value::Time(t)) => {
                Value::Time(t + d)
            }
            (Value::Duration(x), Value::Duration(y)) => Value::Duration(x + y),
            (a, b) => Value::Number(num(&a, pos, sym)? + num(&b, pos, sym)?),
        },
        BinOp::Sub => match (a, b) {
            (Value::Time(t), Value::Duration(d)) => Value::Time(t - d),
            (Value::Time(x), Value::Time(y)) => Value::Duration(x - y),
            (Value::Duration(x), Value::Duration(y)) => Value::Duration(x - y),
            (a, b) => Value::Number(num(&a, pos, sym)? - num(&b, pos, sym)?),
        },
        BinOp::Mul => match (a, b) {
            (Value::Duration(d), Value::Number(k)) | (Value::Number(k), Value::Duration(d)) => {
                Value::Duration(d * k)
            }
            (a, b) => Value::Number(num(&a, pos, sym)? * num(&b, pos, sym)?),
        },
        BinOp::Div => Value::Number(num(&a, pos, sym)? / num(&b, pos, sym)?),
        BinOp::Rem => Value::Number(num(&a, pos, sym)? % num(&b, pos, sym)?),
        BinOp::Pow => Value::Number(num(&a, pos, sym)?.powf(num(&b, pos, sym)?)),
        // decided before both sides are evaluated
        BinOp::And | BinOp::Or | BinOp::Coalesce => Value::Nil,
    })
}

fn call(f: Func, args: &[Node], s: Scope<'_>, pos: usize) -> EResult<Value> {
    if f.takes_predicate() {
        return predicate(f, args, s, pos);
    }
    let vals = args
        .iter()
        .map(|a| eval(a, s))
        .collect::<EResult<Vec<_>>>()?;
    let one = vals.first().cloned().unwrap_or(Value::Nil);
    let at = args.first().map_or(pos, |a| a.pos);
    let name = f.name();
    Ok(match f {
        Func::IsNaN => Value::Bool(num(&one, at, name)?.is_nan()),
        Func::IsInf => Value::Bool(num(&one, at, name)?.is_infinite()),
        Func::IsNil => Value::Bool(one == Value::Nil),
        Func::Abs => Value::Number(num(&one, at, name)?.abs()),
        Func::Round => Value::Number(num(&one, at, name)?.round()),
        Func::Floor => Value::Number(num(&one, at, name)?.floor()),
        Func::Ceil => Value::Number(num(&one, at, name)?.ceil()),
        Func::Len => Value::Number(match &one {
            Value::List(items) => items.len(),
            Value::Map(m) => m.len(),
            Value::String(st) => st.chars().count(),
            other => {
                return Err((
                    at,
                    format!("len needs a list, a map or a string, got {}", other.kind()),
                ));
            }
        } as f64),
        Func::AsInt | Func::Int => match &one {
            Value::Number(n) => Value::Number(n.trunc()),
            Value::String(st) => Value::Number(
                st.trim()
                    .parse::<i64>()
                    .map_err(|_| (at, format!("{st:?} is not a whole number")))?
                    as f64,
            ),
            other => {
                return Err((
                    at,
                    format!("{name} needs a number or a string, got {}", other.kind()),
                ));
            }
        },
        Func::AsFloat | Func::Float => match &one {
            Value::Number(n) => Value::Number(*n),
            Value::String(st) => Value::Number(
                st.trim()
                    .parse::<f64>()
                    .map_err(|_| (at, format!("{st:?} is not a number")))?,
            ),
            other => {
                return Err((
                    at,
                    format!("{name} needs a number or a string, got {}", other.kind()),
                ));
            }
        },
        Func::String => match one {
            Value::String(st) => Value::String(st),
            other => Value::String(other.to_string()),
        },
        Func::Default => match one {
            Value::Nil => vals.get(1).cloned().unwrap_or(Value::Nil),
            v => v,
        },
        Func::Lower => Value::String(text(&one, at, name)?.to_lowercase()),
        Func::Upper => Value::String(text(&one, at, name)?.to_uppercase()),
        Func::Trim => Value::String(text(&one, at, name)?.trim().to_owned()),
        Func::Keys | Func::Values => match one {
            Value::Map(m) if f == Func::Keys => {
                Value::List(m.into_keys().map(Value::String).collect())
            }
            Value::Map(m) => Value::List(m.into_values().collect()),
            other => return Err((at, format!("{name} needs a map, got {}", other.kind()))),
        },
        Func::First => list(&one, at, name)?.first().cloned().unwrap_or(Value::Nil),
        Func::Last => list(&one, at, name)?.last().cloned().unwrap_or(Value::Nil),
        Func::Sum | Func::Mean | Func::Median => {
            let mut xs = list(&one, at, name)?
                .iter()
                .map(|v| num(v, at, name))
                .collect::<EResult<Vec<f64>>>()?;
            let n = xs.len() as f64;
            Value::Number(match f {
                Func::Sum => xs.iter().sum(),
                _ if xs.is_empty() => 0.0,
                Func::Mean => xs.iter().sum::<f64>() / n,
                _ => {
                    xs.sort_by(f64::total_cmp);
                    let mid = xs.len() / 2;
                    if xs.len() % 2 == 1 {
                        xs[mid]
                    } else {
                        (xs[mid - 1] + xs[mid]) / 2.0
                    }
                }
            })
        }
        Func::Max | Func::Min => {
            let items: Vec<Value> = match (&vals[..], &one) {
                ([_], Value::List(items)) => items.clone(),
                _ => vals.clone(),
            };
            let mut best: Option<Value> = None;
            for v in items {
                let better = match &best {
                    None => true,
                    Some(b) => {
                        let o = order(&v, b, at, name)?;
                        if f == Func::Max {
                            o == Some(Ordering::Greater)
                        } else {
                            o == Some(Ordering::Less)
                        }
                    }
                };
                if better {
                    best = Some(v);
                }
            }
            best.ok_or((at, format!("{name} of an empty list")))?
        }
        Func::Now => Value::Time(s.now),
        Func::Duration => {
            let t = text(&one, at, name)?;
            let d = crate::spec::duration::ArgoDuration::parse(t).map_err(|e| (at, e))?;
            Value::Duration(d.value.as_secs_f64())
        }
        // the predicates, evaluated above
        _ => Value::Nil,
    })
}

/// A function that takes a predicate, evaluated with `#` bound to each element.
fn predicate(f: Func, args: &[Node], s: Scope<'_>, pos: usize) -> EResult<Value> {
    let (Some(list_node), Some(body)) = (args.first(), args.get(1)) else {
        return Err((pos, format!("{} needs a list and a predicate", f.name())));
    };
    let target = eval(list_node, s)?;
    let items = list(&target, list_node.pos, f.name())?;
    let test = |item: &Value| -> EResult<bool> {
        let inner = Scope {
            pointer: Some(item),
            ..s
        };
        boolean(&eval(body, inner)?, body.pos, f.name())
    };
    Ok(match f {
        Func::All => {
            for i in items {
                if !test(i)? {
                    return Ok(Value::Bool(false));
                }
            }
            Value::Bool(true)
        }
        Func::Any | Func::None => {
            let mut found = false;
            for i in items {
                if test(i)? {
                    found = true;
                    break;
                }
            }
            Value::Bool(found == (f == Func::Any))
        }
        Func::One | Func::Count => {
            let mut n = 0usize;
            for i in items {
                n += usize::from(test(i)?);
            }
            if f == Func::One {
                Value::Bool(n == 1)
            } else {
                Value::Number(n as f64)
            }
        }
        Func::Filter => {
            let mut out = Vec::new();
            for i in items {
                if test(i)? {
                    out.push(i.clone());
                }
            }
            Value::List(out)
        }
        Func::Find | Func::FindIndex => {
            for (k, i) in items.iter().enumerate() {
                if test(i)? {
                    return Ok(if f == Func::Find {
                        i.clone()
                    } else {
                        Value::Number(k as f64)
                    });
                }
            }
            if f == Func::Find {
                Value::Nil
            } else {
                Value::Number(-1.0)
            }
        }
        _ => Value::List(
            items
                .iter()
                .map(|i| {
                    eval(
                        body,
                        Scope {
                            pointer: Some(i),
                            ..s
                        },
                    )
                })
                .collect::<EResult<Vec<_>>>()?,
        ),
    })
}

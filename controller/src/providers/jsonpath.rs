//! The `web` provider's `jsonPath`, in the Kubernetes JSONPath forms Argo Rollouts reads:
//! `{$.data.ok}`, `{.items[0].value}`, `{$.data['p99']}`, `{$.items[-1]}`, `{$.items[*].v}`,
//! `{$.items[1:3]}`, `{$..value}`, `{$.items[?(@.name == 'api')].v}`, `{$}`. Braces and the
//! leading `$` are optional. Like Argo, a measurement takes the first value the path finds.

use serde_json::Value as Json;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `.name` or `['name']`.
    Child(String),
    /// `..name`: every `name` at any depth.
    Descend(String),
    /// `.*` or `[*]`.
    Wildcard,
    /// `[n]`, negative from the end.
    Index(i64),
    /// `[a:b]`.
    Slice(Option<i64>, Option<i64>),
    /// `[?(@.a.b)]` or `[?(@.a.b OP literal)]`.
    Filter(Vec<String>, Option<(String, Json)>),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(Vec<Step>);

impl JsonPath {
    /// Parses a path; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let inner = match (t.strip_prefix('{'), t.ends_with('}')) {
            (Some(rest), true) => &rest[..rest.len() - 1],
            (None, false) => t,
            _ => return Err(format!("{text:?}: unbalanced braces")),
        };
        if inner.contains('{') || inner.contains('}') {
            return Err(format!("{text:?}: only one {{…}} expression is read"));
        }
        let mut rest = inner.trim();
        rest = rest.strip_prefix('$').unwrap_or(rest);
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("..") {
                let (name, after) = name(r);
                if name.is_empty() {
                    return Err(format!("{text:?}: a name is needed after `..`"));
                }
                steps.push(Step::Descend(name.to_owned()));
                rest = after;
            } else if let Some(r) = rest.strip_prefix('.') {
                if let Some(after) = r.strip_prefix('*') {
                    steps.push(Step::Wildcard);
                    rest = after;
                    continue;
                }
                let (name, after) = name(r);
                if !name.is_empty() {
                    steps.push(Step::Child(name.to_owned()));
                }
                rest = after;
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = bracket_end(r).ok_or_else(|| format!("{text:?}: `[` is not closed"))?;
                steps.push(bracket(&r[..end]).map_err(|e| format!("{text:?}: {e}"))?);
                rest = &r[end + 1..];
            } else {
                let (name, after) = name(rest);
                if name.is_empty() {
                    return Err(format!("{text:?}: unexpected {rest:?}"));
                }
                steps.push(Step::Child(name.to_owned()));
                rest = after;
            }
        }
        Ok(Self(steps))
    }

    /// Every value the path reaches in `root`, in order.
    pub fn find<'j>(&self, root: &'j Json) -> Vec<&'j Json> {
        let mut cur = vec![root];
        for step in &self.0 {
            let mut next = Vec::new();
            for node in cur {
                apply(step, node, &mut next);
            }
            cur = next;
        }
        cur
    }
}

/// A member name: up to the next `.` or `[`.
fn name(s: &str) -> (&str, &str) {
    let end = s.find(['.', '[']).unwrap_or(s.len());
    (s[..end].trim(), &s[end..])
}

/// Where the `]` closing a bracket is, quotes and parentheses considered.
fn bracket_end(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, ']') if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

fn bracket(inside: &str) -> Result<Step, String> {
    let s = inside.trim();
    if s == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(key) = unquote(s) {
        return Ok(Step::Child(key.to_owned()));
    }
    if let Some(f) = s.strip_prefix("?(").and_then(|r| r.strip_suffix(')')) {
        return filter(f);
    }
    let int = |t: &str| -> Result<Option<i64>, String> {
        let t = t.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse()
            .map(Some)
            .map_err(|_| format!("{t:?} is not an index"))
    };
    match s.split_once(':') {
        Some((a, b)) => Ok(Step::Slice(int(a)?, int(b)?)),
        None => int(s)?
            .map(Step::Index)
            .ok_or_else(|| "an empty `[]`".to_owned()),
    }
}

fn filter(f: &str) -> Result<Step, String> {
    const OPS: &[&str] = &["==", "!=", "<=", ">=", "<", ">"];
    let (lhs, op) = match OPS
        .iter()
        .find_map(|op| f.split_once(op).map(|(l, r)| (l, (op, r))))
    {
        Some((l, (op, r))) => {
            let lit = r.trim();
            let value = match unquote(lit) {
                Some(s) => Json::String(s.to_owned()),
                None => serde_json::from_str(lit)
                    .map_err(|_| format!("{lit:?} is not a literal in a filter"))?,
            };
            (l, Some(((*op).to_owned(), value)))
        }
        None => (f, None),
    };
    let path = lhs
        .trim()
        .strip_prefix('@')
        .ok_or_else(|| format!("a filter starts with `@`: {f:?}"))?;
    let names = path
        .split('.')
        .filter(|n| !n.is_empty())
        .map(|n| n.trim().to_owned())
        .collect();
    Ok(Step::Filter(names, op))
}

fn elements(node: &Json) -> Vec<&Json> {
    match node {
        Json::Array(items) => items.iter().collect(),
        Json::Object(map) => map.values().collect(),
        _ => Vec::new(),
    }
}

fn apply<'j>(step: &Step, node: &'j Json, out: &mut Vec<&'j Json>) {
    match step {
        Step::Child(k) => out.extend(node.get(k)),
        Step::Wildcard => out.extend(elements(node)),
        Step::Descend(k) => {
            out.extend(node.get(k));
            for child in elements(node) {
                apply(step, child, out);
            }
        }
        Step::Index(i) => {
            if let Json::Array(items) = node {
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let at = if *i < 0 { len + i } else { *i };
                out.extend(usize::try_from(at).ok().and_then(|a| items.get(a)));
            }
        }
        Step::Slice(a, b) => {
            if let Json::Array(items) = node {
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let clamp = |x: i64| {
                    usize::try_from((if x < 0 { len + x } else { x }).clamp(0, len)).unwrap_or(0)
                };
                let (from, to) = (clamp(a.unwrap_or(0)), clamp(b.unwrap_or(len)));
                out.extend(items.get(from..to.max(from)).unwrap_or_default());
            }
        }
        Step::Filter(path, op) => {
            for el in elements(node) {
                let mut v = Some(el);
                for n in path {
                    v = v.and_then(|x| x.get(n));
                }
                let keep = match (v, op) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(v), Some((op, lit))) => compare(v, op, lit),
                };
                if keep {
                    out.push(el);
                }
            }
        }
    }
}

fn compare(v: &Json, op: &str, lit: &Json) -> bool {
    use std::cmp::Ordering;
    let ord = match (v, lit) {
        (Json::Number(a), Json::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Json::String(a), Json::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        "==" => v == lit || ord == Some(Ordering::Equal),
        "!=" => v != lit && ord != Some(Ordering::Equal),
        "<" => ord == Some(Ordering::Less),
        "<=" => ord.is_some_and(Ordering::is_le),
        ">" => ord == Some(Ordering::Greater),
        _ => ord.is_some_and(Ordering::is_ge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first<'j>(j: &'j Json, p: &str) -> Option<&'j Json> {
        JsonPath::parse(p).unwrap().find(j).into_iter().next()
    }

    #[test]
    fn the_forms_argo_users_write_reach_into_answers() {
        let j = serde_json::json!({
            "data": {"ok": true, "p99": 0.2, "items": [{"name": "api", "v": 1}, {"name": "web", "v": 2}, {"name": "db", "v": 3}]},
            "status": "It worked!"
        });
        let cases: &[(&str, Json)] = &[
            ("{$.data.ok}", serde_json::json!(true)),
            ("{.data.ok}", serde_json::json!(true)),
            ("$.data.p99", serde_json::json!(0.2)),
            ("data.p99", serde_json::json!(0.2)),
            ("{$.data['p99']}", serde_json::json!(0.2)),
            ("{$[\"status\"]}", serde_json::json!("It worked!")),
            ("{$.data.items[0].v}", serde_json::json!(1)),
            ("{$.data.items[-1].v}", serde_json::json!(3)),
            ("{$.data.items[*].v}", serde_json::json!(1)),
            ("{$.data.items[1:].v}", serde_json::json!(2)),
            ("{$..v}", serde_json::json!(1)),
            ("{$.data.items[?(@.name == 'db')].v}", serde_json::json!(3)),
            ("{$.data.items[?(@.v > 1)].name}", serde_json::json!("web")),
        ];
        for (p, want) in cases {
            assert_eq!(first(&j, p), Some(want), "{p}");
        }
        assert_eq!(first(&j, "{$}"), Some(&j));
        assert_eq!(first(&j, "{$.data.missing}"), None);
        assert_eq!(first(&j, "{$.data.items[7]}"), None);
        let all = JsonPath::parse("{$.data.items[*].v}").unwrap();
        assert_eq!(all.find(&j).len(), 3);
    }

    #[test]
    fn malformed_paths_are_refused_with_the_reason() {
        for (p, why) in [
            ("{$.a", "unbalanced"),
            ("{$.a[0}", "not closed"),
            ("{$.a[x]}", "not an index"),
            ("{$.a}{$.b}", "only one"),
            ("{$.a[?(x == 1)]}", "starts with `@`"),
        ] {
            let e = JsonPath::parse(p).unwrap_err();
            assert!(e.contains(why), "{p}: {e}");
        }
    }
}

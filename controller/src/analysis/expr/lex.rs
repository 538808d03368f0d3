//! Splits a condition into tokens, each with its character position (0-based, in characters,
//! not bytes, so that a position points where a person counts).

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A number literal.
    Num(f64),
    /// A string literal, escapes resolved.
    Str(String),
    /// A name: `result`, a function, `and`, `not`, `in`…
    Ident(String),
    /// `#` (the element a predicate is looking at), or `#name`.
    Pointer(String),
    /// An operator or punctuation.
    Op(&'static str),
}

/// Operators, longest first so that `**` wins over `*` and `?.` over `?`.
const OPS: &[&str] = &[
    "&&", "||", "==", "!=", "<=", ">=", "**", "??", "?.", "..", "<", ">", "!", "+", "-", "*", "/",
    "%", "^", "?", ":", ".", "(", ")", "[", "]", "{", "}", ",",
];

/// The tokens of `src`, or the position and reason of the first that is not one.
pub fn lex(src: &str) -> Result<Vec<(Tok, usize)>, (usize, String)> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    while let Some(c) = at(i) {
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let mut text = String::new();
            while let Some(d) = at(i).filter(|d| d.is_ascii_digit() || *d == '_') {
                if d != '_' {
                    text.push(d);
                }
                i += 1;
            }
            // a fraction, but not the `..` of a range
            if at(i) == Some('.') && at(i + 1) != Some('.') {
                text.push('.');
                i += 1;
                while let Some(d) = at(i).filter(char::is_ascii_digit) {
                    text.push(d);
                    i += 1;
                }
            }
            if matches!(at(i), Some('e' | 'E')) {
                let mut j = i + 1;
                if matches!(at(j), Some('+' | '-')) {
                    j += 1;
                }
                if at(j).is_some_and(|d| d.is_ascii_digit()) {
                    text.extend(&chars[i..j]);
                    i = j;
                    while let Some(d) = at(i).filter(char::is_ascii_digit) {
                        text.push(d);
                        i += 1;
                    }
                }
            }
            let n: f64 = text
                .parse()
                .map_err(|_| (start, format!("`{text}` is not a number")))?;
            toks.push((Tok::Num(n), start));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            while at(i).is_some_and(|d| d.is_ascii_alphanumeric() || d == '_' || d == '$') {
                i += 1;
            }
            toks.push((Tok::Ident(chars[start..i].iter().collect()), start));
            continue;
        }
        if c == '#' {
            i += 1;
            while at(i).is_some_and(|d| d.is_ascii_alphanumeric() || d == '_') {
                i += 1;
            }
            toks.push((Tok::Pointer(chars[start + 1..i].iter().collect()), start));
            continue;
        }
        if matches!(c, '\'' | '"' | '`') {
            let (s, end) = string(&chars, i)?;
            toks.push((Tok::Str(s), start));
            i = end;
            continue;
        }
        let op = OPS
            .iter()
            .find(|op| op.chars().enumerate().all(|(k, oc)| at(i + k) == Some(oc)));
        match (op, c) {
            (Some(op), _) => {
                toks.push((Tok::Op(op), start));
                i += op.chars().count();
            }
            (None, '=') => return Err((start, "`=` is not an operator; use `==`".to_owned())),
            (None, '&') => return Err((start, "`&` is not an operator; use `&&`".to_owned())),
            (None, '|') => {
                return Err((start, "`|` is not an operator; use `||`".to_owned()));
            }
            (None, other) => return Err((start, format!("unexpected character `{other}`"))),
        }
    }
    Ok(toks)
}

/// A string literal starting at `start` (its quote): the text and the position after it.
/// Backquotes are raw; single and double quotes take `\\`, `\'`, `\"`, `\n`, `\t`, `\r`,
/// `\0` and `\uXXXX`.
fn string(chars: &[char], start: usize) -> Result<(String, usize), (usize, String)> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err((start, "the string is not closed".to_owned()));
        };
        i += 1;
        if c == quote {
            return Ok((out, i));
        }
        if c != '\\' || quote == '`' {
            out.push(c);
            continue;
        }
        let Some(&e) = chars.get(i) else {
            return Err((start, "the string is not closed".to_owned()));
        };
        i += 1;
        match e {
            '\\' | '\'' | '"' => out.push(e),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            'u' => {
                let hex: String = chars.iter().skip(i).take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or((i - 2, format!("`\\u{hex}` is not a character")))?;
                out.push(code);
                i += 4;
            }
            other => return Err((i - 2, format!("unknown escape `\\{other}`"))),
        }
    }
}

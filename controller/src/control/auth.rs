//! Who is calling the control API, and what they may do.
//!
//! Two credentials, both bearer tokens compared in constant time:
//! - the **operator token** (`tokenFile`/`tokenEnv`) commands rollouts and may do everything
//!   else (the CLI and the dashboard hold it);
//! - **proxy tokens** (`proxyTokensFile`: one `SCOPE TOKEN` line each) let a proxy poll for
//!   routes and report, as an id its scope covers and nothing else. A scope is a proxy id
//!   (`edge-1`) or an id prefix ending in `*` (`edge-*`, for replicas that share a Secret).
//!
//! With no credential configured at all, the API is open (loopback by default). Reads that
//! change nothing stay open either way; anything that touches the fleet or a rollout needs a
//! credential that covers it.

use sluice_api::FieldError;

/// The proxy ids a proxy token covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Exactly this id.
    Id(String),
    /// Every id starting with this.
    Prefix(String),
}

impl Scope {
    /// Whether `id` is covered.
    pub fn covers(&self, id: &str) -> bool {
        match self {
            Scope::Id(s) => s == id,
            Scope::Prefix(p) => id.starts_with(p.as_str()),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Id(s) => f.write_str(s),
            Scope::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// Who presented which credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator token (or an API with no credential configured).
    Operator,
    /// A proxy token, for these ids.
    Proxy(Scope),
    /// No valid credential.
    Anonymous,
}

impl Caller {
    /// Whether the caller may poll and report as proxy `id`.
    pub fn may_act_as(&self, id: &str) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Proxy(scope) => scope.covers(id),
            Caller::Anonymous => false,
        }
    }

    /// Whether any credential was presented.
    pub fn is_known(&self) -> bool {
        !matches!(self, Caller::Anonymous)
    }
}

/// The credentials the API accepts.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    operator: Option<String>,
    proxies: Vec<(Scope, String)>,
}

impl Credentials {
    /// The operator token and the proxy tokens.
    pub fn new(operator: Option<String>, proxies: Vec<(Scope, String)>) -> Self {
        Self { operator, proxies }
    }

    /// Whether no credential is configured (every caller is the operator).
    pub fn is_open(&self) -> bool {
        self.operator.is_none() && self.proxies.is_empty()
    }

    /// The caller a request's `Authorization: Bearer …` makes.
    pub fn identify(&self, headers: &http::HeaderMap) -> Caller {
        if self.is_open() {
            return Caller::Operator;
        }
        let presents = |t: &str| sluice_io::token::bearer_matches(headers, t);
        if self.operator.as_deref().is_some_and(presents) {
            return Caller::Operator;
        }
        self.proxies
            .iter()
            .find(|(_, t)| presents(t))
            .map_or(Caller::Anonymous, |(s, _)| Caller::Proxy(s.clone()))
    }
}

/// Reads a proxy tokens file: one `SCOPE TOKEN` a line, `#` comments and blank lines
/// skipped. Every problem is named with its line.
pub fn parse_proxy_tokens(text: &str) -> Result<Vec<(Scope, String)>, Vec<FieldError>> {
    let mut out: Vec<(Scope, String)> = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("line {}", i + 1);
        let mut words = line.split_whitespace();
        let (Some(scope), Some(token), None) = (words.next(), words.next(), words.next()) else {
            errors.push(FieldError::new(at, "expected `SCOPE TOKEN`"));
            continue;
        };
        let scope = match scope.strip_suffix('*') {
            Some(p) if p.contains('*') => {
                errors.push(FieldError::new(at, "`*` may only end a scope"));
                continue;
            }
            Some(p) => Scope::Prefix(p.to_owned()),
            None if scope.contains('*') => {
                errors.push(FieldError::new(at, "`*` may only end a scope"));
                continue;
            }
            None => Scope::Id(scope.to_owned()),
        };
        if out.iter().any(|(_, t)| t == token) {
            errors.push(FieldError::new(
                at,
                "this token is given to another scope already",
            ));
            continue;
        }
        out.push((scope, token.to_owned()));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(t: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        h
    }

    fn creds() -> Credentials {
        Credentials::new(
            Some("op-secret".into()),
            parse_proxy_tokens("# proxies\nedge-1 p1-secret\n\nedge-pool-* pool-secret\n").unwrap(),
        )
    }

    #[test]
    fn each_token_makes_its_caller() {
        let c = creds();
        assert_eq!(c.identify(&bearer("op-secret")), Caller::Operator);
        assert_eq!(
            c.identify(&bearer("p1-secret")),
            Caller::Proxy(Scope::Id("edge-1".into()))
        );
        assert_eq!(
            c.identify(&bearer("pool-secret")),
            Caller::Proxy(Scope::Prefix("edge-pool-".into()))
        );
        assert_eq!(c.identify(&bearer("nope")), Caller::Anonymous);
        assert_eq!(c.identify(&http::HeaderMap::new()), Caller::Anonymous);
    }

    #[test]
    fn a_proxy_token_acts_only_as_the_ids_it_covers() {
        let c = creds();
        let p1 = c.identify(&bearer("p1-secret"));
        assert!(p1.may_act_as("edge-1"));
        assert!(!p1.may_act_as("edge-2"));
        assert!(!p1.may_act_as("edge-10"), "an id is not a prefix");
        let pool = c.identify(&bearer("pool-secret"));
        assert!(pool.may_act_as("edge-pool-7f9c"));
        assert!(!pool.may_act_as("edge-1"));
        assert!(Caller::Operator.may_act_as("anything"));
        assert!(!Caller::Anonymous.may_act_as("edge-1"));
    }

    #[test]
    fn with_nothing_configured_everyone_is_the_operator() {
        let c = Credentials::default();
        assert!(c.is_open());
        assert_eq!(c.identify(&http::HeaderMap::new()), Caller::Operator);
    }

    #[test]
    fn bad_token_files_name_the_line() {
        let e = parse_proxy_tokens("a 1\nb\nc 1\nd* x y\ne*f 2\n*g 3\n").unwrap_err();
        let lines: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "line 2: expected `SCOPE TOKEN`",
                "line 3: this token is given to another scope already",
                "line 4: expected `SCOPE TOKEN`",
                "line 5: `*` may only end a scope",
                "line 6: `*` may only end a scope",
            ]
        );
    }
}

//! Bearer tokens: read once from a file or an environment variable (trimmed, never empty),
//! and checked in constant time.

use std::path::{Path, PathBuf};

use http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// The environment variable a client or proxy reads its token from when no file is given.
pub const TOKEN_ENV: &str = "SLUICE_TOKEN";

/// Why a token cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The file holds nothing but blanks.
    #[error("token file {} is empty", .0.display())]
    EmptyFile(PathBuf),
    /// The environment variable that must hold the token does not.
    #[error("environment variable {0} is unset or empty")]
    EmptyEnv(String),
}

/// Where a token comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A file, which must hold one.
    File(&'a Path),
    /// An environment variable, which must hold one.
    Env(&'a str),
    /// An environment variable, if it holds one (no token otherwise).
    EnvIfSet(&'a str),
}

impl<'a> Source<'a> {
    /// The source a setting names: its file when it gives one, else its environment variable
    /// (which must then hold a token), else none.
    pub fn configured(file: Option<&'a Path>, env: Option<&'a str>) -> Option<Self> {
        match (file, env) {
            (Some(f), _) => Some(Self::File(f)),
            (None, Some(var)) => Some(Self::Env(var)),
            (None, None) => None,
        }
    }
}

/// The token of the first source given, or `None` when there is none to read.
pub fn read(source: Option<Source<'_>>) -> Result<Option<String>, TokenError> {
    match source {
        None => Ok(None),
        Some(Source::File(path)) => {
            let t = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
                path: path.to_owned(),
                source,
            })?;
            match t.trim() {
                "" => Err(TokenError::EmptyFile(path.to_owned())),
                t => Ok(Some(t.to_owned())),
            }
        }
        Some(Source::Env(var)) => match env(var) {
            Some(t) => Ok(Some(t)),
            None => Err(TokenError::EmptyEnv(var.to_owned())),
        },
        Some(Source::EnvIfSet(var)) => Ok(env(var)),
    }
}

/// A file when one is given, else [`TOKEN_ENV`] if set: how clients and proxies find theirs.
pub fn file_or_env(file: Option<&Path>) -> Result<Option<String>, TokenError> {
    read(Some(match file {
        Some(f) => Source::File(f),
        None => Source::EnvIfSet(TOKEN_ENV),
    }))
}

fn env(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Whether the request presents `Authorization: Bearer TOKEN`, compared in constant time.
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_trimmed_and_an_empty_one_refused() {
        let dir = std::env::temp_dir().join(format!("sluice-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (good, blank) = (dir.join("good"), dir.join("blank"));
        std::fs::write(&good, "  s3cret\n").unwrap();
        std::fs::write(&blank, " \n").unwrap();
        assert_eq!(
            read(Some(Source::File(&good))).unwrap().as_deref(),
            Some("s3cret")
        );
        let e = read(Some(Source::File(&blank))).unwrap_err().to_string();
        assert!(e.ends_with("is empty"), "{e}");
        let e = read(Some(Source::File(&dir.join("none")))).unwrap_err();
        assert!(matches!(e, TokenError::Read { .. }), "{e}");
        assert_eq!(read(None).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_variable_is_an_error_only_where_one_is_required() {
        let var = "SLUICE_TOKEN_TEST_SURELY_UNSET";
        assert_eq!(read(Some(Source::EnvIfSet(var))).unwrap(), None);
        let e = read(Some(Source::Env(var))).unwrap_err().to_string();
        assert_eq!(e, format!("environment variable {var} is unset or empty"));
    }

    #[test]
    fn a_configured_file_wins_over_a_configured_variable() {
        let f = Path::new("/t");
        assert!(matches!(
            Source::configured(Some(f), Some("V")),
            Some(Source::File(_))
        ));
        assert!(matches!(
            Source::configured(None, Some("V")),
            Some(Source::Env("V"))
        ));
        assert!(Source::configured(None, None).is_none());
    }

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let mut h = HeaderMap::new();
        assert!(!bearer_matches(&h, "t0k"));
        h.insert(header::AUTHORIZATION, "Bearer t0k".parse().unwrap());
        assert!(bearer_matches(&h, "t0k"));
        assert!(!bearer_matches(&h, "t0"));
        assert!(!bearer_matches(&h, "t0kk"));
        h.insert(header::AUTHORIZATION, "Basic t0k".parse().unwrap());
        assert!(!bearer_matches(&h, "t0k"));
    }
}

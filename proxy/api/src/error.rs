//! The crate's one error: a list of problems, each with the field it is at.

use std::fmt;

/// A problem with one field of a config file, route table or API body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the problem is, e.g. `routes[1].weight`.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Everything that can go wrong here: the input is invalid, at these fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A config file, route table or message is invalid.
    #[error("{}", error_line(.0))]
    Invalid(Vec<FieldError>),
}

impl Error {
    /// One invalid field.
    pub fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(path, reason)])
    }

    /// The fields, each with its problem.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            Self::Invalid(f) => f,
        }
    }

    /// The fields, taken.
    pub fn into_fields(self) -> Vec<FieldError> {
        match self {
            Self::Invalid(f) => f,
        }
    }
}

/// Field errors as one line: `a: reason; b: reason`.
pub fn error_line(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_every_field() {
        let e = Error::Invalid(vec![
            FieldError::new("routes[0].weight", "120 exceeds total 100"),
            FieldError::new("backends[1].endpoints", "must not be empty"),
        ]);
        assert_eq!(
            e.to_string(),
            "routes[0].weight: 120 exceeds total 100; backends[1].endpoints: must not be empty"
        );
        assert_eq!(FieldError::new("", "broken").to_string(), "broken");
    }
}

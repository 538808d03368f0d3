//! `sluice lint`: checks every document of a file and reports each problem with its document,
//! field path and reason.

use std::fmt::Write as _;
use std::path::Path;

use crate::spec::{self, Document};

/// What linting one file found.
#[derive(Debug, Default)]
pub struct LintReport {
    /// One line per valid document.
    pub valid: Vec<String>,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl LintReport {
    /// Whether everything was valid.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The lines to print.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in self.valid.iter().chain(&self.problems) {
            let _ = writeln!(out, "{l}");
        }
        out
    }
}

/// Lints the text of a file called `name`.
pub fn lint_text(name: &str, text: &str) -> LintReport {
    let mut report = LintReport::default();
    match spec::parse_documents(text) {
        Err(e) => report.problems.push(format!("{name}: {e}")),
        Ok(docs) if docs.is_empty() => report.problems.push(format!("{name}: no documents")),
        Ok(docs) => {
            for (i, d) in docs.into_iter().enumerate() {
                match d {
                    Ok(doc) => {
                        let (kind, name_) = match &doc {
                            Document::Rollout(r) => ("Rollout".to_owned(), r.metadata.name.clone()),
                            Document::AnalysisTemplate(t) => {
                                (t.kind.clone(), t.metadata.name.clone())
                            }
                            Document::LocalRuntime(r) => {
                                ("LocalRuntime".to_owned(), r.metadata.name.clone())
                            }
                            Document::Other { kind, name, .. } => (kind.clone(), name.clone()),
                        };
                        report
                            .valid
                            .push(format!("{name}: document {} ({kind} {name_:?}): ok", i + 1));
                    }
                    Err(e) => {
                        for line in e.to_string().lines() {
                            report.problems.push(format!("{name}: {line}"));
                        }
                    }
                }
            }
        }
    }
    report
}

/// Lints a file.
pub fn lint_file(path: &Path) -> Result<LintReport, std::io::Error> {
    let text = std::fs::read_to_string(path)?;
    Ok(lint_text(&path.display().to_string(), &text))
}

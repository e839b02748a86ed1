//! A file polyauth reads that cannot be used: which file, which key, what
//! is wrong. Tenant, server and dialect files all report this way.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    pub file: String,
    pub key: String,
    pub problem: String,
}

impl FileError {
    pub fn new(
        file: impl fmt::Display,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_string(),
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}: `{}`: {}", self.file, self.key, self.problem)
        }
    }
}

//! Every dialect the gateway knows: the built-in ones, compiled into the
//! binary, then the files of `dialects_dir`, which may override a built-in
//! one by name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::Dialect;
use crate::file_error::FileError;

/// The built-in dialect files, compiled into the binary.
pub(super) const BUILTIN: &[(&str, &str)] = &[
    ("elyssa", include_str!("../../dialects/elyssa.toml")),
    ("oauth-form", include_str!("../../dialects/oauth-form.toml")),
    ("payhub", include_str!("../../dialects/payhub.toml")),
    ("pixyle", include_str!("../../dialects/pixyle.toml")),
    ("visualyze", include_str!("../../dialects/visualyze.toml")),
];

#[derive(Debug, Default)]
pub struct Dialects {
    by_name: HashMap<String, Arc<Dialect>>,
}

impl Dialects {
    pub fn load(dir: Option<&Path>) -> Result<Self, FileError> {
        let mut by_name = HashMap::new();
        for (name, text) in BUILTIN {
            let file = format!("dialects/{name}.toml (built-in)");
            let dialect = Dialect::from_toml(text, "built-in")
                .map_err(|(key, problem)| FileError::new(&file, key, problem))?;
            by_name.insert(dialect.name.clone(), Arc::new(dialect));
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                FileError::new(
                    dir.display(),
                    "dialects_dir",
                    format!("cannot read directory ({e})"),
                )
            })?;
            let mut paths: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let file = path.display().to_string();
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| FileError::new(&file, "", format!("cannot read ({e})")))?;
                let dialect = Dialect::from_toml(&text, &file)
                    .map_err(|(key, problem)| FileError::new(&file, key, problem))?;
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                if dialect.name != stem {
                    return Err(FileError::new(
                        &file,
                        "name",
                        format!("`{}` must match the file name `{stem}`", dialect.name),
                    ));
                }
                by_name.insert(dialect.name.clone(), Arc::new(dialect));
            }
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Dialect>> {
        self.by_name.get(name)
    }

    /// Names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

//! Ignore rules: the matchers of `.snapignore` (and `.gitignore` when asked) files in effect in a
//! directory, outermost first, and the command line's `--exclude` patterns.

use std::path::Path;
use std::sync::Arc;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::{Error, Filter};

/// Matchers in effect in a directory, outermost first, with the command line's separately.
#[derive(Clone, Default)]
pub(super) struct Rules {
    cli: Option<Arc<Gitignore>>,
    files: Vec<Arc<Gitignore>>,
}

impl Rules {
    pub(super) fn is_empty(&self) -> bool {
        self.cli.is_none() && self.files.is_empty()
    }

    /// Whether `path` is excluded: the command line first, then the innermost file that says
    /// anything about it (a `!pattern` re-includes).
    pub(super) fn excludes(&self, path: &Path, is_dir: bool) -> bool {
        let verdicts = self.cli.iter().chain(self.files.iter().rev());
        for m in verdicts {
            match m.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }

    /// These rules plus the ignore files found in `dir` (whose entry names are `names`).
    pub(super) fn enter<'a>(
        &self,
        dir: &Path,
        names: impl Iterator<Item = &'a str>,
        filter: &Filter,
    ) -> Result<Rules, Error> {
        let present: Vec<&str> = names
            .filter(|n| filter.ignore_files.iter().any(|f| f == n))
            .collect();
        if present.is_empty() {
            return Ok(self.clone());
        }
        let mut b = GitignoreBuilder::new(dir);
        // In the order given: a later file's patterns win (`.snapignore` over `.gitignore`).
        for f in filter
            .ignore_files
            .iter()
            .filter(|f| present.contains(&f.as_str()))
        {
            let path = dir.join(f);
            if let Some(e) = b.add(&path) {
                return Err(Error::BadIgnore {
                    path,
                    reason: e.to_string(),
                });
            }
        }
        let m = b.build().map_err(|e| Error::BadIgnore {
            path: dir.join(present[0]),
            reason: e.to_string(),
        })?;
        let mut out = self.clone();
        out.files.push(Arc::new(m));
        Ok(out)
    }
}

/// The rules in effect for a root at `source`: command-line excludes, and ignore files in
/// `filter.base` and every directory between it and the root.
pub(super) fn rules_for_root(source: &Path, filter: &Filter) -> Result<Rules, Error> {
    let mut rules = Rules::default();
    if !filter.excludes.is_empty() {
        let mut b = GitignoreBuilder::new(&filter.base);
        for pattern in &filter.excludes {
            b.add_line(None, pattern).map_err(|e| Error::BadExclude {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?;
        }
        let m = b.build().map_err(|e| Error::BadExclude {
            pattern: filter.excludes.join(" "),
            reason: e.to_string(),
        })?;
        rules.cli = Some(Arc::new(m));
    }
    if filter.ignore_files.is_empty() {
        return Ok(rules);
    }
    let Some(parent) = source.parent() else {
        return Ok(rules);
    };
    let Ok(rel) = parent.strip_prefix(&filter.base) else {
        return Ok(rules); // recorded from outside the store root: its own files only
    };
    let mut dir = filter.base.clone();
    let mut dirs = vec![dir.clone()];
    for c in rel.components() {
        dir.push(c);
        dirs.push(dir.clone());
    }
    for d in dirs {
        let names: Vec<String> = filter
            .ignore_files
            .iter()
            .filter(|f| d.join(f).is_file())
            .cloned()
            .collect();
        rules = rules.enter(&d, names.iter().map(String::as_str), filter)?;
    }
    Ok(rules)
}

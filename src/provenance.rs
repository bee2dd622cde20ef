//! Git provenance: where a snapshot came from, read with `gix`.
//!
//! Owns the questions snap asks of the git repository that contains a committed path: the
//! full HEAD commit, its branch (or none when detached), whether the work tree is dirty
//! (tracked changes, staged changes or untracked files), the `origin` URL with credentials
//! removed, HEAD's committer time, and the git tree id of declared input paths at HEAD. It
//! also judges freshness: how a recorded provenance compares with the repository now.
//!
//! Invariants: outside a repository (or on an unborn branch) there is no provenance and
//! nothing fails. Dirtiness covers the whole repository even when asked from a
//! subdirectory. Credentials never leave this module.
//!
//! This is the only module that uses `gix`. It never writes: not to the store, not to the
//! repository (the git index is not refreshed).

use std::path::{Path, PathBuf};

use crate::object::{GitProvenance, InputState, Provenance};
use crate::timestamp::Timestamp;

/// How far back `commits_ahead` looks.
pub const MAX_WALK: u64 = 10_000;

/// The root of the git work tree containing `path`, if any.
#[must_use]
pub fn worktree_root(path: &Path) -> Option<PathBuf> {
    let repo = gix::discover(path).ok()?;
    repo.workdir().and_then(|w| w.canonicalize().ok())
}

/// Git facts for the repository containing `path`; `None` outside git, in a bare
/// repository, or on an unborn branch. `inputs` are recorded relative to the work tree root.
///
/// # Errors
/// [`Error::Git`] if the repository cannot be read; [`Error::InputOutsideRepo`] if an input
/// is not inside the work tree.
pub fn collect(path: &Path, inputs: &[PathBuf]) -> Result<Option<Provenance>, Error> {
    let Some(repo) = discover(path) else {
        return Ok(None);
    };
    let Some(workdir) = repo.workdir().and_then(|w| w.canonicalize().ok()) else {
        return Ok(None);
    };
    let git = |source: Box<dyn std::error::Error + Send + Sync>| Error::Git {
        path: workdir.clone(),
        source,
    };
    let mut head = repo.head().map_err(|e| git(e.into()))?;
    let Some(commit_id) = head.id().map(gix::Id::detach) else {
        return Ok(None);
    };
    let branch = head
        .referent_name()
        .filter(|_| !head.is_detached())
        .map(|n| n.shorten().to_string());
    let commit = head.peel_to_commit().map_err(|e| git(e.into()))?;
    let time = commit.time().map_err(|e| git(e.into()))?;
    let remote = origin_url(&repo);
    let changed = changed_paths(&repo, &workdir)?;

    let mut input_states = Vec::with_capacity(inputs.len());
    if !inputs.is_empty() {
        let tree = commit.tree().map_err(|e| git(e.into()))?;
        for input in inputs {
            let rel = relative_to(&workdir, input)?;
            let id = if rel.is_empty() {
                Some(tree.id.to_string())
            } else {
                tree.lookup_entry_by_path(&rel)
                    .map_err(|e| git(e.into()))?
                    .map(|e| e.object_id().to_string())
            };
            input_states.push(InputState {
                dirty: changed.iter().any(|c| is_under(c, &rel)),
                path: rel,
                tree: id,
            });
        }
    }

    Ok(Some(Provenance {
        git: Some(GitProvenance {
            commit: commit_id.to_string(),
            branch,
            dirty: !changed.is_empty(),
            remote,
            time: Some(Timestamp(time.seconds).to_string()),
        }),
        inputs: input_states,
    }))
}

/// How a recorded provenance compares with the repository now.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Freshness {
    /// The current HEAD commit, if in a repository with commits.
    pub head: Option<String>,
    /// The commit the snapshot was built from, if recorded.
    pub built_from: Option<String>,
    /// How many first-parent commits HEAD is ahead of `built_from` (if it is an ancestor
    /// within `MAX_WALK` (10,000) commits).
    pub commits_ahead: Option<u64>,
    /// Whether the work tree is dirty now.
    pub dirty_now: bool,
    /// Recorded inputs whose tree at HEAD differs, or that are dirty now.
    pub inputs_changed: Vec<String>,
    /// The verdict.
    pub state: FreshState,
}

/// The freshness verdict.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FreshState {
    /// Built from HEAD (or from unchanged inputs) out of a clean work tree.
    Fresh,
    /// HEAD or the inputs moved since.
    Stale,
    /// Built from a dirty work tree; nothing else makes it stale, but its exact source is
    /// unknown.
    Dirty,
    /// No git provenance recorded, or no repository now.
    Unknown,
}

/// Compares `recorded` with the repository containing `path`.
///
/// # Errors
/// [`Error::Git`] if the repository cannot be read.
pub fn freshness(path: &Path, recorded: &Provenance) -> Result<Freshness, Error> {
    let unknown = |head: Option<String>| Freshness {
        head,
        built_from: recorded.git.as_ref().map(|g| g.commit.clone()),
        commits_ahead: None,
        dirty_now: false,
        inputs_changed: Vec::new(),
        state: FreshState::Unknown,
    };
    let Some(repo) = discover(path) else {
        return Ok(unknown(None));
    };
    let Some(workdir) = repo.workdir().and_then(|w| w.canonicalize().ok()) else {
        return Ok(unknown(None));
    };
    let git = |source: Box<dyn std::error::Error + Send + Sync>| Error::Git {
        path: workdir.clone(),
        source,
    };
    let head = repo.head().map_err(|e| git(e.into()))?;
    let head_id = head.id().map(gix::Id::detach);
    let Some(recorded_git) = &recorded.git else {
        return Ok(unknown(head_id.map(|h| h.to_string())));
    };
    let Some(head_id) = head_id else {
        return Ok(unknown(None));
    };
    let changed = changed_paths(&repo, &workdir)?;

    let built = gix::ObjectId::from_hex(recorded_git.commit.as_bytes()).ok();
    let commits_ahead = match built {
        Some(built) => count_ahead(&repo, head_id, built).map_err(git)?,
        None => None,
    };

    let mut inputs_changed = Vec::new();
    if !recorded.inputs.is_empty() {
        let tree = repo
            .find_commit(head_id)
            .and_then(|c| c.tree())
            .map_err(|e| git(e.into()))?;
        for input in &recorded.inputs {
            let now = if input.path.is_empty() {
                Some(tree.id.to_string())
            } else {
                tree.lookup_entry_by_path(&input.path)
                    .map_err(|e| git(e.into()))?
                    .map(|e| e.object_id().to_string())
            };
            let dirty = changed.iter().any(|c| is_under(c, &input.path));
            if now != input.tree || dirty {
                inputs_changed.push(input.path.clone());
            }
        }
    }

    let state = if recorded.inputs.is_empty() {
        if built != Some(head_id) {
            FreshState::Stale
        } else if recorded_git.dirty {
            FreshState::Dirty
        } else {
            FreshState::Fresh
        }
    } else if !inputs_changed.is_empty() {
        FreshState::Stale
    } else if recorded.inputs.iter().any(|i| i.dirty) {
        FreshState::Dirty
    } else {
        FreshState::Fresh
    };
    Ok(Freshness {
        head: Some(head_id.to_string()),
        built_from: Some(recorded_git.commit.clone()),
        commits_ahead,
        dirty_now: !changed.is_empty(),
        inputs_changed,
        state,
    })
}

/// The full ids of HEAD and its first-parent ancestors, newest first, at most `max` of them;
/// empty outside a repository or on an unborn branch. `snap pull --walk-back` tries them in
/// this order.
///
/// # Errors
/// [`Error::Git`] if the repository cannot be read.
pub fn first_parent_history(path: &Path, max: usize) -> Result<Vec<String>, Error> {
    let Some(repo) = discover(path) else {
        return Ok(Vec::new());
    };
    let git = |source: Box<dyn std::error::Error + Send + Sync>| Error::Git {
        path: repo.workdir().unwrap_or(path).to_owned(),
        source,
    };
    let head = repo.head().map_err(|e| git(e.into()))?;
    let Some(head_id) = head.id().map(gix::Id::detach) else {
        return Ok(Vec::new());
    };
    let walk = repo
        .rev_walk([head_id])
        .first_parent_only()
        .all()
        .map_err(|e| git(e.into()))?;
    let mut out = Vec::new();
    for info in walk.take(max) {
        out.push(info.map_err(|e| git(e.into()))?.id.to_string());
    }
    Ok(out)
}

fn discover(path: &Path) -> Option<gix::Repository> {
    let repo = gix::discover(path).ok()?;
    repo.workdir()?;
    Some(repo)
}

/// Walks first-parent history from `head` looking for `built`.
fn count_ahead(
    repo: &gix::Repository,
    head: gix::ObjectId,
    built: gix::ObjectId,
) -> Result<Option<u64>, Box<dyn std::error::Error + Send + Sync>> {
    let walk = repo.rev_walk([head]).first_parent_only().all()?;
    for (n, info) in walk.enumerate() {
        let n = n as u64;
        if n > MAX_WALK {
            break;
        }
        if info?.id == built {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// Repository-relative paths with tracked, staged or untracked changes (the whole
/// repository, wherever `repo` was discovered from).
fn changed_paths(repo: &gix::Repository, workdir: &Path) -> Result<Vec<String>, Error> {
    let git = |source: Box<dyn std::error::Error + Send + Sync>| Error::Git {
        path: workdir.to_owned(),
        source,
    };
    let iter = repo
        .status(gix::progress::Discard)
        .map_err(|e| git(e.into()))?
        .untracked_files(gix::status::UntrackedFiles::Files)
        .index_worktree_rewrites(None)
        .into_iter(Vec::<gix::bstr::BString>::new())
        .map_err(|e| git(e.into()))?;
    let mut out = Vec::new();
    for item in iter {
        let item = item.map_err(|e| git(e.into()))?;
        out.push(item.location().to_string());
    }
    Ok(out)
}

fn origin_url(repo: &gix::Repository) -> Option<String> {
    let remote = repo.try_find_remote("origin")?.ok()?;
    let mut url = remote.url(gix::remote::Direction::Fetch)?.clone();
    if matches!(url.scheme, gix::url::Scheme::Http | gix::url::Scheme::Https) {
        url.set_user(None);
    }
    url.set_password(None);
    Some(url.to_bstring().to_string())
}

/// `input` relative to `workdir`, `/`-separated ("" for the root itself).
fn relative_to(workdir: &Path, input: &Path) -> Result<String, Error> {
    let abs = input.canonicalize().map_err(|_| Error::InputOutsideRepo {
        path: input.to_owned(),
    })?;
    let rel = abs
        .strip_prefix(workdir)
        .map_err(|_| Error::InputOutsideRepo {
            path: input.to_owned(),
        })?;
    rel.components()
        .map(|c| c.as_os_str().to_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .map(|v| v.join("/"))
        .ok_or_else(|| Error::InputOutsideRepo {
            path: input.to_owned(),
        })
}

/// Whether repository path `changed` is `input` or lies below it.
fn is_under(changed: &str, input: &str) -> bool {
    input.is_empty()
        || changed == input
        || changed
            .strip_prefix(input)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Provenance errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository could not be read.
    #[error("cannot read the git repository at {}", path.display())]
    Git {
        /// The work tree.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `--inputs` named a path outside the git work tree (or one that does not exist).
    #[error("input {} is not inside the git work tree", path.display())]
    InputOutsideRepo {
        /// The path.
        path: PathBuf,
    },
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::InputOutsideRepo { .. } => K::InvalidInput,
            _ => K::Io,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;
    use std::process::Command;

    type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn git(dir: &Path, args: &str) -> Result<String> {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("git {args}"))
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Snap Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Snap Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .output()?;
        if !out.status.success() {
            return Err(format!("git {args}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// The repository built by fixtures/git/make_repo.sh.
    fn repo() -> Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/git/make_repo.sh");
        let status = Command::new("bash").arg(script).arg(dir.path()).status()?;
        assert!(status.success(), "make_repo.sh");
        Ok(dir)
    }

    #[test]
    fn outside_git_there_is_no_provenance() -> Result {
        let dir = tempfile::tempdir()?;
        assert_eq!(collect(dir.path(), &[])?, None);
        assert_eq!(worktree_root(dir.path()), None);
        let f = freshness(dir.path(), &Provenance::default())?;
        assert_eq!(f.state, FreshState::Unknown);
        Ok(())
    }

    #[test]
    fn a_clean_repository_gives_commit_branch_remote_and_time() -> Result {
        let dir = repo()?;
        let p = collect(&dir.path().join("src"), &[])?.ok_or("provenance")?;
        let g = p.git.ok_or("git")?;
        assert_eq!(g.commit, git(dir.path(), "rev-parse HEAD")?);
        assert_eq!(g.branch.as_deref(), Some("main"));
        assert!(!g.dirty);
        assert_eq!(
            g.remote.as_deref(),
            Some("https://example.com/acme/app.git"),
            "credentials stripped"
        );
        assert_eq!(g.time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            worktree_root(&dir.path().join("src")),
            Some(dir.path().canonicalize()?)
        );
        Ok(())
    }

    #[test]
    fn modified_and_untracked_files_make_it_dirty_even_from_another_directory() -> Result {
        let dir = repo()?;
        std::fs::write(dir.path().join("docs/guide.md"), "changed\n")?;
        let p = collect(&dir.path().join("src"), &[])?.ok_or("provenance")?;
        assert!(
            p.git.ok_or("git")?.dirty,
            "a change in docs/ seen from src/"
        );
        git(dir.path(), "checkout -q -- docs/guide.md")?;
        std::fs::write(dir.path().join("src/new.rs"), "new\n")?;
        assert!(
            collect(dir.path(), &[])?
                .ok_or("p")?
                .git
                .ok_or("git")?
                .dirty,
            "untracked file"
        );
        Ok(())
    }

    #[test]
    fn detached_head_has_no_branch() -> Result {
        let dir = repo()?;
        git(dir.path(), "checkout -q --detach HEAD~1")?;
        let g = collect(dir.path(), &[])?.ok_or("p")?.git.ok_or("git")?;
        assert_eq!(g.branch, None);
        assert_eq!(g.commit, git(dir.path(), "rev-parse HEAD")?);
        Ok(())
    }

    #[test]
    fn inputs_record_tree_ids_and_judge_freshness() -> Result {
        let dir = repo()?;
        let p = collect(dir.path(), &[dir.path().join("src")])?.ok_or("p")?;
        assert_eq!(p.inputs.len(), 1);
        assert_eq!(p.inputs[0].path, "src");
        assert_eq!(
            p.inputs[0].tree.as_deref(),
            Some(git(dir.path(), "rev-parse HEAD:src")?.as_str())
        );
        assert_eq!(freshness(dir.path(), &p)?.state, FreshState::Fresh);

        // A commit touching only docs/: still fresh by the inputs, though HEAD moved.
        std::fs::write(dir.path().join("docs/guide.md"), "more docs\n")?;
        git(dir.path(), "commit -qam docs")?;
        let f = freshness(dir.path(), &p)?;
        assert_eq!(f.state, FreshState::Fresh, "{f:?}");
        assert_eq!(f.commits_ahead, Some(1));

        // A commit touching src/: stale, and src is named.
        std::fs::write(dir.path().join("src/main.rs"), "fn main() { changed() }\n")?;
        git(dir.path(), "commit -qam src")?;
        let f = freshness(dir.path(), &p)?;
        assert_eq!(f.state, FreshState::Stale);
        assert_eq!(f.inputs_changed, ["src"]);
        assert_eq!(f.commits_ahead, Some(2));
        Ok(())
    }

    #[test]
    fn without_inputs_a_new_commit_makes_it_stale_and_dirty_builds_are_marked() -> Result {
        let dir = repo()?;
        let p = collect(dir.path(), &[])?.ok_or("p")?;
        assert_eq!(freshness(dir.path(), &p)?.state, FreshState::Fresh);
        std::fs::write(dir.path().join("docs/guide.md"), "x\n")?;
        let dirty = collect(dir.path(), &[])?.ok_or("p")?;
        assert_eq!(freshness(dir.path(), &dirty)?.state, FreshState::Dirty);
        git(dir.path(), "commit -qam more")?;
        let f = freshness(dir.path(), &p)?;
        assert_eq!((f.state, f.commits_ahead), (FreshState::Stale, Some(1)));
        Ok(())
    }

    #[test]
    fn an_input_outside_the_work_tree_is_refused() -> Result {
        let dir = repo()?;
        let other = tempfile::tempdir()?;
        assert!(matches!(
            collect(dir.path(), &[other.path().to_owned()]),
            Err(Error::InputOutsideRepo { .. })
        ));
        Ok(())
    }

    #[test]
    fn is_under_matches_whole_components() {
        assert!(is_under("src/a.rs", "src"));
        assert!(is_under("src", "src"));
        assert!(!is_under("srcx/a.rs", "src"));
        assert!(is_under("anything", ""));
    }
}

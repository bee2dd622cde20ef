//! The property of issue 13: for generated hostile container images and ORAS artifacts,
//! restoring into a destination — missing, non-empty with `--force`, the store root with
//! `--force`, a clone holding only `.store` — never changes a byte outside it, never touches
//! `.store` or `.git` (inside it or not), never removes what the destination held, and leaves
//! `snap fsck` clean with every ref and reflog intact. A refused restore changes nothing at
//! all.
//!
//! What is generated: whiteouts of ``, `.`, `..`, `.store`, `.git` and of real entries, opaque
//! whiteouts at every depth, absolute and `..` paths, symlinks pointing out of the destination
//! and then written, removed and hard-linked through, hard links out of it and into `.store`
//! and `.git`, duplicate entries of different kinds, FIFOs, reserved names in every spelling,
//! and titles into `.store` and `.git`, clashing or not. Every escape aims into the sandbox,
//! so a bug shows as a changed listing, never as damage elsewhere.
//!
//! Seeded (xorshift64*): the seed is printed; `SNAP_HOSTILE_SEED` replays a run and
//! `SNAP_HOSTILE_CASES` scales it (`bench/crash.sh` runs thousands). Library calls, not the
//! CLI, keep a case to a few milliseconds.
#![allow(clippy::disallowed_methods)] // the sandbox is written directly

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use snap::ops::{ImportOptions, RestoreOptions};
use snap::store::Store;

use crate::harness::{Env, Result};
use crate::layout::{self, Member, tar_layer};
use crate::support::Rng;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Names a layer path is made of: ordinary, reserved in some spelling, or hostile.
const NAMES: &[&str] = &[
    "a", "b", "dir", "f.txt", "l", "dest", "keep.txt", "...", ".wh", "x y",
];
const RESERVED: &[&str] = &[
    ".git",
    ".GIT",
    ".store",
    ".Store.",
    "git~1",
    "STORE~1",
    ".g\u{200c}it",
    ".store::$DATA",
];
const HOSTILE: &[&str] = &["..", ".", ""];

/// The generator's state for one artifact: the sandbox's absolute `outside` directory (where
/// every escape aims) and the paths written so far (to write through, link to, white out).
struct Gen<'a> {
    rng: &'a mut Rng,
    outside: String,
    written: Vec<String>,
    symlinks: Vec<String>,
    /// How often (in percent) a path, name, link or whiteout is an escape that refuses the
    /// whole artifact; reserved names, duplicates and links out (not followed) come anyway.
    hostility: usize,
}

impl Gen<'_> {
    fn hostile(&mut self) -> bool {
        self.rng.chance(self.hostility)
    }

    fn name(&mut self) -> String {
        if self.rng.chance(12) {
            (*self.rng.pick(RESERVED)).to_owned()
        } else if self.hostile() {
            (*self.rng.pick(HOSTILE)).to_owned()
        } else {
            (*self.rng.pick(NAMES)).to_owned()
        }
    }

    /// A path: usually relative names, sometimes below a symlink written before, sometimes
    /// absolute or climbing out, sometimes `./`-prefixed or with a trailing `/`.
    fn path(&mut self) -> String {
        let escape = if self.hostile() {
            self.rng.below(4)
        } else {
            4 + self.rng.below(8)
        };
        let base = match escape {
            0 if !self.symlinks.is_empty() => {
                let l = self.rng.pick(&self.symlinks).clone();
                format!("{l}/{}", self.name())
            }
            1 => {
                let name = self.name();
                format!("{}/{name}", self.outside)
            }
            2 => format!("../{}", self.name()),
            3 => format!("../../outside/{}", self.name()),
            4 if !self.written.is_empty() => {
                let w = self.rng.pick(&self.written).clone();
                format!("{w}/{}", self.name())
            }
            _ => {
                let depth = 1 + self.rng.below(3);
                (0..depth)
                    .map(|_| self.name())
                    .collect::<Vec<_>>()
                    .join("/")
            }
        };
        match self.rng.below(10) {
            0 => format!("./{base}"),
            1 => format!("{base}/"),
            _ => base,
        }
    }

    /// A symlink target: out of the destination (relative or absolute), or inside it.
    fn link_target(&mut self) -> String {
        match self.rng.below(6) {
            0 => self.outside.clone(),
            1 => format!("{}/secret.txt", self.outside),
            2 => "../../outside".to_owned(),
            3 => "..".to_owned(),
            4 => ".store".to_owned(),
            _ => self.name(),
        }
    }

    /// A hard-link target: something written before, something out of the destination, or
    /// the store and `.git`.
    fn link_source(&mut self) -> String {
        let pick = if self.hostile() {
            self.rng.below(6)
        } else {
            [0, 3, 4][self.rng.below(3)]
        };
        match pick {
            0 if !self.written.is_empty() => self.rng.pick(&self.written).clone(),
            0 | 1 => format!("{}/secret.txt", self.outside),
            2 => "../outside/secret.txt".to_owned(),
            3 => ".store/format".to_owned(),
            4 => ".git/HEAD".to_owned(),
            _ if !self.symlinks.is_empty() => {
                format!("{}/secret.txt", self.rng.pick(&self.symlinks))
            }
            _ => self.path(),
        }
    }

    fn member(&mut self) -> Member {
        match self.rng.below(16) {
            0..=4 => {
                let p = self.path();
                self.written.push(p.trim_end_matches('/').to_owned());
                Member::File(p, format!("data {}\n", self.rng.next()).into_bytes())
            }
            5 | 6 => {
                let p = self.path();
                self.written.push(p.trim_end_matches('/').to_owned());
                Member::Dir(p)
            }
            7 | 8 => {
                let p = self.path();
                self.symlinks.push(p.trim_end_matches('/').to_owned());
                Member::Symlink(p, self.link_target())
            }
            9 => Member::Hardlink(self.path(), self.link_source()),
            10 | 11 => {
                // A whiteout of something written before, or of a dot or reserved name.
                let dir = if self.rng.chance(50) {
                    String::new()
                } else {
                    format!("{}/", self.path().trim_end_matches('/'))
                };
                let victim = match self.rng.below(4) {
                    0 if self.hostile() => (*self.rng.pick(&["", ".", ".."])).to_owned(),
                    0 => (*self.rng.pick(&[".store", ".git", ".GIT", "STORE~1"])).to_owned(),
                    1 if !self.written.is_empty() => self
                        .rng
                        .pick(&self.written)
                        .rsplit('/')
                        .next()
                        .unwrap_or("a")
                        .to_owned(),
                    _ => self.name(),
                };
                Member::empty(&format!("{dir}.wh.{victim}"))
            }
            12 => {
                let dir = match self.rng.below(3) {
                    0 => String::new(),
                    1 if !self.symlinks.is_empty() && self.hostile() => {
                        format!("{}/", self.rng.pick(&self.symlinks))
                    }
                    _ => format!("{}/", self.path().trim_end_matches('/')),
                };
                Member::empty(&format!("{dir}.wh..wh..opq"))
            }
            13 => Member::Fifo(self.path()),
            _ => {
                // A duplicate of an earlier path, as another kind.
                let p = if self.written.is_empty() {
                    self.path()
                } else {
                    self.rng.pick(&self.written).clone()
                };
                if self.rng.chance(50) {
                    Member::Dir(p)
                } else {
                    Member::File(p, b"duplicate\n".to_vec())
                }
            }
        }
    }

    fn image(&mut self) -> Result<layout::Artifact> {
        let mut layers = Vec::new();
        for _ in 0..=self.rng.below(3) {
            let members: Vec<Member> = (0..=self.rng.below(8)).map(|_| self.member()).collect();
            layers.push(tar_layer(&members)?);
        }
        Ok(layout::image(&layers))
    }

    fn artifact(&mut self) -> layout::Artifact {
        let files: Vec<(String, Vec<u8>)> = (0..=self.rng.below(3))
            .map(|_| {
                let title = match self.rng.below(12) {
                    0 => format!("{}/{}", self.rng.pick(RESERVED), self.name()),
                    1 => format!(".store/refs/heads/{}", self.name()),
                    2 => ".git/hooks/post-checkout".to_owned(),
                    _ => self.path(),
                };
                (title, format!("title {}\n", self.rng.next()).into_bytes())
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(t, b)| (t.as_str(), b.as_slice()))
            .collect();
        layout::oras(&refs)
    }
}

/// One entry of a listing: type, mode, size, link count, symlink target, content digest.
type Listing = BTreeMap<PathBuf, String>;

fn list(root: &Path) -> Result<Listing> {
    let mut out = Listing::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let path = e?.path();
            let m = std::fs::symlink_metadata(&path)?;
            let rel = path.strip_prefix(root)?.to_owned();
            let what = if m.file_type().is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&path)?.display())
            } else if m.is_dir() {
                stack.push(path.clone());
                format!("dir {:o}", m.permissions().mode() & 0o7777)
            } else if m.is_file() {
                format!(
                    "file {:o} {} links {} {}",
                    m.permissions().mode() & 0o7777,
                    m.len(),
                    m.nlink(),
                    snap::Digest::of(&std::fs::read(&path)?)
                )
            } else {
                format!("other {:o}", m.mode())
            };
            out.insert(rel, what);
        }
    }
    Ok(out)
}

/// Where a case restores.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// `root/new`, missing (staged beside it).
    Missing,
    /// `root/dest`, holding files, a symlink out and a directory, with `--force`.
    Force,
    /// `root` itself, the store root holding `.store`, `.git` and `dest`, with `--force`.
    StoreRoot,
    /// `clone`, holding only its `.store` (its own store).
    Clone,
}

struct Sandbox {
    dir: PathBuf,
    root_store: Store,
    clone_store: Store,
}

impl Sandbox {
    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Puts `root/dest` (and `root`, `clone`) back as they were before any case.
    fn reset(&self) -> Result {
        let root = self.root();
        for e in std::fs::read_dir(&root)? {
            let p = e?.path();
            let name = p.file_name().ok_or("name")?;
            if name != ".store" && name != ".git" {
                remove(&p)?;
            }
        }
        let dest = root.join("dest");
        std::fs::create_dir_all(dest.join("dir/sub"))?;
        std::fs::write(dest.join("keep.txt"), "mine\n")?;
        std::fs::write(dest.join("dir/inner.txt"), "mine too\n")?;
        std::fs::write(dest.join("dir/sub/deep.txt"), "deep\n")?;
        std::fs::create_dir_all(dest.join("empty"))?;
        std::os::unix::fs::symlink("../../outside", dest.join("l"))?;
        std::os::unix::fs::symlink(self.dir.join("outside"), dest.join("abs"))?;
        for e in std::fs::read_dir(self.dir.join("clone"))? {
            let p = e?.path();
            if p.file_name().is_some_and(|n| n != ".store") {
                remove(&p)?;
            }
        }
        Ok(())
    }
}

fn remove(p: &Path) -> Result {
    if std::fs::symlink_metadata(p)?.is_dir() {
        std::fs::remove_dir_all(p)?;
    } else {
        std::fs::remove_file(p)?;
    }
    Ok(())
}

fn setup(env: &Env) -> Result<Sandbox> {
    let dir = env.join("sandbox");
    let outside = dir.join("outside");
    std::fs::create_dir_all(outside.join("sub"))?;
    std::fs::write(outside.join("secret.txt"), "outside DEST\n")?;
    std::fs::write(outside.join("sub/more.txt"), "also outside\n")?;
    std::os::unix::fs::symlink("secret.txt", outside.join("link"))?;
    let root = dir.join("root");
    std::fs::create_dir_all(root.join(".git/hooks"))?;
    std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n")?;
    std::fs::write(root.join(".git/config"), "[core]\n")?;
    std::fs::create_dir_all(dir.join("clone"))?;
    // Each store holds a snap snapshot under a ref with a reflog: what must stay intact.
    env.write("work/a.txt", "a\n")?;
    env.write("work/sub/b.txt", "b\n")?;
    for store in ["sandbox/root/.store", "sandbox/clone/.store"] {
        env.ok(&["--store", store, "init"])?;
        env.ok(&["--store", store, "commit", "work", "-m", "kept"])?;
        env.ok(&["--store", store, "commit", "work", "--ref", "other"])?;
    }
    let sandbox = Sandbox {
        root_store: Store::open(&root.join(".store"))?,
        clone_store: Store::open(&dir.join("clone/.store"))?,
        dir,
    };
    sandbox.reset()?;
    Ok(sandbox)
}

/// What must not change: everything but `dest`, plus `dest`'s `.store` and `.git`.
fn outside_of(all: &Listing, dest: &Path) -> Listing {
    all.iter()
        .filter(|(p, _)| {
            !p.starts_with(dest)
                || p.starts_with(dest.join(".store"))
                || p.starts_with(dest.join(".git"))
        })
        .map(|(p, w)| (p.clone(), w.clone()))
        .collect()
}

/// Cases per sandbox (and between two `fsck` runs).
const BATCH: u64 = 50;

#[test]
fn hostile_images_and_artifacts_never_escape_or_touch_the_store() -> Result {
    let seed = env_u64("SNAP_HOSTILE_SEED").unwrap_or(0x1351_3e57_0c0f_fee1) | 1;
    let cases = env_u64("SNAP_HOSTILE_CASES").unwrap_or(500);
    eprintln!("hostile_property: SNAP_HOSTILE_SEED={seed} SNAP_HOSTILE_CASES={cases}");
    let mut rng = Rng::seeded(seed);
    let (mut refused, mut restored, mut skipped) = (0u64, 0u64, 0u64);
    let mut sandbox = None;
    for case in 0..cases {
        // A fresh sandbox every BATCH cases: the stores grow with each import, and listing
        // them before and after every restore would make a long run quadratic. Durability is
        // not what this checks: in memory (when there is a tmpfs) the syncs cost nothing.
        if case % BATCH == 0 {
            drop(sandbox.take());
            let env = Env::in_memory()?;
            let sb = setup(&env)?;
            sandbox = Some((env, sb));
        }
        let (env, sb) = sandbox.as_ref().ok_or("a sandbox was set up above")?;
        let outside = sb.dir.join("outside").display().to_string();
        let hostility = *rng.pick(&[0, 2, 5, 15]);
        let mut g = Gen {
            rng: &mut rng,
            outside: outside.clone(),
            written: Vec::new(),
            symlinks: Vec::new(),
            hostility,
        };
        let artifact = if g.rng.chance(70) {
            g.image()?
        } else {
            g.artifact()
        };
        let target = *rng.pick(&[
            Target::Missing,
            Target::Force,
            Target::StoreRoot,
            Target::Clone,
        ]);
        let (store, dest, force) = match target {
            Target::Missing => (&sb.root_store, PathBuf::from("root/new"), false),
            Target::Force => (&sb.root_store, PathBuf::from("root/dest"), true),
            Target::StoreRoot => (&sb.root_store, PathBuf::from("root"), true),
            Target::Clone => (&sb.clone_store, PathBuf::from("clone"), false),
        };
        let layout_dir = env.join(&format!("layouts/{case}"));
        layout::write(&layout_dir, &artifact, None)?;
        snap::ops::import(
            store,
            &ImportOptions {
                path: layout_dir.clone(),
                ..ImportOptions::default()
            },
        )?;
        let digest = snap::Digest::of(&artifact.manifest).to_string();
        let before = list(&sb.dir)?;
        let result = snap::ops::restore(
            store,
            &RestoreOptions {
                rev: digest.clone(),
                dest: sb.dir.join(&dest),
                force,
                paths: Vec::new(),
            },
            &snap::ops::NoProgress,
        );
        let after = list(&sb.dir)?;
        let replay = format!(
            "case {case} ({target:?}, {digest}); replay with SNAP_HOSTILE_SEED={seed}; layout in {}",
            layout_dir.display()
        );
        match &result {
            Err(e) => {
                refused += 1;
                let kind = e.kind();
                assert_eq!(
                    kind,
                    snap::ops::ErrorKind::InvalidInput,
                    "{replay}: refused for the wrong reason: {e}"
                );
                assert!(
                    before == after,
                    "{replay}: a refused restore changed something ({e}):\n{}",
                    diff(&before, &after)
                );
            }
            Ok(out) => {
                restored += 1;
                skipped += out.stats.skipped;
                let (b, a) = (outside_of(&before, &dest), outside_of(&after, &dest));
                assert!(
                    b == a,
                    "{replay}: changed something outside DEST or in .store/.git:\n{}",
                    diff(&b, &a)
                );
                let lost: Vec<_> = before
                    .keys()
                    .filter(|p| p.starts_with(&dest) && !after.contains_key(*p))
                    .collect();
                assert!(
                    lost.is_empty(),
                    "{replay}: removed what DEST held: {lost:?}"
                );
            }
        }
        std::fs::remove_dir_all(&layout_dir)?;
        if case % BATCH == BATCH - 1 || case + 1 == cases {
            for s in [&sb.root_store, &sb.clone_store] {
                let r = snap::ops::fsck(s)?;
                assert!(
                    r.is_clean(),
                    "after case {case}, seed {seed}: {:?}",
                    r.problems
                );
            }
        }
        sb.reset()?;
    }
    eprintln!(
        "hostile_property: {cases} cases, {restored} restored ({skipped} entries skipped), {refused} refused"
    );
    assert!(
        restored > 0 && refused > 0,
        "the generator covers both outcomes"
    );
    Ok(())
}

fn diff(before: &Listing, after: &Listing) -> String {
    let mut out = Vec::new();
    for (p, w) in before {
        match after.get(p) {
            None => out.push(format!("  removed {}: {w}", p.display())),
            Some(a) if a != w => out.push(format!("  changed {}: {w} -> {a}", p.display())),
            _ => {}
        }
    }
    for (p, w) in after {
        if !before.contains_key(p) {
            out.push(format!("  added {}: {w}", p.display()));
        }
    }
    out.join("\n")
}

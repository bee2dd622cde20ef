//! The layering rule of contributing/architecture.md, checked mechanically: each library
//! module may use only the modules below it, `gix` appears only in provenance.rs, and the
//! CLI never touches store internals.

use std::path::{Path, PathBuf};

/// Module → crate-internal modules it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("digest", &[]),
    ("error", &[]),
    ("progress", &[]),
    ("timestamp", &[]),
    ("fs", &[]),
    ("graph", &[]),
    ("interrupt", &[]),
    ("lock", &["fs"]),
    ("object", &["digest", "timestamp"]),
    ("pack", &["digest"]),
    ("oci", &["digest", "error", "fs", "object", "pack"]),
    (
        "store",
        &[
            "digest",
            "error",
            "fs",
            "lock",
            "object",
            "pack",
            "timestamp",
        ],
    ),
    ("snapshot", &["digest", "error", "object", "oci", "store"]),
    ("rev", &["digest", "error", "object", "snapshot", "store"]),
    ("provenance", &["error", "object", "timestamp"]),
    (
        "worktree",
        &[
            "digest", "error", "fs", "object", "oci", "pack", "progress", "snapshot", "store",
        ],
    ),
    (
        "diff",
        &[
            "digest", "error", "object", "rev", "snapshot", "store", "worktree",
        ],
    ),
    (
        "registry",
        &["digest", "error", "interrupt", "oci", "timestamp"],
    ),
    ("signature", &["digest", "error", "timestamp"]),
    ("config", &["error", "lock", "registry", "store"]),
];

const MODULES: &[&str] = &[
    "digest",
    "error",
    "progress",
    "timestamp",
    "fs",
    "graph",
    "interrupt",
    "lock",
    "object",
    "pack",
    "oci",
    "store",
    "snapshot",
    "rev",
    "provenance",
    "worktree",
    "diff",
    "registry",
    "signature",
    "config",
    "ops",
];

fn files_of(module: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        out.push(file);
    }
    let mut stack = vec![src.join(module)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The crate-internal modules a file names as `crate::<module>`, outside its unit tests: a
/// test module may build its fixtures with the whole library (as an integration test would),
/// the code it tests may not.
fn uses(text: &str) -> Vec<String> {
    let text = text.find("\nmod tests {").map_or(text, |i| &text[..i]);
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if MODULES.contains(&name.as_str()) {
            out.push(name);
        }
    }
    // `use crate::{a, b}` groups.
    for (i, _) in text.match_indices("crate::{") {
        let rest = &text[i + "crate::{".len()..];
        let group = &rest[..rest.find('}').unwrap_or(0)];
        for part in group.split(',') {
            let name = part.trim().split("::").next().unwrap_or("").trim();
            if MODULES.contains(&name) {
                out.push(name.to_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn library_modules_use_only_lower_layers() {
    let mut violations = Vec::new();
    for (module, allowed) in ALLOWED {
        for file in files_of(module) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for used in uses(&text) {
                if used != *module && !allowed.contains(&used.as_str()) {
                    violations.push(format!(
                        "{} uses crate::{used}, but `{module}` may only use {allowed:?}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering rule broken:\n{}",
        violations.join("\n")
    );
}

// issue 15: `registry` was missing from both tables, so its imports were never checked. Every
// module `lib.rs` declares must be in them, and the table itself must have no cycle (every
// arrow the code may draw is in it, so the code then has none either).
#[test]
fn every_module_is_checked_and_the_table_has_no_cycle() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .unwrap_or_default();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
        })
        .map(|m| m.trim_end_matches(';'))
        .collect();
    assert!(
        declared.len() > 10,
        "lib.rs declares its modules: {declared:?}"
    );
    for m in &declared {
        assert!(MODULES.contains(m), "`{m}` is not in MODULES");
        assert!(
            *m == "ops" || ALLOWED.iter().any(|(name, _)| name == m),
            "`{m}` has no row in ALLOWED"
        );
    }
    // Depth-first search for a cycle among the allowed arrows.
    fn visit<'a>(m: &'a str, path: &mut Vec<&'a str>, done: &mut Vec<&'a str>) {
        if done.contains(&m) {
            return;
        }
        assert!(!path.contains(&m), "cycle in ALLOWED: {path:?} -> {m}");
        path.push(m);
        for (_, deps) in ALLOWED.iter().filter(|(name, _)| *name == m) {
            for d in *deps {
                visit(d, path, done);
            }
        }
        path.pop();
        done.push(m);
    }
    let mut done = Vec::new();
    for (m, _) in ALLOWED {
        visit(m, &mut Vec::new(), &mut done);
    }
}

// issue 15: `worktree/scan.rs` and `worktree/statcache.rs` imported each other. Inside each
// module folder, the files' `crate::<module>::<file>` and `super::<file>` uses must not form
// a cycle either.
#[test]
fn no_cycle_among_the_files_of_a_module() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for module in MODULES.iter().chain(&["cli"]) {
        let dir = src.join(module);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        // Each file (or folder) of the module: `scan` for scan.rs, `objects` for objects/.
        let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for e in rd.flatten() {
            let p = e.path();
            let name = p
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == "mod" {
                continue;
            }
            if p.is_dir() {
                files.insert(
                    name,
                    files_of(&format!(
                        "{module}/{}",
                        p.file_name().unwrap_or_default().to_string_lossy()
                    )),
                );
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.insert(name, vec![p]);
            }
        }
        let mut uses: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (name, paths) in &files {
            for p in paths {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                for other in files.keys().filter(|o| *o != name) {
                    if text.contains(&format!("crate::{module}::{other}::"))
                        || text.contains(&format!("crate::{module}::{other};"))
                        || text.contains(&format!("super::{other}::"))
                        || text.contains(&format!("super::{other};"))
                    {
                        uses.entry(name).or_default().insert(other);
                    }
                }
            }
        }
        fn visit<'a>(
            m: &'a str,
            uses: &BTreeMap<&'a str, BTreeSet<&'a str>>,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
            module: &str,
        ) {
            if done.contains(m) {
                return;
            }
            assert!(!path.contains(&m), "cycle in `{module}`: {path:?} -> {m}");
            path.push(m);
            for d in uses.get(m).into_iter().flatten() {
                visit(d, uses, path, done, module);
            }
            path.pop();
            done.insert(m);
        }
        let mut done = BTreeSet::new();
        for name in files.keys() {
            visit(name, &uses, &mut Vec::new(), &mut done, module);
        }
    }
}

// issue 15: `worktree` mixed committing and checking out; its two halves never name each other.
#[test]
fn the_commit_and_checkout_halves_of_worktree_are_apart() {
    for (side, other) in [("commit", "checkout"), ("checkout", "commit")] {
        for file in files_of(&format!("worktree/{side}")) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                !text.contains(&format!("worktree::{other}")),
                "{} names worktree::{other}",
                file.display()
            );
        }
    }
}

#[test]
fn only_provenance_uses_gix() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for module in MODULES.iter().chain(&["cli", "lib", "main"]) {
        for file in files_of(module) {
            if file.ends_with("provenance.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if text.contains("gix::") {
                offenders.push(file.display().to_string());
            }
        }
    }
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    assert!(!lib.contains("gix::"));
    assert!(
        offenders.is_empty(),
        "gix outside provenance.rs: {offenders:?}"
    );
}

#[test]
fn the_cli_uses_neither_store_paths_nor_low_level_modules() {
    let mut offenders = Vec::new();
    for file in files_of("cli") {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for needle in ["snap::fs", "snap::lock", "\".store", "process::exit"] {
            if text.contains(needle) {
                offenders.push(format!("{} contains {needle}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

// issue 15: the CLI went around `ops` (store, snapshot, worktree, config, registry, rev) and
// matched inner error variants for its hints. It may name the library only through `ops`:
// the use cases, and the types their Options, Outcomes and errors are made of.
#[test]
fn the_cli_names_the_library_only_through_ops() {
    let mut offenders = Vec::new();
    let main = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/main.rs");
    for file in files_of("cli").into_iter().chain([main]) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (i, _) in text.match_indices("snap::") {
            let before = text[..i].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue; // `mysnap::`, not the crate
            }
            let rest = &text[i + "snap::".len()..];
            if !(rest.starts_with("ops::")
                || rest.starts_with("ops;")
                || rest.starts_with("ops}")
                || rest.starts_with("ops,")
                || rest.starts_with("ops ")
                || rest.starts_with("ops\n"))
            {
                let line = text[..i].lines().count();
                let what: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                offenders.push(format!("{}:{line}: snap::{what}", file.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the CLI names the library outside `ops`:\n{}",
        offenders.join("\n")
    );
}

// issue 15: `lib.rs` exported 17 modules, so `cargo doc` showed every internal. The documented
// surface is `ops` (the API) and the two format modules; every other public module is hidden
// (reachable by snap's own tests only), the rest crate-private.
#[test]
fn the_documented_surface_is_ops_and_the_formats() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .unwrap_or_default();
    let lines: Vec<&str> = lib.lines().map(str::trim).collect();
    let mut documented = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(m) = l.strip_prefix("pub mod ") {
            let hidden = i > 0 && lines[i - 1] == "#[doc(hidden)]";
            if !hidden {
                documented.push(m.trim_end_matches(';'));
            }
        }
    }
    documented.sort_unstable();
    assert_eq!(documented, ["object", "oci", "ops"]);
}

#[test]
fn the_library_does_not_know_the_cli() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .unwrap_or_default();
    assert!(!lib.contains("mod cli"), "only main.rs declares `mod cli`");
}

#[test]
fn the_checker_sees_imports() {
    assert_eq!(
        uses("use crate::store::Store;\nuse crate::{digest::Digest, oci};"),
        ["digest", "oci", "store"]
    );
}

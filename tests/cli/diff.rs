use snap::ops::diff::{Change, ChangeKind};

use crate::harness::{Env, Result};

fn changes(env: &Env, args: &[&str], code: i32) -> Result<Vec<(ChangeKind, String)>> {
    let mut all = vec!["--json", "diff"];
    all.extend_from_slice(args);
    let out = env.run(&all, code)?;
    String::from_utf8(out.stdout)?
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            assert_eq!(v["type"], "change");
            let c: Change = serde_json::from_value(v["data"].clone())?;
            Ok((c.kind, c.path))
        })
        .collect()
}

fn setup() -> Result<Env> {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    env.write("demo/graph/meta.json", "{\"nodes\": 4}\n")?; // modified
    env.write("demo/new/file.txt", "new")?; // added dir + file
    std::fs::remove_file(env.join("demo/graph/edges.tsv"))?; // removed
    env.sh("chmod -x demo/bin/query && rm demo/current && ln -s graph/edges.tsv demo/current")?; // exec bit, target
    env.sh("rm -r demo/graph/shards && echo now-a-file > demo/graph/shards")?; // dir -> file
    Ok(env)
}

fn expected() -> Vec<(ChangeKind, String)> {
    use ChangeKind::*;
    [
        (Modified, "demo/bin/query"),
        (Modified, "demo/current"),
        (Removed, "demo/graph/edges.tsv"),
        (Modified, "demo/graph/meta.json"),
        (TypeChanged, "demo/graph/shards"),
        (Removed, "demo/graph/shards/nodes-0000.txt"),
        (Added, "demo/new"),
        (Added, "demo/new/file.txt"),
    ]
    .into_iter()
    .map(|(k, p)| (k, p.to_owned()))
    .collect()
}

#[test]
fn diff_against_the_work_tree_and_between_snapshots() -> Result {
    let env = setup()?;
    assert_eq!(
        changes(&env, &["latest"], 1)?,
        expected(),
        "snapshot vs work tree"
    );
    env.ok(&["commit", "demo"])?;
    assert_eq!(
        changes(&env, &["latest~1", "latest"], 1)?,
        expected(),
        "snapshot vs snapshot"
    );
    assert_eq!(changes(&env, &["latest"], 0)?, [], "nothing changed since");
    let human = env.run(&["diff", "latest~1", "latest"], 1)?;
    let text = String::from_utf8(human.stdout)?;
    assert!(text.starts_with("M\tdemo/bin/query\n"), "{text}");
    assert!(
        text.contains("T\tdemo/graph/shards\n")
            && text.contains("A\tdemo/new\n")
            && text.contains("D\tdemo/graph/edges.tsv\n")
    );
    Ok(())
}

#[test]
fn diff_against_a_directory_takes_it_as_the_root() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "-C", "demo", "."])?;
    assert_eq!(changes(&env, &["latest", "./demo"], 0)?, []);
    env.write("demo/README.txt", "changed\n")?;
    assert_eq!(
        changes(&env, &["latest", "demo"], 1)?,
        [(ChangeKind::Modified, "README.txt".to_owned())]
    );
    Ok(())
}

#[test]
fn the_work_tree_diff_only_looks_at_recorded_paths() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    env.write("unrelated/file", "x")?;
    assert_eq!(
        changes(&env, &["latest"], 0)?,
        [],
        "paths the snapshot does not record are not compared"
    );
    Ok(())
}

#[test]
fn diff_between_snapshots_never_reads_unchanged_subtrees() -> Result {
    let env = Env::new()?;
    env.write("d/same/deep/file.txt", "unchanged")?;
    env.write("d/changing/file.txt", "v1")?;
    env.ok(&["commit", "d"])?;
    env.write("d/changing/file.txt", "v2")?;
    env.ok(&["commit", "d"])?;
    // Direct mode keeps trees loose: delete the unchanged subtree's tree objects. A diff that
    // descended into them would fail.
    let store = snap::store::Store::open(&env.join(".store"))?;
    let root =
        snap::snapshot::Snapshot::load(&store, &snap::ops::resolve(&store, "latest")?)?.root();
    let same = match snap::snapshot::lookup(&store, &root, "d/same")? {
        Some(snap::object::EntryKind::Dir { digest }) => digest,
        other => return Err(format!("d/same: {other:?}").into()),
    };
    drop(store);
    let hex = same.hex();
    std::fs::remove_file(env.join(&format!(
        ".store/objects/sha256/{}/{}",
        &hex[..2],
        &hex[2..]
    )))?;
    assert_eq!(
        changes(&env, &["latest~1", "latest"], 1)?,
        [(ChangeKind::Modified, "d/changing/file.txt".to_owned())]
    );
    Ok(())
}

//! `snap log`: a snapshot's first-parent history, or the lineage graph of every ref (all
//! parents followed), read from the store. The registry's side is [`crate::ops::remote::log`].

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::Digest;
use crate::ops::Error;
use crate::snapshot::{LogEntry, Snapshot};
use crate::store::Store;

/// A first-parent history, newest first.
#[derive(Clone, Debug)]
pub struct History {
    /// The snapshots shown.
    pub entries: Vec<LogEntry>,
    /// The first parent this store does not have, if the history goes on without it (a pull
    /// of a snapshot without its ancestors).
    pub continues_with: Option<Digest>,
}

/// The first-parent history from `rev`, at most `max` snapshots.
///
/// # Errors
/// `NotFound` for an unknown revision; a snapshot that cannot be read.
pub fn history(store: &Store, rev: &str, max: Option<usize>) -> Result<History, Error> {
    let mut next = Some(crate::rev::resolve(store, rev)?);
    let mut entries = Vec::new();
    while let Some(id) = next {
        if max.is_some_and(|m| entries.len() >= m) {
            break;
        }
        if !store.objects.contains(&id) {
            return Ok(History {
                entries,
                continues_with: Some(id),
            });
        }
        let snap = Snapshot::load(store, &id)?;
        entries.push(LogEntry::from(&snap));
        next = snap.parent();
    }
    Ok(History {
        entries,
        continues_with: None,
    })
}

/// One line of a lineage graph.
#[derive(Clone, Debug)]
pub struct GraphRow {
    /// The lanes drawn left of the snapshot (or alone, on a line joining lanes).
    pub graph: String,
    /// The snapshot on this line, if any, with the refs naming it.
    pub snapshot: Option<(LogEntry, Vec<String>)>,
}

/// The lineage of `rev` (every ref's, without one) as graph rows, like `git log --graph
/// --all`: every stored snapshot reachable through all parents, children before parents,
/// newest first, at most `max` snapshots.
///
/// # Errors
/// `NotFound` for an unknown revision; refs or snapshots that cannot be read.
pub fn graph(store: &Store, rev: Option<&str>, max: Option<usize>) -> Result<Vec<GraphRow>, Error> {
    let refs = store.refs.list()?;
    let mut labels: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for (name, d) in &refs {
        labels.entry(*d).or_default().push(name.to_string());
    }
    let starts: Vec<Digest> = match rev {
        Some(rev) => vec![crate::rev::resolve(store, rev)?],
        None => refs.iter().map(|(_, d)| *d).collect(),
    };
    let mut entries: BTreeMap<Digest, LogEntry> = BTreeMap::new();
    let mut queue: Vec<Digest> = starts;
    let mut seen = BTreeSet::new();
    while let Some(id) = queue.pop() {
        if !seen.insert(id) || !store.objects.contains(&id) {
            continue;
        }
        let entry = LogEntry::from(&Snapshot::load(store, &id)?);
        queue.extend(entry.parents.iter().copied());
        entries.insert(id, entry);
    }
    let nodes: BTreeMap<Digest, (Vec<Digest>, (String, Digest))> = entries
        .iter()
        .map(|(id, e)| {
            let parents = e
                .parents
                .iter()
                .filter(|p| entries.contains_key(p))
                .copied();
            (
                *id,
                (
                    parents.collect(),
                    (e.created.clone().unwrap_or_default(), *id),
                ),
            )
        })
        .collect();
    let mut order = crate::graph::topo_order(&nodes);
    if let Some(max) = max {
        order.truncate(max);
    }
    let shown: BTreeSet<Digest> = order.iter().copied().collect();
    let rows = crate::graph::layout(&order, |id| {
        nodes[id]
            .0
            .iter()
            .filter(|p| shown.contains(p))
            .copied()
            .collect()
    });
    Ok(rows
        .into_iter()
        .map(|row| GraphRow {
            snapshot: row.node.and_then(|id| {
                let e = entries.remove(&id)?;
                Some((e, labels.remove(&id).unwrap_or_default()))
            }),
            graph: row.graph,
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;
    use crate::ops::{self, CommitOptions};

    type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    /// A store with three snapshots of one directory on `latest`, and a `side` ref branching
    /// from the first.
    fn three_commits() -> Result<(tempfile::TempDir, Store, Vec<Digest>)> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("out"))?;
        let (store, _) = ops::init(None, dir.path())?;
        let mut ids = Vec::new();
        for i in 0..3 {
            std::fs::write(dir.path().join("out/f"), format!("v{i}"))?;
            let opts = CommitOptions {
                paths: vec!["out".into()],
                message: format!("c{i}"),
                cwd: dir.path().to_owned(),
                ..CommitOptions::default()
            };
            ids.push(ops::commit(&store, &opts, &crate::ops::NoProgress)?.digest);
        }
        ops::tag(&store, "side", &ids[0].to_string(), false)?;
        Ok((dir, store, ids))
    }

    #[test]
    fn history_is_first_parent_newest_first_and_bounded() -> Result {
        let (_dir, store, ids) = three_commits()?;
        let all = history(&store, "latest", None)?;
        let got: Vec<Digest> = all.entries.iter().map(|e| e.digest).collect();
        assert_eq!(got, vec![ids[2], ids[1], ids[0]]);
        assert_eq!(all.continues_with, None);
        assert_eq!(history(&store, "latest", Some(2))?.entries.len(), 2);
        assert!(history(&store, "no-such-ref", None).is_err());
        Ok(())
    }

    #[test]
    fn graph_rows_carry_every_snapshot_once_with_its_refs() -> Result {
        let (_dir, store, ids) = three_commits()?;
        let rows = graph(&store, None, None)?;
        let shown: Vec<(Digest, Vec<String>)> = rows
            .iter()
            .filter_map(|r| r.snapshot.as_ref())
            .map(|(e, refs)| (e.digest, refs.clone()))
            .collect();
        assert_eq!(shown.len(), 3);
        assert_eq!(shown[0].0, ids[2], "newest first");
        assert!(shown[0].1.iter().any(|r| r.contains("latest")), "{shown:?}");
        assert!(shown[2].1.iter().any(|r| r.contains("side")), "{shown:?}");
        assert_eq!(
            graph(&store, None, Some(1))?
                .iter()
                .filter(|r| r.snapshot.is_some())
                .count(),
            1
        );
        Ok(())
    }
}

//! Drawing lineage as text, like `git log --graph`: one column per line of descent, `*` for a
//! snapshot, `|` for a lane passing by, `/` and `\` for lanes moving one column per row.
//!
//! [`layout`] is pure: it takes nodes already in display order (every child before its
//! parents) and returns the rows to print. [`topo_order`] gives that order.

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::hash::Hash;

/// One row of the drawing: the graph prefix, and the node on that row (none on a connector
/// row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row<T> {
    /// The lanes, two characters per column, trailing spaces trimmed.
    pub graph: String,
    /// The node drawn as `*` on this row.
    pub node: Option<T>,
}

/// Orders `nodes` (id → parents, and a sort key: larger is newer) so that every node comes
/// before its parents, newest first among those ready. Parents not in `nodes` are ignored.
#[must_use]
pub fn topo_order<T, K>(nodes: &BTreeMap<T, (Vec<T>, K)>) -> Vec<T>
where
    T: Ord + Clone + Hash,
    K: Ord + Clone,
{
    let mut children: HashMap<&T, usize> = HashMap::new();
    for (parents, _) in nodes.values() {
        for p in parents.iter().filter(|p| nodes.contains_key(*p)) {
            *children.entry(p).or_default() += 1;
        }
    }
    let mut ready: BinaryHeap<(K, &T)> = nodes
        .iter()
        .filter(|(id, _)| !children.contains_key(id))
        .map(|(id, (_, k))| (k.clone(), id))
        .collect();
    let mut out = Vec::with_capacity(nodes.len());
    let mut done = HashSet::new();
    while let Some((_, id)) = ready.pop() {
        if !done.insert(id) {
            continue;
        }
        out.push(id.clone());
        let mut seen = HashSet::new();
        for p in nodes[id].0.iter().filter(|p| nodes.contains_key(*p)) {
            if !seen.insert(p) {
                continue; // a parent named twice counts once
            }
            let n = children.get_mut(p).expect("counted above");
            *n -= 1;
            if *n == 0 {
                ready.push((nodes[p].1.clone(), p));
            }
        }
    }
    out
}

/// Lays out `order` (children before parents; `parents_of` gives each node's parents that
/// are shown) as rows.
#[must_use]
pub fn layout<T, F>(order: &[T], parents_of: F) -> Vec<Row<T>>
where
    T: Eq + Clone,
    F: Fn(&T) -> Vec<T>,
{
    let mut rows = Vec::new();
    // What each column waits for.
    let mut columns: Vec<T> = Vec::new();
    for id in order {
        let col = if let Some(c) = columns.iter().position(|c| c == id) {
            c
        } else {
            columns.push(id.clone());
            columns.len() - 1
        };
        let mut line = String::new();
        for i in 0..columns.len() {
            line.push(if i == col { '*' } else { '|' });
            line.push(' ');
        }
        rows.push(Row {
            graph: line.trim_end().to_owned(),
            node: Some(id.clone()),
        });

        // The next columns: this one continues with the first parent (unless another column
        // already waits for it), further parents open columns just after it.
        let parents = parents_of(id);
        let mut next: Vec<T> = Vec::with_capacity(columns.len() + parents.len());
        for (i, c) in columns.iter().enumerate() {
            if i != col {
                next.push(c.clone());
                continue;
            }
            for p in &parents {
                let elsewhere = columns.iter().enumerate().any(|(j, x)| j != col && x == p);
                if !elsewhere && !next.contains(p) {
                    next.push(p.clone());
                }
            }
        }
        // Lanes: (from column, to column).
        let mut lanes: Vec<(usize, usize)> = Vec::new();
        for (i, c) in columns.iter().enumerate() {
            if i == col {
                for p in &parents {
                    if let Some(to) = next.iter().position(|x| x == p) {
                        lanes.push((i, to));
                    }
                }
            } else if let Some(to) = next.iter().position(|x| x == c) {
                lanes.push((i, to));
            }
        }
        // Connector rows until every lane has reached its column, one step per row.
        let moving = |lanes: &[(usize, usize)]| lanes.iter().any(|(f, t)| f != t);
        if moving(&lanes) {
            while moving(&lanes) {
                let width = lanes
                    .iter()
                    .map(|(f, t)| f.max(t) * 2 + 2)
                    .max()
                    .unwrap_or(0);
                let mut cells = vec![' '; width];
                for (from, to) in &mut lanes {
                    match (*to).cmp(from) {
                        std::cmp::Ordering::Equal => cells[*from * 2] = '|',
                        std::cmp::Ordering::Less => {
                            cells[*from * 2 - 1] = '/';
                            *from -= 1;
                        }
                        std::cmp::Ordering::Greater => {
                            cells[*from * 2 + 1] = '\\';
                            *from += 1;
                        }
                    }
                }
                rows.push(Row {
                    graph: cells.iter().collect::<String>().trim_end().to_owned(),
                    node: None,
                });
            }
        }
        columns = next;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws a graph given as `id: parents` lines with keys = position from the bottom.
    fn draw(spec: &[(&'static str, &[&'static str])]) -> String {
        let n = spec.len();
        let nodes: BTreeMap<&str, (Vec<&str>, usize)> = spec
            .iter()
            .enumerate()
            .map(|(i, (id, ps))| (*id, (ps.to_vec(), n - i)))
            .collect();
        let order = topo_order(&nodes);
        layout(&order, |id| nodes[id].0.clone())
            .into_iter()
            .map(|r| match r.node {
                Some(id) => format!("{} {id}", r.graph),
                None => r.graph,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_line_is_one_column() {
        assert_eq!(
            draw(&[("c", &["b"]), ("b", &["a"]), ("a", &[])]),
            "* c\n* b\n* a"
        );
    }

    #[test]
    fn two_refs_that_fork_from_one_snapshot_join_with_a_slash() {
        // main: c -> a; topic: d -> b -> a
        let got = draw(&[("d", &["b"]), ("c", &["a"]), ("b", &["a"]), ("a", &[])]);
        assert_eq!(got, "* d\n| * c\n* | b\n|/\n* a");
    }

    #[test]
    fn a_snapshot_with_two_parents_branches_out() {
        let got = draw(&[("m", &["a", "b"]), ("b", &["r"]), ("a", &["r"]), ("r", &[])]);
        assert_eq!(got, "* m\n|\\\n| * b\n* | a\n|/\n* r");
    }

    #[test]
    fn unrelated_histories_stand_side_by_side() {
        let got = draw(&[("x", &[]), ("b", &["a"]), ("a", &[])]);
        assert_eq!(got, "* x\n* b\n* a");
    }
}

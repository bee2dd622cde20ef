use super::decode::count_u32;
use super::*;
use crate::worktree::commit::racy::UNKNOWN_GRANULARITY_NS;
use crate::worktree::commit::scan::{Root, scan};

fn age(p: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    File::options().write(true).open(p)?.set_modified(old)?;
    Ok(())
}

fn scan_dir(dir: &Path) -> Result<Vec<ScanEntry>, Box<dyn std::error::Error>> {
    Ok(scan(
        &[Root {
            recorded: "t".into(),
            source: dir.to_owned(),
        }],
        &[],
    )?)
}

/// The racy rule of a commit that began well after the files were written (the rule
/// itself is tested in `worktree::commit::racy` and below).
fn settled() -> RacyRule {
    RacyRule::uniform(RacyRule::now() + 10_000_000_000, 1)
}

/// An empty cache for a commit after the files settled.
fn fresh() -> StatCache {
    StatCache {
        racy: settled(),
        ..StatCache::default()
    }
}

/// Each file's digest and size, read from its source.
fn files_of(entries: &[ScanEntry]) -> Vec<Option<(Digest, u64)>> {
    entries
        .iter()
        .map(|e| match (&e.kind, &e.source) {
            (ScanKind::File { size, .. }, Some(src)) => {
                Some((Digest::of(&std::fs::read(src).unwrap_or_default()), *size))
            }
            _ => None,
        })
        .collect()
}

/// Saves what a commit of `entries` would record, with made-up cut values and trees.
fn save(
    store: &Path,
    cache: &StatCache,
    entries: &[ScanEntry],
) -> Result<bool, Box<dyn std::error::Error>> {
    // The cache file is written in a later clock tick than the files (records must be
    // older than it, as they are when a commit's racy rule trusts them).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let files = files_of(entries);
    let cuts: Vec<u64> = (0..entries.len() as u64).collect();
    let trees = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == ScanKind::Dir)
        .map(|(i, e)| {
            let t = TreeRecord {
                digest: Digest::of(e.path.as_bytes()),
                size: 7,
                cut: 9,
            };
            (i, t)
        })
        .collect();
    Ok(cache.save(store, entries, &files, &cuts, &trees)?)
}

#[test]
fn trusts_only_unchanged_files_older_than_the_cache() -> Result<(), Box<dyn std::error::Error>> {
    let store = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("a");
    std::fs::write(&f, "one")?;
    let entries = scan_dir(dir.path())?;
    // A commit that began now, on a filesystem of unknown granularity.
    let now = RacyRule::uniform(RacyRule::now(), UNKNOWN_GRANULARITY_NS);
    let c = StatCache::load(store.path(), now);
    save(store.path(), &c, &entries)?;
    let l = StatCache::load(store.path(), settled()).lookup(&entries);
    assert_eq!(
        l.priors[1].known(),
        None,
        "a file modified just now is racy"
    );
    assert_eq!(l.priors[1].hint(), Some(Digest::of(b"one")), "but hinted");
    assert_eq!(l.clean_tree(0), None, "so its directory is not clean");

    // Aged: now it is trusted, until anything about it changes.
    age(&f)?;
    let entries = scan_dir(dir.path())?;
    let c = StatCache::load(store.path(), settled());
    save(store.path(), &c, &entries)?;
    let l = StatCache::load(store.path(), settled()).lookup(&entries);
    assert_eq!(l.priors[1].known(), Some((Digest::of(b"one"), 3)));
    assert!(l.clean_tree(0).is_some(), "every entry as recorded");
    assert_eq!(
        l.priors[1].cut_for(b'f', 3, Some(&Digest::of(b"one"))),
        Some(1)
    );
    assert_eq!(
        l.priors[1].cut_for(b'f', 3, Some(&Digest::of(b"two"))),
        None
    );
    assert_eq!(
        l.priors[1].cut_for(b'x', 3, Some(&Digest::of(b"one"))),
        None
    );

    // Same size, same mtime, new content: ctime (and for a rename, the inode) tells.
    std::fs::write(&f, "two")?;
    age(&f)?;
    let now = scan_dir(dir.path())?;
    let l = StatCache::load(store.path(), settled()).lookup(&now);
    assert_eq!(now[1].stat.map(|s| s.size), Some(3));
    assert_eq!(l.priors[1].known(), None);
    assert_eq!(l.clean_tree(0), None);
    Ok(())
}

// issue 20: a file was racy for 2 s after its mtime, whatever the filesystem; the margin is
// now the filesystem's tick (1 ns on tmpfs or ext4), counted from the later of mtime and
// ctime. A rewrite within the tick the commit began in, same size, that left every stat
// field as it was, must still be read again.
#[test]
fn a_same_tick_rewrite_with_an_unchanged_stat_is_read_again()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("a");
    std::fs::write(&f, "one")?;
    let entries = scan_dir(dir.path())?;
    let stat = entries[1].stat.ok_or("a file has a stat")?;
    let changed = last_change(&stat);

    // A commit that began a nanosecond after the change (on a nanosecond filesystem)
    // trusts it: only that tick is racy, not the last 2 s.
    let after = tempfile::tempdir()?;
    let c = StatCache::load(after.path(), RacyRule::uniform(changed + 1, 1));
    save(after.path(), &c, &entries)?;
    let l = StatCache::load(after.path(), settled()).lookup(&entries);
    assert_eq!(l.priors[1].known(), Some((Digest::of(b"one"), 3)));

    // A commit that began in the very tick of the change records it racy ...
    let same = tempfile::tempdir()?;
    let c = StatCache::load(same.path(), RacyRule::uniform(changed, 1));
    save(same.path(), &c, &entries)?;
    // ... so when it is rewritten within that tick, same size, and the kernel gives it
    // the same stamps (the stat as it was), it is read again: its digest is only a hint.
    std::fs::write(&f, "two")?;
    let mut now = scan_dir(dir.path())?;
    now[1].stat = Some(stat);
    let l = StatCache::load(same.path(), settled()).lookup(&now);
    assert_eq!(l.priors[1].known(), None, "racy: read again");
    assert_eq!(l.priors[1].hint(), Some(Digest::of(b"one")));
    assert_eq!(l.clean_tree(0), None);

    // The same for a filesystem of unknown granularity, 2 s wide.
    let coarse = tempfile::tempdir()?;
    let c = StatCache::load(
        coarse.path(),
        RacyRule::uniform(changed + 1_999_999_999, UNKNOWN_GRANULARITY_NS),
    );
    save(coarse.path(), &c, &now)?;
    let l = StatCache::load(coarse.path(), settled()).lookup(&now);
    assert_eq!(l.priors[1].known(), None);
    Ok(())
}

#[test]
fn added_removed_and_retyped_entries_make_a_directory_unclean()
-> Result<(), Box<dyn std::error::Error>> {
    let store = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    for n in ["b", "d/x"] {
        let p = dir.path().join(n);
        std::fs::create_dir_all(p.parent().ok_or("parent")?)?;
        std::fs::write(&p, n)?;
        age(&p)?;
    }
    let entries = scan_dir(dir.path())?;
    save(store.path(), &fresh(), &entries)?;
    let load = || StatCache::load(store.path(), settled());
    assert!(load().lookup(&entries).clean_tree(0).is_some());
    assert!(
        !save(store.path(), &load(), &entries)?,
        "nothing to rewrite"
    );

    let cases: [&dyn Fn(&Path) -> std::io::Result<()>; 4] = [
        &|d| std::fs::write(d.join("a"), "new"),
        &|d| std::fs::remove_file(d.join("b")),
        &|d| std::fs::remove_file(d.join("b")).and(std::fs::create_dir(d.join("b"))),
        &|d| std::os::unix::fs::symlink("x", d.join("c")),
    ];
    for (n, change) in cases.iter().enumerate() {
        let copy = tempfile::tempdir()?;
        let status = std::process::Command::new("cp")
            .args(["-a", "--"])
            .arg(dir.path().join("."))
            .arg(copy.path())
            .status()?;
        assert!(status.success());
        let entries = scan_dir(copy.path())?;
        let c = load();
        save(store.path(), &c, &entries)?;
        let before = load().lookup(&entries);
        assert!(before.clean_tree(0).is_some(), "case {n}: clean before");
        change(copy.path())?;
        let after = scan_dir(copy.path())?;
        let l = load().lookup(&after);
        assert_eq!(l.clean_tree(0), None, "case {n}: the root changed");
        let d = after.iter().position(|e| e.path == "t/d").ok_or("t/d")?;
        assert!(l.clean_tree(d).is_some(), "case {n}: t/d did not");
    }
    Ok(())
}

// issue 13: paths were written raw, one per line, so a directory named `x\n<record>`
// forged a record for another file.
#[test]
fn names_are_data_and_cannot_forge_records() -> Result<(), Box<dyn std::error::Error>> {
    let store = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good");
    std::fs::write(&good, "GOOD")?;
    age(&good)?;
    // A name holding what a record of `good` would look like after it.
    let mut forged = b"x".to_vec();
    forged.extend_from_slice(&[b'f', 0, 4, 0]);
    forged.extend_from_slice(b"good");
    forged.extend_from_slice(Digest::of(b"EVIL").as_bytes());
    let forged = String::from_utf8_lossy(&forged).replace(['/', '\0'], "_");
    let evil = dir.path().join(&forged);
    std::fs::write(&evil, "EVIL")?;
    age(&evil)?;
    let entries = scan_dir(dir.path())?;
    save(store.path(), &fresh(), &entries)?;
    let l = StatCache::load(store.path(), settled()).lookup(&entries);
    for (e, p) in entries.iter().zip(&l.priors).skip(1) {
        let content = std::fs::read(e.source.as_ref().ok_or("source")?)?;
        assert_eq!(
            p.known().map(|k| k.0),
            Some(Digest::of(&content)),
            "{}",
            e.path
        );
    }
    Ok(())
}

#[test]
fn a_damaged_or_older_cache_is_ignored_whole() -> Result<(), Box<dyn std::error::Error>> {
    let store = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    for n in ["a", "b"] {
        std::fs::write(dir.path().join(n), n)?;
        age(&dir.path().join(n))?;
    }
    let entries = scan_dir(dir.path())?;
    save(store.path(), &fresh(), &entries)?;
    let path = StatCache::path(store.path());
    let good = std::fs::read(&path)?;
    let rows = table(&good).ok_or("a table")?;
    assert_eq!(rows.len(), 1, "one segment");
    let (at, len, _, sha) = rows[0];
    let body = zstd::decode_all(&good[at as usize..(at + len) as usize])?;
    assert_eq!(sha, Digest::of(&body));
    let known = |store: &Path| {
        StatCache::load(store, settled())
            .lookup(&entries)
            .priors
            .iter()
            .filter(|p| p.known().is_some())
            .count()
    };
    assert_eq!(known(store.path()), 2);
    let mut damaged = Vec::new();
    for i in [0, 5, MAGIC.len(), good.len() / 2, good.len() - 1] {
        let mut b = good.clone();
        b[i] ^= 1;
        damaged.push(b);
    }
    assert_eq!(
        file_of(&[(&body, sha)])?,
        good,
        "file_of writes what save does"
    );
    // A segment whose bytes are not those its row names.
    for i in [0, 4, 20, body.len() / 2, body.len() - 40, body.len() - 1] {
        let mut b = body.clone();
        b[i] ^= 1;
        damaged.push(file_of(&[(&b, sha)])?);
    }
    for cut in [body.len() - 1, body.len() - 32, body.len() / 2, 3] {
        damaged.push(file_of(&[(&body[..cut], sha)])?);
    }
    // Right checksums over bytes that are not sections.
    for cut in [body.len() - 1, body.len() / 2, 3] {
        let b = &body[..cut];
        damaged.push(file_of(&[(b, Digest::of(b))])?);
    }
    damaged.push(good[..good.len() - 3].to_vec());
    damaged.push(b"snap-stat-cache 3\n".to_vec());
    for (n, b) in damaged.iter().enumerate() {
        std::fs::write(&path, b)?;
        assert_eq!(known(store.path()), 0, "damage {n} is ignored");
    }
    Ok(())
}

/// A cache file of these segments (each its bytes and the SHA-256 its row gives), as
/// `save` writes it.
fn file_of(segments: &[(&[u8], Digest)]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut out = MAGIC.to_vec();
    let mut rows = Vec::new();
    for (raw, sha) in segments {
        let frame = zstd::bulk::compress(raw, 1)?;
        out.extend_from_slice(&frame);
        rows.extend_from_slice(&(frame.len() as u64).to_le_bytes());
        rows.extend_from_slice(&(raw.len() as u64).to_le_bytes());
        rows.extend_from_slice(sha.as_bytes());
    }
    rows.extend_from_slice(&count_u32(segments.len()).to_le_bytes());
    out.extend_from_slice(&rows);
    out.extend_from_slice(Digest::of(&rows).as_bytes());
    Ok(out)
}

// issue 20: every commit re-encoded, hashed and compressed the whole cache (300,000
// records: about half a second) for one changed file. Segments whose sections are as they
// were are copied as they are.
#[test]
fn a_save_rewrites_only_the_segments_that_changed() -> Result<(), Box<dyn std::error::Error>> {
    let store = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    for d in 0..30 {
        for f in 0..20 {
            let p = dir.path().join(format!("d{d:02}/f{f:02}"));
            std::fs::create_dir_all(p.parent().ok_or("parent")?)?;
            std::fs::write(&p, format!("{d} {f}"))?;
        }
    }
    let load = || StatCache::load(store.path(), settled());
    let entries = scan_dir(dir.path())?;
    save(store.path(), &load(), &entries)?;
    let frames = |b: &[u8]| -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
        Ok(table(b)
            .ok_or("a table")?
            .iter()
            .map(|&(at, len, _, _)| b[at as usize..(at + len) as usize].to_vec())
            .collect())
    };
    let before = frames(&std::fs::read(StatCache::path(store.path()))?)?;
    assert!(before.len() > 10, "{} segments", before.len());

    std::fs::write(dir.path().join("d15/f03"), "changed")?;
    let entries = scan_dir(dir.path())?;
    assert!(save(store.path(), &load(), &entries)?);
    let after = frames(&std::fs::read(StatCache::path(store.path()))?)?;
    let copied = after.iter().filter(|f| before.contains(f)).count();
    assert!(
        copied + 2 >= before.len(),
        "{copied} of {} segments copied",
        before.len()
    );
    // And what it says is what a whole rewrite says.
    let l = load().lookup(&entries);
    for (e, p) in entries.iter().zip(&l.priors) {
        if let Some(src) = e
            .source
            .as_ref()
            .filter(|_| matches!(e.kind, ScanKind::File { .. }))
        {
            assert_eq!(
                p.known().map(|k| k.0),
                Some(Digest::of(&std::fs::read(src)?)),
                "{}",
                e.path
            );
        }
    }
    assert!(
        !save(store.path(), &load(), &entries)?,
        "nothing to rewrite"
    );
    Ok(())
}

#[test]
fn directories_not_scanned_are_kept_for_a_while() -> Result<(), Box<dyn std::error::Error>> {
    let store = tempfile::tempdir()?;
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    for d in [&a, &b] {
        std::fs::write(d.path().join("f"), "f")?;
        age(&d.path().join("f"))?;
    }
    let (ea, eb) = (scan_dir(a.path())?, scan_dir(b.path())?);
    let load = || StatCache::load(store.path(), settled());
    save(store.path(), &load(), &ea)?;
    save(store.path(), &load(), &eb)?;
    assert!(load().lookup(&ea).priors[1].known().is_some(), "a is kept");
    for _ in 0..MAX_AGE {
        std::fs::write(b.path().join("f"), "g")?;
        let eb = scan_dir(b.path())?;
        save(store.path(), &load(), &eb)?;
    }
    assert!(
        load().lookup(&ea).priors[1].known().is_none(),
        "a is forgotten"
    );
    Ok(())
}

#[test]
fn older_versions_are_removed_when_a_new_cache_is_written() -> Result<(), Box<dyn std::error::Error>>
{
    let store = tempfile::tempdir()?;
    let cache = store.path().join("cache");
    std::fs::create_dir_all(&cache)?;
    for old in OLD_FILES {
        std::fs::write(cache.join(old), "old")?;
    }
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("f"), "f")?;
    save(store.path(), &fresh(), &scan_dir(dir.path())?)?;
    for old in OLD_FILES {
        assert!(!cache.join(old).exists(), "{old}");
    }
    assert!(StatCache::path(store.path()).exists());
    Ok(())
}

// issue 17: a cache with nothing to compare with (a first commit) is written segment by
// segment as it is encoded, never held whole; the file must be byte for byte the one the
// whole-body path writes: the same segment cuts, across many segments and write batches.
#[test]
fn a_first_cache_written_as_it_is_encoded_is_the_one_encoded_whole()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // Sections of ~1 KiB: segments (4 KiB in tests) end at varying section counts.
    for d in 0..150 {
        for f in 0..(3 + d % 11) {
            let p = dir.path().join(format!("d{d:03}/f{f:03}"));
            std::fs::create_dir_all(p.parent().ok_or("parent")?)?;
            std::fs::write(&p, format!("{d} {f}"))?;
        }
    }
    std::fs::create_dir_all(dir.path().join("empty"))?;
    let entries = scan_dir(dir.path())?;
    let files = files_of(&entries);
    let cuts: Vec<u64> = (0..entries.len() as u64).collect();
    let trees = HashMap::new();
    let (streamed, whole) = (tempfile::tempdir()?, tempfile::tempdir()?);
    assert!(fresh().save(streamed.path(), &entries, &files, &cuts, &trees)?);
    assert!(fresh().save_whole(whole.path(), &entries, &files, &cuts, &trees)?);
    let a = std::fs::read(StatCache::path(streamed.path()))?;
    let b = std::fs::read(StatCache::path(whole.path()))?;
    let loaded = StatCache::load(streamed.path(), settled());
    assert!(
        loaded.segments.len() > 2 * super::save::WRITE_BATCH,
        "many segments, several batches: {}",
        loaded.segments.len()
    );
    assert!(a == b, "the same file ({} and {} bytes)", a.len(), b.len());
    // And nothing to record writes nothing, as the whole path decides.
    let none = tempfile::tempdir()?;
    assert!(!fresh().save(none.path(), &[], &[], &[], &trees)?);
    assert!(!StatCache::path(none.path()).exists());
    Ok(())
}

//! Phase 1 of an import from an archive: stage its blobs in a temp directory inside the store,
//! each checked against its name as it streams, within the decompression-bomb limit.
//!
//! **The limit.** An archive may expand on trust to [`MAX_EXPANSION`] times its size plus
//! [`TRUSTED_EXPANSION_BYTES`]: headers, `index.json`, and blobs as they come. That alone would
//! refuse snap's own `.tar.zst` export of a large, highly compressible file (a raw layer of
//! zeros compresses thousands of times), and a ratio cannot tell such a layer from a bomb. What
//! can is the layout itself: a blob is real when a descriptor names it with exactly its size.
//! Descriptors usually come after the blobs (snap and skopeo write `index.json` last, blobs by
//! digest), so a blob larger than [`MAX_MANIFEST_BYTES`] that does not fit what is left of the
//! limit is hashed as it streams — its name still checked — but not written; once the whole
//! archive is read, the ones `index.json` or a staged manifest or index names with their size
//! are staged by reading the archive a second time. The others never reach the disk. Small
//! blobs (manifests, indexes, configs) that do not fit are a bomb and refused.
//!
//! Everything read, both passes, stops at [`DEFAULT_MAX_BYTES`]. `--max-bytes N` replaces both
//! limits with N: the archive may expand to N bytes, all staged as it comes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{DEFAULT_MAX_BYTES, MAX_EXPANSION, MAX_MANIFEST_BYTES, TRUSTED_EXPANSION_BYTES};
use crate::digest::Digest;
use crate::oci::layout::{self, BlobSink, Expansion, Staging};
use crate::ops::Error;
use crate::store::Store;

/// What phase 1 staged.
pub(crate) struct Staged {
    /// The temp directory: one file per blob, named by its hex digest.
    pub dir: tempfile::TempDir,
    /// Staged blobs and their sizes.
    pub sizes: HashMap<Digest, u64>,
    /// The `oci-layout` bytes, if the archive has them.
    pub oci_layout: Option<Vec<u8>>,
    /// The `index.json` bytes.
    pub index: Vec<u8>,
}

/// Stages the blobs of the archive at `path` (`len` bytes) in a new temp directory of `store`.
pub(crate) fn stage(
    store: &Store,
    path: &Path,
    len: u64,
    max_bytes: Option<u64>,
) -> Result<Staged, Error> {
    let dir = store.temp_dir()?;
    let (expansion, defer) = match max_bytes {
        Some(n) => (Expansion::at_most(n), false),
        None => (
            Expansion {
                budget: len
                    .saturating_mul(MAX_EXPANSION)
                    .saturating_add(TRUSTED_EXPANSION_BYTES),
                ceiling: DEFAULT_MAX_BYTES,
            },
            true,
        ),
    };
    let mut stager = Stager {
        dir: dir.path(),
        sizes: HashMap::new(),
        deferred: HashMap::new(),
        wanted: None,
        defer,
    };
    let read = layout::read_tar(open(path)?, expansion, &mut stager)?;
    if !stager.deferred.is_empty() {
        let named = named_blobs(&read.index, dir.path(), &stager.sizes);
        let wanted: HashMap<Digest, u64> = stager
            .deferred
            .drain()
            .filter(|(d, size)| named.get(d) == Some(size))
            .collect();
        if !wanted.is_empty() {
            // The second pass: the same bytes (every blob is checked against its name again),
            // staging only what the layout names.
            stager.wanted = Some(wanted);
            layout::read_tar(open(path)?, expansion, &mut stager)?;
        }
    }
    Ok(Staged {
        sizes: stager.sizes,
        dir,
        oci_layout: read.oci_layout,
        index: read.index,
    })
}

fn open(path: &Path) -> Result<io::BufReader<File>, Error> {
    let file = File::open(path).map_err(|source| Error::Io {
        op: "opening",
        path: path.to_owned(),
        source,
    })?;
    Ok(io::BufReader::with_capacity(1 << 20, file))
}

/// Decides, blob by blob, what gets written to the staging directory.
struct Stager<'a> {
    dir: &'a Path,
    sizes: HashMap<Digest, u64>,
    /// Large blobs hashed but not written in the first pass.
    deferred: HashMap<Digest, u64>,
    /// In the second pass: the deferred blobs the layout names, to stage now.
    wanted: Option<HashMap<Digest, u64>>,
    /// Whether large blobs over the budget are deferred (the default limits) or staged.
    defer: bool,
}

impl BlobSink for Stager<'_> {
    fn staging(&mut self, digest: &Digest, size: u64, room: u64) -> Staging {
        if let Some(wanted) = &self.wanted {
            return match wanted.get(digest) {
                Some(&s) if s == size && !self.sizes.contains_key(digest) => Staging::Named,
                _ => Staging::Skip,
            };
        }
        if !self.defer || size <= room || size <= MAX_MANIFEST_BYTES {
            // Over the budget, a small blob is refused: it is no layer worth a second pass.
            Staging::Budgeted
        } else {
            self.deferred.insert(*digest, size);
            Staging::Skip
        }
    }

    fn write(&mut self, digest: &Digest, size: u64, content: &mut dyn Read) -> io::Result<u64> {
        let path: PathBuf = self.dir.join(digest.hex());
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let n = io::copy(content, &mut out)?;
        self.sizes.insert(*digest, size);
        Ok(n)
    }
}

/// Every blob a descriptor names, with the size it gives: the entries of `index.json`, and
/// the config, layers and entries of every staged blob small enough to be a manifest or index.
/// Blobs that are not JSON of that shape name nothing. Phase 2 checks all of it again; this
/// only decides what is worth staging.
fn named_blobs(index: &[u8], dir: &Path, staged: &HashMap<Digest, u64>) -> HashMap<Digest, u64> {
    #[derive(Deserialize)]
    struct Named {
        digest: Digest,
        size: u64,
    }
    #[derive(Deserialize)]
    struct Lists {
        #[serde(default)]
        config: Option<Named>,
        #[serde(default)]
        layers: Vec<Named>,
        #[serde(default)]
        manifests: Vec<Named>,
    }
    let mut named = HashMap::new();
    let mut add = |bytes: &[u8]| {
        if let Ok(l) = serde_json::from_slice::<Lists>(bytes) {
            for n in l.config.into_iter().chain(l.layers).chain(l.manifests) {
                named.insert(n.digest, n.size);
            }
        }
    };
    add(index);
    let mut buf = Vec::new();
    for (d, &size) in staged {
        if size > MAX_MANIFEST_BYTES {
            continue;
        }
        buf.clear();
        let read = File::open(dir.join(d.hex())).and_then(|f| f.take(size).read_to_end(&mut buf));
        if read.is_ok() && buf.first() == Some(&b'{') {
            add(&buf);
        }
    }
    named
}

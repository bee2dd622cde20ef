//! What every test binary shares (included with `mod support;` or `#[path] mod support;`):
//! the one way to spawn snap, with one hermetic environment; the one epoch; the one seeded
//! generator. Not every binary uses every item.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// `SOURCE_DATE_EPOCH` of every snap the tests run: 2026-01-01T00:00:00Z.
pub const EPOCH: &str = "1767225600";

/// The snap binary under test.
pub const SNAP: &str = env!("CARGO_BIN_EXE_snap");

/// `snap` in `cwd`, with the tests' environment and nothing of the machine's: only `PATH`
/// is kept; `HOME` is `home` (so no user's docker or git configuration is read); no colour, UTC,
/// the fixed [`EPOCH`]; no registry credentials or timeouts from the caller's environment,
/// and docker's and podman's credential files pointed at nothing under `home`.
pub fn snap_command(cwd: &Path, home: &Path) -> Command {
    let mut c = Command::new(SNAP);
    env(&mut c, home);
    c.current_dir(cwd);
    c
}

/// Applies the tests' environment (see [`snap_command`]) to a command that runs snap through
/// another program (a watchdog, a shell).
pub fn env(c: &mut Command, home: &Path) {
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("DOCKER_CONFIG", home.join(".no-docker-config"))
        .env("REGISTRY_AUTH_FILE", home.join(".no-auth.json"));
}

/// A small seedable generator (xorshift64*), reproducible without a dependency. Seeded from
/// the variable `var` when it is set (to replay a failure), else from the clock; the seed is
/// printed on stderr so a failing run can be replayed.
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed seed.
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// A generator seeded from `var`, or from the clock (and the seed printed).
    pub fn from_env(var: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| u64::from(d.subsec_nanos()) ^ d.as_secs())
            })
            | 1;
        eprintln!("{var}={seed}");
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 for `n` = 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A duration uniformly in `[0, max]`.
    pub fn upto(&mut self, max: std::time::Duration) -> std::time::Duration {
        let micros = u64::try_from(max.as_micros().max(1)).unwrap_or(u64::MAX - 1);
        std::time::Duration::from_micros(self.next() % (micros + 1))
    }
}

/// The bytes of a referrers index listing `entries` (digest, size) as image manifests.
pub fn referrers_index(entries: &[(snap::Digest, usize)]) -> Vec<u8> {
    let m: Vec<String> = entries
        .iter()
        .map(|(d, size)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":{size}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        m.join(",")
    )
    .into_bytes()
}

/// The bytes of an artifact manifest referring to `subject` (of `size` bytes): the empty
/// config and layer, an annotation `n` = `salt` to make many distinct ones.
pub fn referrer_manifest(subject: snap::Digest, size: usize, salt: usize) -> Vec<u8> {
    let empty = snap::Digest::of(b"{}");
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x.note","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{subject}","size":{size}}},"annotations":{{"n":"{salt}"}}}}"#
    )
    .into_bytes()
}

/// Adds `manifests` to the layout directory `layout` (each as a blob and an untagged entry
/// of `index.json`), with the empty blob they use.
#[allow(clippy::disallowed_methods)] // test fixtures, not final paths of the tool
pub fn add_to_layout(layout: &Path, manifests: &[Vec<u8>]) -> std::io::Result<()> {
    let blobs = layout.join("blobs/sha256");
    std::fs::write(blobs.join(snap::Digest::of(b"{}").hex()), "{}")?;
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let Some(entries) = index["manifests"].as_array_mut() else {
        return Err(std::io::Error::other("index.json has no manifests"));
    };
    for m in manifests {
        let d = snap::Digest::of(m);
        std::fs::write(blobs.join(d.hex()), m)?;
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d.to_string(),
            "size": m.len(),
        }));
    }
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)
}

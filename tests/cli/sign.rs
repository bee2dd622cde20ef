//! issue 16: `snap sign`, `snap verify`, `snap attach`, `snap referrers`, and referrers in
//! export/import, gc and fsck — with the real `ssh-keygen` on the other side.

use std::collections::BTreeMap;

use snap::Digest;
use snap::ops::fsck::FsckReport;
use snap::ops::{AttachOutcome, CommitOutcome, ReferrersReport, SignOutcome, VerifyReport};

use crate::harness::{Env, Result, stderr};

/// A fresh unencrypted ed25519 key `NAME` (and `NAME.pub`) in the work tree, and its
/// allowed-signers line for `principal`.
fn keygen(env: &Env, name: &str, principal: &str) -> Result<String> {
    env.sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -C {principal} -f {name}"
    ))?;
    Ok(format!(
        "{principal} {}",
        std::fs::read_to_string(env.join(&format!("{name}.pub")))?
    ))
}

fn committed(env: &Env) -> Result<Digest> {
    env.write("out/a.txt", "hello\n")?;
    let c: CommitOutcome = env.json(&["commit", "out", "-m", "one"])?;
    Ok(c.digest)
}

fn store_files(env: &Env) -> Result<String> {
    env.sh("find .store -type f -not -name LOCK -not -name 'LOCK.*' | sort")
}

#[test]
fn snap_signatures_verify_with_ssh_keygen_and_ssh_keygen_signatures_with_snap() -> Result {
    let env = Env::new()?;
    let snap = committed(&env)?;
    let alice = keygen(&env, "alice", "alice@example.com")?;
    let bob = keygen(&env, "bob", "bob@example.com")?;
    env.write("allowed", format!("{alice}{bob}"))?;

    // snap signs; ssh-keygen verifies the message as documented (the digest, no newline).
    let signed: SignOutcome = env.json(&["sign", "latest", "--key", "alice"])?;
    assert_eq!(signed.subject, snap);
    env.sh(&format!(
        "$SNAP cat {} signature.sig > alice.sig",
        signed.signature
    ))?;
    let ok = env.sh(&format!(
        "printf %s {snap} | ssh-keygen -Y verify -n snap -f allowed -I alice@example.com -s alice.sig 2>&1"
    ))?;
    assert!(ok.contains("Good \"snap\" signature"), "{ok}");

    // ssh-keygen signs; attached as documented, snap verify accepts it.
    env.sh(&format!(
        "printf %s {snap} > msg && ssh-keygen -q -Y sign -n snap -f bob msg"
    ))?;
    env.ok(&[
        "attach",
        "latest",
        "msg.sig",
        "--artifact-type",
        "application/vnd.snaptool.signature.v1",
    ])?;
    let report: VerifyReport = env.json(&["verify", "latest", "--allowed-signers", "allowed"])?;
    assert!(report.verified, "{report:?}");
    assert_eq!(report.signatures.len(), 2, "{report:?}");
    let text = env.ok(&["verify", "--allowed-signers", "allowed"])?;
    assert!(
        text.contains("good signature by alice@example.com")
            && text.contains("good signature by bob@example.com"),
        "{text}"
    );
    // Signing again with the same key stores nothing new (ed25519 is deterministic).
    let again: SignOutcome = env.json(&["sign", "latest", "--key", "alice"])?;
    assert_eq!(again.signature, signed.signature);
    Ok(())
}

#[test]
fn verify_says_no_with_exit_1_for_unsigned_unknown_keys_and_other_digests() -> Result {
    let env = Env::new()?;
    let snap = committed(&env)?;
    let alice = keygen(&env, "alice", "alice")?;
    keygen(&env, "mallory", "mallory")?;
    env.write("allowed", &alice)?;

    // Unsigned.
    let out = env.run(&["verify", "--allowed-signers", "allowed"], 1)?;
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{snap} is not signed by an allowed signer: it has no signature"
        )),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");

    // Signed, but by a key the allowed signers do not hold.
    env.ok(&["sign", "--key", "mallory"])?;
    let out = env.run(&["verify", "--allowed-signers", "allowed"], 1)?;
    assert!(
        stderr(&out).contains("not in the allowed signers"),
        "{}",
        stderr(&out)
    );

    // A good signature by alice, but over another digest, attached to this snapshot.
    let other = Digest::of(b"another manifest");
    env.sh(&format!(
        "printf %s {other} > msg && ssh-keygen -q -Y sign -n snap -f alice msg"
    ))?;
    env.ok(&[
        "attach",
        "latest",
        "msg.sig",
        "--artifact-type",
        "application/vnd.snaptool.signature.v1",
    ])?;
    let out = env.run(&["verify", "--allowed-signers", "allowed"], 1)?;
    assert!(
        stderr(&out).contains("that do not verify"),
        "{}",
        stderr(&out)
    );
    let report: VerifyReport = serde_json::from_slice(
        &env.run(&["--json", "verify", "--allowed-signers", "allowed"], 1)?
            .stdout,
    )?;
    assert!(!report.verified);
    assert_eq!(report.signatures.len(), 2);

    // Another namespace (git's) does not count either.
    env.sh(&format!(
        "printf %s {snap} > msg2 && ssh-keygen -q -Y sign -n git -f alice msg2"
    ))?;
    env.ok(&[
        "attach",
        "latest",
        "msg2.sig",
        "--artifact-type",
        "application/vnd.snaptool.signature.v1",
    ])?;
    env.run(&["verify", "--allowed-signers", "allowed"], 1)?;
    Ok(())
}

#[test]
fn signing_needs_a_readable_unencrypted_key_and_says_how() -> Result {
    let env = Env::new()?;
    committed(&env)?;
    let out = env.run(&["sign"], 2)?;
    assert!(stderr(&out).contains("no signing key"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("snap config sign.key"),
        "{}",
        stderr(&out)
    );
    env.sh("ssh-keygen -q -t ed25519 -N secret -f locked")?;
    let out = env.run(&["sign", "--key", "locked"], 2)?;
    assert!(
        stderr(&out).contains("encrypted with a passphrase"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["sign", "--key", "locked.pub"], 2)?;
    assert!(
        stderr(&out).contains("not an OpenSSH ed25519 private key"),
        "{}",
        stderr(&out)
    );
    env.sh("ssh-keygen -q -t ecdsa -N '' -f ec")?;
    let out = env.run(&["sign", "--key", "ec"], 2)?;
    assert!(
        stderr(&out).contains("ec is not an OpenSSH ed25519 private key"),
        "{}",
        stderr(&out)
    );
    // The setting is the default key, relative to the directory holding the store.
    keygen(&env, "mine", "me")?;
    env.ok(&["config", "sign.key", "mine"])?;
    env.ok(&["sign"])?;
    let out = env.run(&["verify"], 2)?;
    assert!(
        stderr(&out).contains("no allowed signers"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn attach_refuses_hostile_or_clashing_names_before_storing_anything() -> Result {
    let env = Env::new()?;
    committed(&env)?;
    env.write("a/report.txt", "one")?;
    env.write("b/report.txt", "two")?;
    let before = store_files(&env)?;
    let out = env.run(
        &[
            "attach",
            "latest",
            "a/report.txt",
            "b/report.txt",
            "--artifact-type",
            "application/x.report",
        ],
        2,
    )?;
    assert!(
        stderr(&out).contains("also titled `report.txt`"),
        "{}",
        stderr(&out)
    );
    let out = env.run(
        &[
            "attach",
            "latest",
            "a/report.txt",
            "--artifact-type",
            "not a type",
        ],
        2,
    )?;
    assert!(
        stderr(&out).contains("is not a media type"),
        "{}",
        stderr(&out)
    );
    env.run(
        &[
            "attach",
            "latest",
            "a/..",
            "--artifact-type",
            "application/x.report",
        ],
        2,
    )?;
    env.sh("printf x > \"$(printf 'bad\\377name')\"")?;
    let out = env.sh("$SNAP attach latest \"$(printf 'bad\\377name')\" --artifact-type application/x.r 2>&1; echo rc=$?")?;
    assert!(out.contains("not UTF-8") && out.contains("rc=2"), "{out}");
    assert_eq!(
        store_files(&env)?,
        before,
        "a refused attach stores nothing"
    );

    let a: AttachOutcome = env.json(&[
        "attach",
        "latest",
        "a/report.txt",
        "--artifact-type",
        "application/x.report",
        "--annotation",
        "k=v",
    ])?;
    let r: ReferrersReport = env.json(&["referrers"])?;
    assert_eq!(r.referrers.len(), 1);
    assert_eq!(r.referrers[0].digest, a.digest);
    assert_eq!(r.referrers[0].files, vec!["report.txt"]);
    assert_eq!(
        r.referrers[0].annotations,
        BTreeMap::from([("k".to_owned(), "v".to_owned())])
    );
    // A referrer of a referrer is listed below it.
    env.ok(&[
        "attach",
        &a.digest.to_string(),
        "b/report.txt",
        "--artifact-type",
        "application/x.review",
    ])?;
    let r: ReferrersReport = env.json(&["referrers"])?;
    assert_eq!(
        r.referrers.iter().map(|i| i.depth).collect::<Vec<_>>(),
        vec![1, 2]
    );
    Ok(())
}

#[test]
fn signatures_survive_export_import_and_gc_and_go_with_their_snapshot() -> Result {
    let env = Env::new()?;
    let snap = committed(&env)?;
    let alice = keygen(&env, "alice", "alice")?;
    env.write("allowed", &alice)?;
    let sig: SignOutcome = env.json(&["sign", "--key", "alice"])?;
    env.write("sbom.json", "{}")?;
    env.ok(&[
        "attach",
        "latest",
        "sbom.json",
        "--artifact-type",
        "application/x.sbom",
    ])?;

    // gc keeps referrers while their subject is reachable.
    env.ok(&["gc", "--prune-now"])?;
    env.ok(&["verify", "--allowed-signers", "allowed"])?;

    // Export carries them as untagged entries; an import in a fresh store finds them again.
    env.ok(&["export", "--oci", "latest", "-o", "signed.tar"])?;
    let index = env.sh("tar -xOf signed.tar index.json")?;
    assert!(
        index.contains("application/vnd.snaptool.signature.v1"),
        "{index}"
    );
    let other = Env::new()?;
    std::fs::copy(env.join("signed.tar"), other.join("signed.tar"))?;
    std::fs::copy(env.join("allowed"), other.join("allowed"))?;
    other.ok(&["init"])?;
    other.ok(&["import", "signed.tar"])?;
    let report: VerifyReport = other.json(&["verify", "latest", "--allowed-signers", "allowed"])?;
    assert!(report.verified, "{report:?}");
    assert_eq!(report.signatures[0].digest, sig.signature);
    let r: ReferrersReport = other.json(&["referrers"])?;
    assert_eq!(r.referrers.len(), 2);
    let f: FsckReport = other.json(&["fsck"])?;
    assert!(f.is_clean(), "{f:?}");
    // The exported layout is byte-reproducible with its referrers.
    env.ok(&["export", "--oci", "latest", "-o", "again.tar"])?;
    assert_eq!(
        std::fs::read(env.join("signed.tar"))?,
        std::fs::read(env.join("again.tar"))?
    );

    // When the snapshot goes, its referrers and their index go with it.
    other.ok(&["ref", "delete", "latest"])?;
    other.ok(&["gc", "--expire", "0", "--prune-now"])?;
    assert_eq!(other.sh("ls .store/referrers | wc -l")?.trim(), "0");
    assert!(
        other
            .run(&["cat", &sig.signature.to_string(), "signature.sig"], 2)
            .is_ok()
    );
    let f: FsckReport = other.json(&["fsck"])?;
    assert!(f.is_clean(), "{f:?}");
    let _ = snap;
    Ok(())
}

#[test]
fn fsck_reports_a_referrers_index_that_disagrees_with_the_manifests() -> Result {
    let env = Env::new()?;
    committed(&env)?;
    keygen(&env, "k", "k")?;
    let sig: SignOutcome = env.json(&["sign", "--key", "k"])?;
    env.sh("chmod -R u+w .store/referrers && rm .store/referrers/*")?;
    let out = env.run(&["--json", "fsck"], 1)?;
    let f: FsckReport = serde_json::from_slice(&out.stdout)?;
    assert!(
        f.problems
            .iter()
            .any(|p| p.object == Some(sig.signature) && p.message.contains("does not list it")),
        "{f:?}"
    );
    // A line naming what is not a referrer of that subject.
    env.sh(&format!(
        "printf '%s\\n' {} > .store/referrers/{}",
        sig.signature,
        Digest::of(b"elsewhere").hex()
    ))?;
    let out = env.run(&["--json", "fsck"], 1)?;
    let f: FsckReport = serde_json::from_slice(&out.stdout)?;
    assert!(
        f.problems.iter().any(|p| p.message.contains("not stored")),
        "{f:?}"
    );
    Ok(())
}

// issue 16: hostile referrers in a layout — one whose subject is absent, thousands of them,
// a chain nested past the bound — are refused cleanly, and the import stores nothing.
#[test]
fn hostile_referrers_in_a_layout_are_refused_and_nothing_is_stored() -> Result {
    let env = Env::new()?;
    let snap = committed(&env)?;
    let layout = |name: &str, manifests: &[Vec<u8>]| -> Result<std::path::PathBuf> {
        env.ok(&["export", "--oci", "latest", "-o", name])?;
        crate::support::add_to_layout(&env.join(name), manifests)?;
        Ok(env.join(name))
    };
    let absent = layout(
        "absent",
        &[crate::support::referrer_manifest(
            Digest::of(b"nothing"),
            10,
            0,
        )],
    )?;
    let thousands: Vec<Vec<u8>> = (0..1025)
        .map(|i| crate::support::referrer_manifest(snap, 500, i))
        .collect();
    let many = layout("many", &thousands)?;
    let mut chain = vec![crate::support::referrer_manifest(snap, 500, 0)];
    for i in 1..6 {
        let prev = chain[i - 1].clone();
        chain.push(crate::support::referrer_manifest(
            Digest::of(&prev),
            prev.len(),
            i,
        ));
    }
    let deep = layout("deep", &chain)?;
    for (path, want) in [
        (
            absent,
            "which is neither in what is imported nor in the store",
        ),
        (many, "1025 referrers, more than the 1024"),
        (deep, "nest deeper than 4"),
    ] {
        let other = Env::new()?;
        other.ok(&["init"])?;
        let before = store_files(&other)?;
        let out = other.run(&["import", &path.to_string_lossy()], 2)?;
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("hint: nothing was stored"),
            "{}",
            stderr(&out)
        );
        assert_eq!(store_files(&other)?, before, "{want}: nothing stored");
    }
    // A referrer whose subject the store already holds is taken on its own.
    let lone = layout("lone", &[crate::support::referrer_manifest(snap, 500, 7)])?;
    env.ok(&["import", &lone.to_string_lossy()])?;
    let r: ReferrersReport = env.json(&["referrers"])?;
    assert_eq!(r.referrers.len(), 1);
    Ok(())
}

// issue 16: the referrers index is rewritten under its lock file, read under it: concurrent
// attaches to one snapshot all land, none lost.
#[test]
fn concurrent_attaches_to_one_snapshot_all_land_in_the_index() -> Result {
    let env = Env::new()?;
    committed(&env)?;
    let n = 6;
    for i in 0..n {
        env.write(&format!("notes/n{i}.txt"), format!("note {i}"))?;
    }
    let children: Vec<std::process::Child> = (0..n)
        .map(|i| {
            let mut c = env.snap_std(env.path());
            c.env("SNAP_LOCK_TIMEOUT_MS", "20000")
                .args([
                    "attach",
                    "latest",
                    &format!("notes/n{i}.txt"),
                    "--artifact-type",
                    "application/x.note",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    for c in children {
        let out = c.wait_with_output()?;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let r: ReferrersReport = env.json(&["referrers"])?;
    assert_eq!(r.referrers.len(), n, "{r:?}");
    let f: FsckReport = env.json(&["fsck"])?;
    assert!(f.is_clean(), "{f:?}");
    Ok(())
}

// issue 16: a referrer kept by a ref of its own outlives its subject: gc drops its index
// line with the subject, and fsck does not ask for one.
#[test]
fn a_referrer_with_its_own_ref_outlives_its_subject_cleanly() -> Result {
    let env = Env::new()?;
    committed(&env)?;
    keygen(&env, "k", "k")?;
    let sig: SignOutcome = env.json(&["sign", "--key", "k"])?;
    env.ok(&["tag", "the-signature", &sig.signature.to_string()])?;
    env.ok(&["ref", "delete", "latest"])?;
    env.ok(&["gc", "--expire", "0", "--prune-now"])?;
    assert_eq!(env.sh("ls .store/referrers | wc -l")?.trim(), "0");
    env.ok(&["show", "the-signature"])?;
    let f: FsckReport = env.json(&["fsck"])?;
    assert!(f.is_clean(), "{f:?}");
    Ok(())
}

//! The book's "getting the files out with standard tools" recipe (oci-mapping §5), run exactly
//! as the book prints it, on a grouped and a direct snapshot, from `snap export` and from a
//! layout skopeo copied (issue 14: it extracted nothing for grouped snapshots, silently).

use std::path::Path;

use crate::harness::{Result, have, have_skopeo, sh, snap};

/// The `sh` block after the `<!-- recipe: standard-tools -->` marker.
fn recipe() -> Result<String> {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/reference/oci-mapping.md"),
    )?;
    let (_, after) = page
        .split_once("<!-- recipe: standard-tools -->")
        .ok_or("the recipe marker is in oci-mapping.md")?;
    let body = after
        .split_once("```sh\n")
        .and_then(|(_, b)| b.split_once("```"))
        .map(|(code, _)| code.to_owned())
        .ok_or("a sh block follows the marker")?;
    Ok(body)
}

/// Type, mode, path and link target of everything below `dir`, sorted.
fn listing(dir: &Path) -> Result<String> {
    sh(dir, "find . -mindepth 1 -printf '%y %m %p %l\\n' | sort")
}

#[test]
fn the_standard_tools_recipe_gets_the_files_out_of_both_modes() -> Result {
    if !have_skopeo() || !have("jq", &["--version"], "apt-get install -y jq") {
        return Ok(());
    }
    let recipe = recipe()?;
    let t = tempfile::tempdir()?;
    let dir = t.path();
    // A grouped snapshot with everything a tree can hold, and the direct-mode demo.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    sh(
        dir,
        &format!(
            "umask 022 && mkdir -p g/sub g/empty && for i in $(seq 1 80); do seq 1 $i > g/sub/f$i; done \
             && chmod +x g/sub/f7 && ln -s sub/f1 g/link && cp -a {} demo",
            demo.display()
        ),
    )?;
    snap(dir, &["commit", "g", "--ref", "grouped"])?;
    snap(dir, &["commit", "demo", "--ref", "direct"])?;

    for (rev, src) in [("grouped", "g"), ("direct", "demo")] {
        for source in ["export", "skopeo"] {
            let w = tempfile::tempdir()?;
            let w = w.path();
            let layout = w.join("layout");
            if source == "export" {
                snap(
                    dir,
                    &["export", "--oci", rev, "-o", &layout.to_string_lossy()],
                )?;
            } else {
                let tar = w.join("x.tar");
                snap(dir, &["export", "--oci", rev, "-o", &tar.to_string_lossy()])?;
                sh(w, "skopeo copy -q oci-archive:x.tar oci:layout")?;
            }
            sh(w, &recipe).map_err(|e| format!("{rev} from {source}: {e}"))?;
            let want = dir.join(src);
            let got = w.join("out").join(src);
            if rev == "grouped" {
                // Everything: files, modes, the empty directory, the symlink.
                assert_eq!(listing(&got)?, listing(&want)?, "{rev} from {source}");
                sh(
                    w,
                    &format!(
                        "diff -r --no-dereference {} {}",
                        want.display(),
                        got.display()
                    ),
                )?;
            } else {
                // Regular files only, with default modes: what the page says direct mode loses.
                let files = "find . -type f | sort | xargs sha256sum";
                assert_eq!(sh(&got, files)?, sh(&want, files)?, "{rev} from {source}");
                assert_eq!(sh(&got, "find . -type l")?, "", "no symlinks");
                assert_eq!(
                    sh(&got, "find . -type f -perm -u+x")?,
                    "",
                    "no executable bits"
                );
                // And snap itself restores it all.
                let s = w.join("s");
                std::fs::create_dir(&s)?;
                snap(&s, &["import", "--ref", "back", &layout.to_string_lossy()])?;
                snap(&s, &["restore", "back", "../restored"])?;
                assert_eq!(listing(&w.join("restored").join(src))?, listing(&want)?);
            }
        }
    }
    Ok(())
}

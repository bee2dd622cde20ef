use crate::harness::{Env, Result, stderr};

#[test]
fn ls_lists_a_directory_a_file_and_recursively() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    let root = env.ok(&["ls", "latest"])?;
    assert_eq!(root.lines().count(), 1);
    assert!(root.trim_end().ends_with("demo/"), "{root}");
    let dir = env.ok(&["ls", "latest", "demo"])?;
    let order: Vec<usize> = ["README.txt", "bin/", "current ->", "graph/"]
        .iter()
        .map(|n| dir.find(n).ok_or(format!("{n} missing in {dir}")))
        .collect::<std::result::Result<_, _>>()?;
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "sorted by name: {dir}"
    );
    assert_eq!(dir.lines().count(), 4);
    assert!(dir.contains("-rw-r--r--           70 "), "{dir}");
    assert!(dir.contains("current -> graph/meta.json"), "{dir}");
    let exe = env.ok(&["ls", "latest", "demo/bin/query"])?;
    assert!(exe.starts_with("-rwxr-xr-x"), "{exe}");
    let all = env.ok(&["ls", "-r", "latest"])?;
    assert!(all.contains(" demo/graph/shards/nodes-0000.txt"), "{all}");
    let json = env.ok(&["--json", "ls", "-r", "latest"])?;
    let paths: Vec<String> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["data"]["path"].as_str().unwrap_or("").to_owned())
        })
        .collect::<std::result::Result<_, _>>()?;
    assert_eq!(paths.len(), 10);
    assert!(paths.contains(&"demo/bin/query".to_owned()));
    Ok(())
}

#[test]
fn ls_and_cat_of_a_missing_path_name_it() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    let out = env.run(&["ls", "latest", "demo/nope"], 2)?;
    assert!(
        stderr(&out).contains("`demo/nope` is not in snapshot"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["cat", "latest", "demo/graph"], 2)?;
    assert!(
        stderr(&out).contains("is a dir, not a file"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn cat_writes_the_exact_bytes() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.sh("head -c 300000 /dev/urandom > demo/blob.bin && : > demo/empty")?;
    env.ok(&["commit", "demo"])?;
    for f in ["demo/graph/meta.json", "demo/blob.bin", "demo/empty"] {
        let out = env.snap().args(["cat", "latest", f]).output()?;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(out.stdout, std::fs::read(env.join(f))?, "{f}");
    }
    Ok(())
}

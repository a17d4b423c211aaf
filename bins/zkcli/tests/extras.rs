//! The commands zkcli has beyond zkCli.sh: `tree`, `find-big`, `cp`, `mv`, `export`,
//! `import`, `help`, and `--output json`, driven through the binary against zkd.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use zk_tests::zkd::Zkd;

const ZKCLI: &str = env!("CARGO_BIN_EXE_zkcli");

fn session(addr: std::net::SocketAddr, extra: &[&str], script: &str) -> (String, String) {
    let mut child = Command::new(ZKCLI)
        .arg("-server")
        .arg(addr.to_string())
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn subtree_commands_work_end_to_end() {
    let dir = std::env::temp_dir().join(format!("zkcli-extras-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let zkd = Zkd::start(&dir.join("data"), |_| {});
    let export = dir.join("app.json");
    let script = format!(
        "create /app\n\
         create /app/a 1234\n\
         create /app/a/b xy\n\
         create /app/c secret world:anyone:r\n\
         create -e /app/eph e\n\
         tree /app\n\
         find-big -n 2 /app\n\
         cp /app /copy\n\
         get /copy/a/b\n\
         getAcl /copy/c\n\
         cp /app /app/inside\n\
         mv /copy /moved\n\
         ls /\n\
         export /app {f}\n\
         import {f} /restored\n\
         get /restored/a/b\n\
         getAcl /restored/c\n\
         ls /restored\n\
         help\n\
         quit\n",
        f = export.display()
    );
    let (out, err) = session(zkd.addr, &[], &script);
    println!("{out}\n{err}");
    let tree =
        "/app (0 B, 3 children)\n  a (4 B, 1 children)\n    b (2 B)\n  c (6 B)\n  eph (1 B)\n";
    assert!(out.contains(tree), "tree:\n{out}");
    assert!(out.contains("Largest subtrees by nodes:\n         5 nodes           13 bytes  /app\n         2 nodes            6 bytes  /app/a\n"), "{out}");
    assert!(out.contains("Largest subtrees by bytes:\n          13 bytes          5 nodes  /app\n           6 bytes          2 nodes  /app/a\n"), "{out}");
    // cp copies data and ACLs (the ephemeral is copied as a persistent node).
    assert!(
        out.contains("Copied 5 node(s) from /app to /copy\nxy\n'world,'anyone\n: r\n"),
        "{out}"
    );
    assert!(err.contains("cannot copy /app into itself"), "{err}");
    assert!(
        out.contains("Moved 5 node(s) from /copy to /moved\n[app, moved, zookeeper]\n"),
        "{out}"
    );
    // export skips ephemerals; import recreates data and ACLs.
    assert!(
        out.contains(&format!(
            "Exported 4 node(s) from /app to {}\n",
            export.display()
        )),
        "{out}"
    );
    assert!(out.contains("xy\n'world,'anyone\n: r\n[a, c]\n"), "{out}");
    assert!(
        out.contains("\ttree [-d depth] path"),
        "help lists the extras"
    );

    // JSON output, for scripts.
    let (out, _) = session(
        zkd.addr,
        &["--output", "json"],
        "tree /app/a\nget /nosuch\nquit\n",
    );
    let tree_line = out.lines().find(|l| l.starts_with("{\"tree\"")).unwrap();
    assert_eq!(
        tree_line,
        r#"{"tree":[{"bytes":4,"children":1,"depth":0,"path":"/app/a"},{"bytes":2,"children":0,"depth":1,"path":"/app/a/b"}]}"#
    );
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

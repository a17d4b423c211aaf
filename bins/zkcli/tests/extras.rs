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

/// `find-big` walks the tree as a client (so it works against any ZooKeeper server); zkd's
/// `/commands/big_families` computes the same report inside the server. They agree.
#[test]
fn find_big_agrees_with_the_servers_big_families_report() {
    let dir = std::env::temp_dir().join(format!("zkcli-findbig-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let zkd = Zkd::start(&dir.join("data"), |_| {});
    let mut script = String::from("create /fam-a\ncreate /fam-b\ncreate /blob\n");
    for i in 0..30 {
        script.push_str(&format!("create /fam-a/k{i} {}\n", "d".repeat(i)));
    }
    for i in 0..12 {
        script.push_str(&format!("create /fam-b/{}{i}\n", "long-name-".repeat(8)));
    }
    script.push_str(&format!("set /blob {}\n", "b".repeat(5000)));
    script.push_str("find-big -n 3 /\nquit\n");
    let (out, err) = session(zkd.addr, &["--output", "json"], &script);
    let line = out
        .lines()
        .find(|l| l.contains("\"byChildren\""))
        .unwrap_or_else(|| panic!("no find-big output:\n{out}\n{err}"));
    let cli: serde_json::Value = serde_json::from_str(line).unwrap();
    let server: serde_json::Value =
        serde_json::from_str(&zkd.admin_get("/commands/big_families?n=3")).unwrap();
    println!("zkcli: {cli}\nserver: {server}");
    let fams = |v: &serde_json::Value, key: &str, count: &str| -> Vec<(String, u64, u64)> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_owned(),
                    f[count].as_u64().unwrap(),
                    f["children_list_bytes"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let by_children = fams(&cli, "byChildren", "children");
    assert_eq!(by_children, fams(&server, "by_children", "children"));
    assert_eq!(by_children[0], ("/fam-a".into(), 30, 4 + 30 * 4 + 80));
    assert_eq!(by_children[1].0, "/fam-b");
    let subtrees = |v: &serde_json::Value, key: &str, bytes: &str| -> Vec<(String, u64, u64)> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["path"].as_str().unwrap().to_owned(),
                    t["nodes"].as_u64().unwrap(),
                    t[bytes].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        subtrees(&cli, "byNodes", "bytes"),
        subtrees(&server, "subtrees_by_nodes", "data_bytes")
    );
    assert_eq!(
        subtrees(&cli, "byBytes", "bytes"),
        subtrees(&server, "subtrees_by_bytes", "data_bytes")
    );
    assert_eq!(server["largest_nodes"][0]["path"], "/blob");
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

//! zkd deletes a closed session's ephemerals in the order ZooKeeper does, which is a Java
//! `HashSet`'s iteration order (`zk_tree::java`). Checked against a real JVM: random
//! sets of paths, copied and changed as ZooKeeper's closeSession prep does, printed by
//! Java and computed by zk-tree, must agree.

#![allow(clippy::unwrap_used)]

use std::process::Command;

const PROGRAM: &str = r#"
import java.util.*;
public class Order {
  public static void main(String[] a) throws Exception {
    java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in, "UTF-8"));
    String line;
    while ((line = in.readLine()) != null) {
      String[] parts = line.split(" ; ", -1);
      HashSet<String> s = new HashSet<>();
      for (String x : parts[0].split(" ")) if (!x.isEmpty()) s.add(x);
      @SuppressWarnings("unchecked") HashSet<String> c = (HashSet<String>) s.clone();
      for (String ch : parts[1].split(" ")) {
        if (ch.startsWith("+")) c.add(ch.substring(1)); else if (ch.startsWith("-")) c.remove(ch.substring(1));
      }
      System.out.println(String.join(" ", new ArrayList<>(c)));
    }
  }
}
"#;

#[test]
fn close_session_order_matches_a_jvm() {
    if Command::new("javac").arg("-version").output().is_err() {
        eprintln!("skipped: no javac");
        return;
    }
    let dir = std::env::temp_dir().join(format!("zk-java-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Order.java"), PROGRAM).unwrap();
    let ok = Command::new("javac")
        .arg("Order.java")
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(ok.success());
    // 300 cases: 0 to 40 ephemerals (past the 16-bucket table's threshold), then pending
    // creates and deletes.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut cases = Vec::new();
    for _ in 0..300 {
        let n = next(41) as usize;
        let created: Vec<String> = (0..n)
            .map(|_| format!("/app/n-{}/é{}", next(50), next(1000)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut created = created;
        // Creation order is not name order.
        for i in (1..created.len()).rev() {
            created.swap(i, next(i as u64 + 1) as usize);
        }
        let changes: Vec<(String, bool)> = (0..next(6))
            .map(|_| {
                if next(2) == 0 && !created.is_empty() {
                    (created[next(created.len() as u64) as usize].clone(), false)
                } else {
                    (format!("/app/new-{}", next(100)), true)
                }
            })
            .collect();
        cases.push((created, changes));
    }
    let input: String = cases
        .iter()
        .map(|(created, changes)| {
            let ch: Vec<String> = changes
                .iter()
                .map(|(p, add)| format!("{}{p}", if *add { '+' } else { '-' }))
                .collect();
            format!("{} ; {}\n", created.join(" "), ch.join(" "))
        })
        .collect();
    let mut child = Command::new("java")
        .args(["-cp", ".", "Order"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let java = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = java.lines().collect();
    assert_eq!(lines.len(), cases.len());
    for (i, (created, changes)) in cases.into_iter().enumerate() {
        let ours = zk_tree::java::close_session_order(created.clone(), changes.clone());
        assert_eq!(
            ours.join(" "),
            lines[i],
            "case {i}: created {created:?}, changes {changes:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

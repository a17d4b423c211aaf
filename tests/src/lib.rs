//! Test support: reading a real ZooKeeper `version-2/` directory (txn logs and snapshots)
//! into zk-proto records, so tests can replay ZooKeeper's own data through our crates.
//!
//! This is a reader for test data only; the durable storage crate (zk-log) owns the real
//! reader and writer.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_proto::{FileHeader, Jute, Reader, TxnEntry};

/// `ZKLG`, the txn log magic.
pub const TXNLOG_MAGIC: i32 = 0x5a4b_4c47;
/// `ZKSN`, the snapshot magic.
pub const SNAP_MAGIC: i32 = 0x5a4b_534e;

/// Adler-32, the checksum ZooKeeper puts before each txn and in snapshot seals.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// One txn of a log file, with the raw bytes it was decoded from.
#[derive(Debug)]
pub struct LoggedTxn {
    pub entry: TxnEntry,
    pub raw: Bytes,
    pub checksum: i64,
}

/// Reads every txn of a `log.<zxid>` file up to the preallocated zero padding.
pub fn read_txn_log(path: &Path) -> Result<(FileHeader, Vec<LoggedTxn>), String> {
    let bytes = Bytes::from(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
    let mut r = Reader::with_len_max(bytes, usize::MAX);
    let header = FileHeader::read(&mut r).map_err(|e| e.to_string())?;
    let mut txns = Vec::new();
    while r.remaining() >= 12 {
        let checksum = r.read_i64().map_err(|e| e.to_string())?;
        let raw = r
            .read_buffer()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if raw.is_empty() {
            break; // preallocated padding
        }
        let end = r.read_u8().map_err(|e| e.to_string())?;
        if end != 0x42 {
            return Err(format!(
                "txn {} not followed by 0x42 but {end:#x}",
                txns.len()
            ));
        }
        let entry = TxnEntry::decode(raw.clone()).map_err(|e| e.to_string())?;
        txns.push(LoggedTxn {
            entry,
            raw,
            checksum,
        });
    }
    Ok((header, txns))
}

/// The files of a `version-2/` directory whose names start with `prefix`, by zxid.
pub fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let hex = name.strip_prefix(prefix)?;
                    Some((i64::from_str_radix(hex, 16).ok()?, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

/// Every txn in the `log.*` files of a `version-2/` directory as zk-log's recovery scan
/// reads them (a torn tail left out), file by file: (zxid, raw bytes).
pub fn logged_txns(dir: &Path) -> Vec<(i64, Bytes)> {
    files(dir, "log.")
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            zk_log::txnlog::scan_log(&path, Bytes::from(bytes)).ok()
        })
        .flat_map(|scan| {
            scan.records
                .into_iter()
                .map(|r| (r.entry.header.zxid, r.raw))
        })
        .collect()
}

pub mod certs;
pub mod processes;
pub mod proxy;
pub mod raw;
pub mod zkd;
pub mod zookeeper;

/// A TCP port free on all addresses right now, for a server a test starts.
///
/// Ports come from below the kernel's ephemeral range, so the outgoing connections of
/// tests running in parallel (which take ephemeral ports) never grab one between this
/// call and the server's bind; each is handed out once per process, and processes start
/// at different offsets.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = if ephemeral_low > 12000 {
        (10000, ephemeral_low)
    } else {
        (ephemeral_low.max(1024) + 30000, 65535)
    };
    let span = high - low;
    let start = (std::process::id().wrapping_mul(2_654_435_761) >> 7) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (low + (start + n) % span) as u16;
        let free = ["127.0.0.1", "0.0.0.0"]
            .iter()
            .all(|host| std::net::TcpListener::bind((*host, port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no free TCP port in {low}..{high}");
}

/// Whether python3 can import `modules` (e.g. `"kazoo, puresasl"`). Without them a test
/// says so and returns; under `CI=true` their absence is a failure (CI installs them).
pub fn python_has(modules: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must pip install the Python modules {modules}"
        );
        println!("SKIPPED: python3 cannot import {modules} (pip install them)");
    }
    ok
}

/// A two-worker tokio runtime for tests that drive async clients from a plain `#[test]`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Asserts that zkd's transcript of a scenario equals ZooKeeper's, listing every line that
/// differs.
pub fn assert_same_transcript(what: &str, ours: &[String], theirs: &[String]) {
    let diff: Vec<String> = ours
        .iter()
        .zip(theirs)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("zkd:       {a}\nZooKeeper: {b}"))
        .collect();
    assert!(
        diff.is_empty() && ours.len() == theirs.len(),
        "{what} saw differences:\n{}\n(zkd {} lines, ZooKeeper {} lines)",
        diff.join("\n"),
        ours.len(),
        theirs.len()
    );
}

/// Runs `cmd` and returns its standard output; panics with both outputs, naming `what`,
/// when it fails.
pub fn output_ok(cmd: &mut std::process::Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} did not run: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}");
    assert!(
        out.status.success(),
        "{what} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Running Apache ZooKeeper's own Java tools from the Debian package (`zookeeper`), which
/// must read what zk-log writes.
pub mod java {
    /// Debian's jars for Apache Curator's recipes and their dependencies.
    pub const CURATOR_JARS: &[&str] = &[
        "curator-client",
        "curator-framework",
        "curator-recipes",
        "zookeeper",
        "zookeeper-jute",
        "guava",
        "slf4j-api",
        "netty-handler",
        "netty-transport",
        "netty-common",
        "netty-buffer",
    ];

    use std::collections::BTreeMap;
    use std::ffi::OsStr;
    use std::path::Path;
    use std::process::Command;

    /// ZooKeeper's jar as Debian installs it.
    pub const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";

    /// Whether java and ZooKeeper's jar are installed. Without them a test says so and
    /// returns; under `CI=true` a missing tool is a failure (CI installs them).
    pub fn tools_available() -> bool {
        let ok = Path::new(ZK_JAR).exists()
            && Command::new("java")
                .arg("-version")
                .output()
                .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                std::env::var("CI").is_err(),
                "CI must install Apache ZooKeeper (Debian package zookeeper) and Java"
            );
            println!("SKIPPED: {ZK_JAR} or java missing (apt-get install zookeeper)");
        }
        ok
    }

    /// The classpath of `classes` plus Debian's jars named `jars` (`/usr/share/java/J.jar`).
    pub fn classpath(classes: &Path, jars: &[&str]) -> String {
        let mut cp = vec![classes.display().to_string()];
        cp.extend(jars.iter().map(|j| format!("/usr/share/java/{j}.jar")));
        cp.join(":")
    }

    /// Compiles `source` into `classes` against `jars`; panics with javac's output when it
    /// fails.
    pub fn javac(source: &Path, classes: &Path, jars: &[&str]) {
        std::fs::create_dir_all(classes).unwrap_or_else(|e| panic!("{}: {e}", classes.display()));
        let out = Command::new("javac")
            .arg("-d")
            .arg(classes)
            .arg("-cp")
            .arg(classpath(classes, jars))
            .arg(source)
            .output()
            .unwrap_or_else(|e| panic!("javac: {e}"));
        assert!(
            out.status.success(),
            "javac {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Whether `javac` and every jar of `jars` are installed; under `CI=true` their
    /// absence is a failure.
    pub fn jdk_with(jars: &[&str]) -> bool {
        let ok = jars
            .iter()
            .all(|j| Path::new(&format!("/usr/share/java/{j}.jar")).exists())
            && Command::new("javac")
                .arg("-version")
                .output()
                .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                std::env::var("CI").is_err(),
                "CI must install a JDK and the Debian jars {jars:?}"
            );
            println!("SKIPPED: needs javac and the Debian jars {jars:?}");
        }
        ok
    }

    /// Runs `class` from ZooKeeper's jar and returns its standard output; panics with its
    /// output when it fails.
    pub fn run<S: AsRef<OsStr>>(class: &str, args: &[S]) -> String {
        let out = Command::new("java")
            .arg("-cp")
            .arg(ZK_JAR)
            .arg(class)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running java {class}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{class} failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// The per-node fields of `SnapshotFormatter [-d]` text (ours or ZooKeeper's) that do
    /// not depend on locale: path -> `key = value` lines for the zxids, versions,
    /// ephemeralOwner and data (or dataLength). Times and our extra `acl` line are left out.
    pub fn formatter_fields(text: &str) -> BTreeMap<String, Vec<String>> {
        const KEYS: [&str; 9] = [
            "cZxid",
            "mZxid",
            "pZxid",
            "cversion",
            "dataVersion",
            "aclVersion",
            "ephemeralOwner",
            "dataLength",
            "data",
        ];
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if line.starts_with("Session Details") {
                break;
            }
            if line.starts_with('/') {
                current = Some(line.to_owned());
                out.entry(line.to_owned()).or_default();
            } else if let (Some(p), Some(field)) = (&current, line.strip_prefix("  ")) {
                let key = field.split(" = ").next().unwrap_or("");
                if KEYS.contains(&key) {
                    out.entry(p.clone()).or_default().push(field.to_owned());
                }
            }
        }
        // With data shown (`-d`), ZooKeeper prints no dataLength; we print both.
        for fields in out.values_mut() {
            if fields.iter().any(|f| f.starts_with("data = ")) {
                fields.retain(|f| !f.starts_with("dataLength = "));
            }
        }
        out
    }
}

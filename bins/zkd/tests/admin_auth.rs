//! Mutating AdminServer commands (`handoff`, `stat_reset`, the connection stat resets):
//! - without a superDigest, only from the server's own host: a request from another
//!   address is refused even when it says `X-Forwarded-For: 127.0.0.1`
//!   (CVE-2024-51504's lesson: only the socket's address counts);
//! - with a superDigest, only as the super user (`Authorization: digest super:PASSWORD`),
//!   from anywhere, loopback included; a wrong password is refused;
//! - read-only commands stay open.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zk_tests::free_port;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");
const SUPER_PW: &str = "adm1n-pw";

/// One of this host's own addresses that is not loopback (the route to a private
/// address picks it; no packet is sent).
fn non_loopback_ip() -> Option<IpAddr> {
    for probe in ["10.255.255.1:9", "192.168.255.1:9", "172.31.255.1:9"] {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        if s.connect(probe).is_ok() {
            if let Ok(a) = s.local_addr() {
                if !a.ip().is_loopback() && !a.ip().is_unspecified() {
                    return Some(a.ip());
                }
            }
        }
    }
    None
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, admin: u16, jvm: &str) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let client = free_port();
    std::fs::write(
        dir.join("zoo.cfg"),
        format!(
            "dataDir={}\nclientPort={client}\nadmin.serverAddress=0.0.0.0\nadmin.serverPort={admin}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let server = Server(
        Command::new(ZKD)
            .arg("--config")
            .arg(dir.join("zoo.cfg"))
            .env("SERVER_JVMFLAGS", jvm)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", admin)).is_err() {
        assert!(Instant::now() < deadline, "zkd's AdminServer did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// The status code of `GET path` sent to `to:port` with extra header lines.
fn status(to: IpAddr, port: u16, path: &str, headers: &str) -> u16 {
    let mut s = TcpStream::connect((to, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n{headers}\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

const MUTATING: &[&str] = &[
    "/commands/handoff?to=2",
    "/commands/stat_reset",
    "/commands/srst",
    "/commands/connection_stat_reset",
    "/commands/crst",
];

#[test]
fn mutating_admin_commands_need_the_host_or_the_super_user() {
    let base = std::env::temp_dir().join(format!("zkd-admin-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let lo: IpAddr = "127.0.0.1".parse().unwrap();

    // Without a superDigest: the host itself may; another address may not, whatever it
    // claims in forwarding headers.
    let admin = free_port();
    let server = start(&base.join("open"), admin, "");
    for path in MUTATING {
        // Allowed: standalone answers handoff with its reason (409), the resets with 200.
        assert_ne!(status(lo, admin, path, ""), 403, "{path} from loopback");
    }
    match non_loopback_ip() {
        Some(ip) => {
            for path in MUTATING {
                for forged in [
                    "",
                    "X-Forwarded-For: 127.0.0.1\r\n",
                    "X-Real-IP: 127.0.0.1\r\nForwarded: for=127.0.0.1\r\n",
                ] {
                    assert_eq!(
                        status(ip, admin, path, forged),
                        403,
                        "{path} from {ip} {forged:?}"
                    );
                }
            }
            assert_eq!(status(ip, admin, "/commands/srvr", ""), 200);
            println!("checked from {ip}: refused with and without forwarding headers");
        }
        None => {
            assert!(
                std::env::var("CI").is_err(),
                "CI machines have a non-loopback address to test from"
            );
            println!("SKIPPED the remote half: this host has no non-loopback address");
        }
    }
    drop(server);

    // With a superDigest: only the super user, from anywhere (loopback is not enough).
    let admin = free_port();
    let digest = zk_tree::acl::digest_id(&format!("super:{SUPER_PW}"));
    let server = start(
        &base.join("super"),
        admin,
        &format!("-Dzookeeper.DigestAuthenticationProvider.superDigest={digest}"),
    );
    let right = format!("Authorization: digest super:{SUPER_PW}\r\n");
    for path in MUTATING {
        assert_eq!(status(lo, admin, path, ""), 403, "{path} unauthenticated");
        assert_eq!(
            status(lo, admin, path, "Authorization: digest super:wrong\r\n"),
            403,
            "{path} with a wrong password"
        );
        assert_ne!(
            status(lo, admin, path, &right),
            403,
            "{path} as the super user"
        );
        if let Some(ip) = non_loopback_ip() {
            assert_ne!(
                status(ip, admin, path, &right),
                403,
                "{path} as the super user from {ip}"
            );
        }
    }
    for open in ["/commands/srvr", "/commands/mntr", "/readyz", "/healthz"] {
        assert_eq!(status(lo, admin, open, ""), 200, "{open}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&base);
}

//! No secret from the configuration ever appears in zkd's log, even at `trace`: SASL user
//! passwords and quorum passwords from the JAAS file, the superDigest, the key and trust
//! store passwords, and the credentials clients authenticate with (right or wrong). The
//! server runs with all of them, kazoo logs in with SASL DIGEST-MD5 and with digest auth
//! (the super user, and a wrong password), and the log is then searched.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zk_tests::free_port;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");
const SASL_PW: &str = "sasl-pw-Q7xv";
const QUORUM_PW: &str = "quorum-pw-Q7xv";
const SUPER_PW: &str = "super-pw-Q7xv";
const WRONG_PW: &str = "guess-pw-Q7xv";

#[test]
fn no_secret_from_the_configuration_reaches_the_log() {
    if !zk_tests::python_has("kazoo, puresasl") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("zkd-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = zk_tests::certs::generate(&dir.join("pki"));
    let (port, secure) = (free_port(), free_port());
    std::fs::write(
        dir.join("zoo.cfg"),
        format!(
            "dataDir={data}\nclientPort={port}\nsecureClientPort={secure}\nadmin.enableServer=false\n\
             authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
             ssl.keyStore.location={ks}\nssl.keyStore.password={pw}\nssl.keyStore.type=PKCS12\n\
             ssl.trustStore.location={ts}\nssl.trustStore.password={pw}\nssl.trustStore.type=PKCS12\n",
            data = dir.join("data").display(),
            ks = pki.server_p12.display(),
            ts = pki.ca_p12.display(),
            pw = zk_tests::certs::P12_PASSWORD,
        ),
    )
    .unwrap();
    let jaas = dir.join("jaas.conf");
    std::fs::write(
        &jaas,
        format!(
            "Server {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_bob=\"{SASL_PW}\";\n}};\n\
             QuorumServer {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_zkpeer=\"{QUORUM_PW}\";\n}};\n\
             QuorumLearner {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  username=\"zkpeer\"\n  password=\"{QUORUM_PW}\";\n}};\n"
        ),
    )
    .unwrap();
    let super_digest = zk_tree::acl::digest_id(&format!("super:{SUPER_PW}"));
    let super_hash = super_digest.split(':').nth(1).unwrap().to_owned();
    let log_path = dir.join("zkd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(ZKD)
        .arg("--config")
        .arg(dir.join("zoo.cfg"))
        .env("RUST_LOG", "trace")
        .env(
            "SERVER_JVMFLAGS",
            format!(
                "-Djava.security.auth.login.config={} -Dzookeeper.DigestAuthenticationProvider.superDigest={super_digest}",
                jaas.display()
            ),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "zkd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let script = format!(
        r#"
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
hosts = "127.0.0.1:{port}"
zk = KazooClient(hosts=hosts, sasl_options={{"mechanism": "DIGEST-MD5", "username": "bob", "password": "{SASL_PW}"}})
zk.start(timeout=15); zk.create("/s", b"x"); zk.stop(); zk.close()
zk = KazooClient(hosts=hosts, auth_data=[("digest", "super:{SUPER_PW}")])
zk.start(timeout=15); zk.get("/s"); zk.stop(); zk.close()
zk = KazooClient(hosts=hosts, auth_data=[("digest", "super:{WRONG_PW}")])
zk.start(timeout=15); zk.get_children("/"); zk.stop(); zk.close()
bad = KazooClient(hosts=hosts, sasl_options={{"mechanism": "DIGEST-MD5", "username": "bob", "password": "{WRONG_PW}"}}, connection_retry={{"max_tries": 1}})
try:
    bad.start(timeout=5)
except Exception:
    pass
bad.stop(); bad.close()
print("clients done")
"#
    );
    let py = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let py_out =
        String::from_utf8_lossy(&py.stdout).into_owned() + &String::from_utf8_lossy(&py.stderr);
    assert!(py_out.contains("clients done"), "kazoo: {py_out}");
    // SIGTERM, so shutdown logging is in too.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines = text.lines().count();
    assert!(
        text.contains("serving clients over TLS")
            && text.contains("SASL authenticated")
            && text.contains("SASL authentication failed"),
        "the log lacks the events this test provokes ({lines} lines):\n{text}"
    );
    for (what, secret) in [
        ("SASL user password", SASL_PW),
        ("quorum password", QUORUM_PW),
        ("super user password", SUPER_PW),
        ("superDigest hash", super_hash.as_str()),
        ("a client's wrong password", WRONG_PW),
        ("key/trust store password", zk_tests::certs::P12_PASSWORD),
    ] {
        let hit = text.lines().find(|l| l.contains(secret));
        assert!(
            hit.is_none(),
            "the {what} is in the log: {}",
            hit.unwrap_or_default()
        );
    }
    println!("searched {lines} log lines at trace level: no secret");
    let _ = std::fs::remove_dir_all(&dir);
}

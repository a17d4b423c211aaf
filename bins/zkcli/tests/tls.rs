//! zkcli over TLS, configured as zkCli.sh users do it: `zookeeper.client.secure` and the
//! `zookeeper.ssl.*` properties in CLIENT_JVMFLAGS or a `-client-configuration` file.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use zk_server::tls::ClientAuth;
use zk_tests::certs;
use zk_tests::zkd::Zkd;

const ZKCLI: &str = env!("CARGO_BIN_EXE_zkcli");

#[test]
fn zkcli_connects_over_tls_with_a_client_certificate() {
    let dir = std::env::temp_dir().join(format!("zkcli-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pki = certs::generate(&dir.join("pki"));
    let mut tls = pki.server_tls(ClientAuth::Need);
    tls.handshake_timeout_ms = 2000;
    let zkd = Zkd::start(&dir.join("data"), move |c| {
        c.secure_client_addr = Some(([127, 0, 0, 1], 0).into());
        c.tls = tls;
    });
    let secure = zkd.secure_addr.unwrap().to_string();
    let props = format!(
        "zookeeper.client.secure=true\nzookeeper.ssl.keyStore.location={}\nzookeeper.ssl.keyStore.type=PEM\nzookeeper.ssl.trustStore.location={}\nzookeeper.ssl.trustStore.type=PEM\n",
        pki.client_pem.display(),
        pki.ca.display()
    );
    // A -client-configuration file.
    let file = dir.join("client.properties");
    std::fs::write(&file, &props).unwrap();
    let out = Command::new(ZKCLI)
        .args(["-server", &secure, "-client-configuration"])
        .arg(&file)
        .arg("whoami")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("x509: {}", pki.client_dn)), "{text}");
    // The same as -D properties in CLIENT_JVMFLAGS.
    let flags: String = props.lines().map(|l| format!("-D{l} ")).collect();
    let out = Command::new(ZKCLI)
        .args(["-server", &secure, "create", "/from-flags", "x"])
        .env("CLIENT_JVMFLAGS", flags)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Created /from-flags\n"
    );
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

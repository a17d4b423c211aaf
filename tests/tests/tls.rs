//! TLS on the client port, checked with clients no one here wrote:
//! - kazoo over TLS with a client certificate (`ssl.clientAuth=need`): CRUD, watches, an
//!   `x509` ACL naming the certificate's subject; no certificate, or one from another CA,
//!   is refused (`tests/kazoo/tls.py`);
//! - bad input: a plain-text client on the TLS port, a handshake that stops half-way
//!   (dropped after the handshake timeout while others are served);
//! - startup errors name the key to fix (JKS store, missing trust store, wrong password).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use zk_server::tls::{ClientAuth, Store, TlsSettings};
use zk_tests::certs::{self, Pki};
use zk_tests::zkd::Zkd;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zkd-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn settings(pki: &Pki, auth: ClientAuth) -> TlsSettings {
    pki.server_tls(auth)
}

fn start(dir: &std::path::Path, pki: &Pki) -> Zkd {
    start_with(dir, pki, None)
}

fn start_with(dir: &std::path::Path, pki: &Pki, super_user: Option<String>) -> Zkd {
    let mut tls = settings(pki, ClientAuth::Need);
    tls.super_user = super_user;
    Zkd::start(&dir.join("data"), move |c| {
        c.secure_client_addr = Some(([127, 0, 0, 1], 0).into());
        c.tls = tls;
    })
}

fn has_kazoo() -> bool {
    zk_tests::python_has("kazoo")
}

#[test]
fn kazoo_over_tls_with_client_certificates() {
    if !has_kazoo() {
        return;
    }
    let dir = temp("kazoo");
    let pki = certs::generate(&dir.join("pki"));
    let zkd = start(&dir, &pki);
    let secure = zkd.secure_addr.unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kazoo/tls.py");
    let run = |addr: std::net::SocketAddr, extra: &[&str]| {
        let text = zk_tests::output_ok(
            Command::new("python3")
                .arg(&script)
                .arg(addr.to_string())
                .arg(&pki.ca)
                .arg(&pki.client_cert)
                .arg(&pki.client_key)
                .arg(&pki.other_cert)
                .arg(&pki.other_key)
                .arg(&pki.client_dn)
                .args(extra),
            "kazoo over TLS",
        );
        assert!(text.contains("all TLS checks passed"), "{text}");
    };
    run(secure, &[]);
    // An expired client certificate from the trusted CA: refused.
    assert_eq!(
        probe(secure, &[&pki.ca, &pki.expired_cert, &pki.expired_key]),
        "refused",
        "expired certificate"
    );
    assert_eq!(
        probe(secure, &[&pki.ca, &pki.client_cert, &pki.client_key]),
        "connected"
    );
    // The plain port still serves, and says where the secure one is.
    assert_eq!(
        zk_tests::zookeeper::four_letter(zkd.addr, "ruok").as_deref(),
        Some("imok")
    );
    let conf = zk_tests::zookeeper::four_letter(zkd.addr, "conf").unwrap();
    assert!(
        conf.contains(&format!("secureClientPort={}", secure.port())),
        "{conf}"
    );
    drop(zkd);
    // The same certificate named as X509AuthenticationProvider.superUser reads everything.
    let zkd = start_with(&dir.join("super"), &pki, Some(pki.client_dn.clone()));
    run(zkd.secure_addr.unwrap(), &["super"]);
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plain_text_and_stalled_handshakes_are_dropped() {
    let dir = temp("bad");
    let pki = certs::generate(&dir.join("pki"));
    let zkd = start(&dir, &pki);
    let secure = zkd.secure_addr.unwrap();

    // A plain ZooKeeper handshake on the TLS port: the server hangs up, no answer.
    let mut plain = TcpStream::connect(secure).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut connect = vec![0, 0, 0, 44];
    connect.extend_from_slice(&[0; 44]);
    plain.write_all(&connect).unwrap();
    let mut buf = [0u8; 64];
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "a plain client gets a TLS alert or a closed socket, not a ZooKeeper answer"
    );

    // A handshake that starts and never finishes is dropped after the timeout (1 s here)...
    let mut stalled = TcpStream::connect(secure).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x00, 0x50]).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let n = stalled.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(8));
    // ...and meanwhile the server kept serving others.
    assert_eq!(
        zk_tests::zookeeper::four_letter(zkd.addr, "ruok").as_deref(),
        Some("imok")
    );
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_tls_configuration_names_the_key() {
    let dir = temp("config");
    let pki = certs::generate(&dir.join("pki"));
    // A JKS key store: refused with how to convert it.
    let mut s = settings(&pki, ClientAuth::Need);
    let jks = dir.join("server.jks");
    std::fs::write(&jks, b"\xfe\xed\xfe\xed").unwrap();
    s.key_store = Some(Store {
        location: jks,
        password: Some("secret".into()),
        kind: None,
    });
    let e = zk_server::tls::server_config(&s).unwrap_err();
    assert_eq!(e.key, "ssl.keyStore.type");
    assert!(e.problem.contains("keytool -importkeystore"), "{e}");
    assert!(!e.to_string().contains("secret"), "no password in messages");
    // clientAuth=need without a trust store.
    let mut s = settings(&pki, ClientAuth::Need);
    s.trust_store = None;
    assert_eq!(
        zk_server::tls::server_config(&s).unwrap_err().key,
        "ssl.trustStore.location"
    );
    // A PKCS12 store with the wrong password (here: not PKCS12 at all).
    let mut s = settings(&pki, ClientAuth::None);
    s.key_store = Some(Store {
        location: pki.server.clone(),
        password: Some("wrong".into()),
        kind: Some("PKCS12".into()),
    });
    let e = zk_server::tls::server_config(&s).unwrap_err();
    assert_eq!(e.key, "ssl.keyStore.password");
    assert!(e.problem.contains("server.pem"), "names the file: {e}");
    // The same settings from a zoo.cfg: parsed, refused with the key, no secret shown.
    let text = format!(
        "dataDir=/tmp/x\nsecureClientPort=2281\nssl.keyStore.location={}\nssl.keyStore.type=JKS\nssl.keyStore.password=hunter2\nssl.clientAuth=none\n",
        pki.server.display()
    );
    let props = zk_server::config::parse_properties(&text);
    let config = zk_server::Config::from_properties(&props, &Default::default()).unwrap();
    assert_eq!(config.secure_client_addr.unwrap().port(), 2281);
    assert!(
        !format!("{config:?}").contains("hunter2"),
        "no password in Debug"
    );
    let e = zk_server::tls::server_config(&config.tls).unwrap_err();
    assert_eq!(e.key, "ssl.keyStore.type");
    assert!(!e.to_string().contains("hunter2"));
    // SERVER_JVMFLAGS carry the same keys with a `zookeeper.` prefix; zoo.cfg wins.
    let sys = zk_server::Config::system_properties(
        "-Dzookeeper.ssl.clientAuth=want -Dzookeeper.ssl.keyStore.type=PEM",
    );
    let config = zk_server::Config::from_properties(&props, &sys).unwrap();
    assert_eq!(
        config.tls.client_auth,
        ClientAuth::None,
        "zoo.cfg over JVM flags"
    );
    assert_eq!(config.tls.key_store.unwrap().kind.as_deref(), Some("JKS"));
    let config = zk_server::Config::from_properties(&Default::default(), &sys).unwrap();
    assert_eq!(config.tls.client_auth, ClientAuth::Want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Debian's zookeeper.jar names its dependencies in its manifest, but not the two Netty
/// jars its Netty socket (which TLS needs) also uses; a later `-cp` adds them.
const NETTY_CP: &str = "-cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar";

/// Runs `script` through zkCli.sh with `flags` as CLIENT_JVMFLAGS; the output without log
/// noise, the connection line and blank lines.
fn zkcli_sh(addr: std::net::SocketAddr, flags: &str, script: &[u8]) -> String {
    let mut child = Command::new("/usr/share/zookeeper/bin/zkCli.sh")
        .arg("-server")
        .arg(addr.to_string())
        .env("CLIENT_JVMFLAGS", flags)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script).unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter(|l| !l.starts_with("SLF4J") && !l.starts_with("Connecting to") && !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// zkCli.sh (Java, Netty client socket) with the `zookeeper.ssl.*` client properties.
fn zkcli_over_tls(addr: std::net::SocketAddr, pki: &Pki) -> String {
    let flags = format!(
        "{NETTY_CP} -Dzookeeper.client.secure=true \
         -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
         -Dzookeeper.ssl.keyStore.location={} -Dzookeeper.ssl.keyStore.type=PEM \
         -Dzookeeper.ssl.trustStore.location={} -Dzookeeper.ssl.trustStore.type=PEM",
        pki.client_pem.display(),
        pki.ca.display()
    );
    zkcli_sh(
        addr,
        &flags,
        b"create /jtls secure\nget /jtls\nwhoami\ndelete /jtls\nls /\nquit\n",
    )
}

/// zkCli.sh logging in with SASL DIGEST-MD5 (the JAAS `Client` section), Java's own SASL.
fn zkcli_with_sasl(addr: std::net::SocketAddr, dir: &std::path::Path) -> String {
    let client_jaas = dir.join("client-jaas.conf");
    std::fs::write(
        &client_jaas,
        "Client {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n username=\"bob\"\n password=\"bobsecret\";\n};\n",
    )
    .unwrap();
    zkcli_sh(
        addr,
        &format!("-Djava.security.auth.login.config={}", client_jaas.display()),
        b"whoami\ncreate /sasl-acl x sasl:bob:cdrwa\ngetAcl /sasl-acl\nget /sasl-acl\ndelete /sasl-acl\nquit\n",
    )
}

#[test]
fn zkcli_sh_over_tls_sees_the_same_on_zkd_and_zookeeper() {
    if !zk_tests::zookeeper::available() {
        return;
    }
    // One zoo.cfg and one SERVER_JVMFLAGS, with TLS and SASL, as a ZooKeeper user has them.
    let dir = temp("zkcli");
    let pki = certs::generate(&dir.join("pki"));
    let jaas = dir.join("jaas.conf");
    std::fs::write(&jaas, JAAS).unwrap();
    let secure_port = zk_tests::free_port();
    let zoo_cfg = format!(
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
         secureClientPort={secure_port}\n\
         ssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
         ssl.trustStore.location={}\nssl.trustStore.type=PEM\n\
         ssl.clientAuth=need\n\
         authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
        pki.server.display(),
        pki.ca.display()
    );
    let jvm_flags = format!(
        "{NETTY_CP} -Dzookeeper.authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider \
         -Djava.security.auth.login.config={} -Dzookeeper.superUser=super",
        jaas.display()
    );

    // zkd reads exactly those.
    let parsed = zk_server::Config::from_properties(
        &zk_server::config::parse_properties(&zoo_cfg),
        &zk_server::Config::system_properties(&jvm_flags),
    )
    .unwrap();
    assert_eq!(
        parsed.secure_client_addr.map(|a| a.port()),
        Some(secure_port)
    );
    let zkd = Zkd::start(&dir.join("data"), move |c| {
        c.secure_client_addr = parsed.secure_client_addr;
        c.tls = parsed.tls;
        c.sasl_users = parsed.sasl_users;
        c.sasl_super_user = parsed.sasl_super_user;
    });
    let ours = zkcli_over_tls(zkd.secure_addr.unwrap(), &pki);
    let ours_sasl = zkcli_with_sasl(zkd.addr, &dir);
    if has_pure_sasl() {
        run_sasl_script(zkd.addr, &[]);
    }
    drop(zkd);
    println!("zkd, SASL:\n{ours_sasl}");
    assert!(ours_sasl.contains("state:SaslAuthenticated"), "{ours_sasl}");
    assert!(ours_sasl.contains("sasl: bob"), "{ours_sasl}");
    println!("zkd:\n{ours}");
    assert!(ours.contains("x509: CN=client1,O=zk-tests"), "{ours}");
    assert!(ours.contains("\nsecure\n"), "{ours}");

    // And so does Apache ZooKeeper 3.8.
    let real = zk_tests::zookeeper::ZooKeeper::start("tls", &zoo_cfg, &jvm_flags);
    let theirs = zkcli_over_tls(([127, 0, 0, 1], secure_port).into(), &pki);
    let theirs_sasl = zkcli_with_sasl(real.addr, &dir);
    if has_pure_sasl() {
        run_sasl_script(real.addr, &[]);
    }
    drop(real);
    println!("ZooKeeper:\n{theirs}");
    assert_eq!(ours, theirs);
    assert_eq!(ours_sasl, theirs_sasl);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ZK_PKI_DIR=/some/dir cargo test -p zk-tests --test tls write_pki -- --ignored` writes a
/// test PKI for trying clients by hand.
#[test]
#[ignore]
fn write_pki() {
    let dir = std::env::var("ZK_PKI_DIR").unwrap_or_else(|_| "/tmp/zk-pki".into());
    let pki = certs::generate(std::path::Path::new(&dir));
    println!("{pki:#?}");
}

fn probe(addr: std::net::SocketAddr, args: &[&std::path::Path]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kazoo/tls_probe.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(addr.to_string());
    if args.is_empty() {
        cmd.arg("plain");
    }
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn pkcs12_stores_port_unification_and_reload_without_restart() {
    if !has_kazoo() {
        return;
    }
    let dir = temp("p12");
    let pki = certs::generate(&dir.join("pki1"));
    let next = certs::generate(&dir.join("pki2"));
    let key_store = dir.join("server-live.p12");
    std::fs::copy(&pki.server_p12, &key_store).unwrap();
    let p12 = |path: &std::path::Path| Store {
        location: path.to_path_buf(),
        password: Some(certs::P12_PASSWORD.into()),
        kind: Some("PKCS12".into()),
    };
    let tls = TlsSettings {
        key_store: Some(p12(&key_store)),
        trust_store: Some(p12(&pki.ca_p12)),
        client_auth: ClientAuth::Need,
        handshake_timeout_ms: 2000,
        ..TlsSettings::default()
    };
    let zkd = Zkd::start(&dir.join("data"), move |c| {
        c.port_unification = true;
        c.tls = tls;
    });
    let (ca, cert, key) = (&pki.ca, &pki.client_cert, &pki.client_key);
    // One port, both kinds of client.
    assert_eq!(
        probe(zkd.addr, &[]),
        "connected",
        "plain on the unified port"
    );
    assert_eq!(
        probe(zkd.addr, &[ca, cert, key]),
        "connected",
        "TLS on the unified port"
    );
    // A client that only trusts the next CA does not trust today's server certificate...
    assert_eq!(probe(zkd.addr, &[&next.ca, cert, key]), "refused");
    // ...until the key store file is replaced: no restart needed.
    std::fs::copy(&next.server_p12, &key_store).unwrap();
    let mut now = String::new();
    for _ in 0..20 {
        now = probe(zkd.addr, &[&next.ca, cert, key]);
        if now == "connected" {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(now, "connected", "the new server certificate is in use");
    assert_eq!(
        probe(zkd.addr, &[ca, cert, key]),
        "refused",
        "the old one is gone"
    );
    // No store password in what the server shows about itself.
    for word in ["conf", "envi", "srvr", "mntr"] {
        let text = zk_tests::zookeeper::four_letter(zkd.addr, word).unwrap_or_default();
        assert!(
            !text.contains(certs::P12_PASSWORD),
            "{word} shows a password"
        );
    }
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

const JAAS: &str = r#"Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret";
};
"#;

fn has_pure_sasl() -> bool {
    zk_tests::python_has("kazoo, puresasl")
}

fn sasl_server(dir: &std::path::Path, enforce: bool) -> Zkd {
    std::fs::create_dir_all(dir).unwrap();
    let jaas = dir.join("jaas.conf");
    std::fs::write(&jaas, JAAS).unwrap();
    // Configured as ZooKeeper users do it: JVM flags and zoo.cfg keys.
    let mut cfg = String::from(
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
    );
    if enforce {
        cfg.push_str("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n");
    }
    let sys = zk_server::Config::system_properties(&format!(
        "-Djava.security.auth.login.config={} -Dzookeeper.superUser=super",
        jaas.display()
    ));
    let parsed =
        zk_server::Config::from_properties(&zk_server::config::parse_properties(&cfg), &sys)
            .unwrap();
    Zkd::start(&dir.join("data"), move |c| {
        c.sasl_users = parsed.sasl_users;
        c.sasl_super_user = parsed.sasl_super_user;
        c.enforce_auth = parsed.enforce_auth;
        c.enforce_auth_schemes = parsed.enforce_auth_schemes;
    })
}

fn run_sasl_script(addr: std::net::SocketAddr, extra: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kazoo/sasl.py");
    let text = zk_tests::output_ok(
        Command::new("python3")
            .arg(script)
            .arg(addr.to_string())
            .args(extra),
        "kazoo SASL",
    );
    assert!(text.contains("all SASL checks passed"), "{text}");
}

#[test]
fn kazoo_sasl_digest_md5_against_a_jaas_file() {
    if !has_pure_sasl() {
        return;
    }
    let dir = temp("sasl");
    let zkd = sasl_server(&dir, false);
    run_sasl_script(zkd.addr, &[]);
    drop(zkd);
    // The same configuration starts Apache ZooKeeper 3.8, and the same script passes.
    if zk_tests::zookeeper::available() {
        let real = real_sasl_server(&dir, false);
        run_sasl_script(real.addr, &[]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn real_sasl_server(dir: &std::path::Path, enforce: bool) -> zk_tests::zookeeper::ZooKeeper {
    let mut cfg = String::from(
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
    );
    if enforce {
        cfg.push_str("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n");
    }
    zk_tests::zookeeper::ZooKeeper::start(
        if enforce { "sasl-enforced" } else { "sasl" },
        &cfg,
        &format!(
            "-Djava.security.auth.login.config={} -Dzookeeper.superUser=super",
            dir.join("jaas.conf").display()
        ),
    )
}

#[test]
fn enforced_auth_refuses_unauthenticated_sessions() {
    if !has_pure_sasl() {
        return;
    }
    let dir = temp("sasl-enforced");
    let zkd = sasl_server(&dir, true);
    run_sasl_script(zkd.addr, &["enforced"]);
    drop(zkd);
    if zk_tests::zookeeper::available() {
        let real = real_sasl_server(&dir, true);
        run_sasl_script(real.addr, &["enforced"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zk_client_over_tls_authenticates_with_its_certificate() {
    let dir = temp("zk-client");
    let pki = certs::generate(&dir.join("pki"));
    let zkd = start(&dir, &pki);
    let secure = zkd.secure_addr.unwrap().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tls = zk_client::TlsOptions {
            trust_store: Some(pki.ca.clone()),
            key_store: Some(pki.client_pem.clone()),
            hostname_verification: true,
        };
        let zk = zk_client::Client::builder(&secure)
            .tls(tls.clone())
            .connect()
            .await
            .unwrap();
        zk.create(
            "/over-tls",
            "x",
            zk_client::well_known::open_acl_unsafe(),
            zk_client::CreateMode::Persistent,
        )
        .await
        .unwrap();
        let who: Vec<String> = zk
            .who_am_i()
            .await
            .unwrap()
            .into_iter()
            .map(|c| format!("{}:{}", c.auth_scheme, c.user))
            .collect();
        assert!(who.contains(&format!("x509:{}", pki.client_dn)), "{who:?}");
        zk.close().await;
        // Without a certificate the server (clientAuth=need) refuses the handshake.
        let anonymous = zk_client::TlsOptions {
            key_store: None,
            ..tls
        };
        let refused = zk_client::Client::builder(&secure)
            .tls(anonymous)
            .session_timeout(std::time::Duration::from_secs(2))
            .connect()
            .await;
        assert!(refused.is_err());
    });
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The web console over HTTPS (`admin.forceHttps`): a client certificate signs the browser
/// in as its subject (`x509`), so `x509` ACLs apply to it; without one the console stays
/// read-only; a plain-HTTP request gets no page.
#[test]
fn the_console_over_https_signs_in_with_a_client_certificate() {
    let dir = temp("console-https");
    let pki = certs::generate(&dir.join("pki"));
    let tls = settings(&pki, ClientAuth::Need);
    let zkd = Zkd::start(&dir.join("data"), move |c| {
        c.tls = tls;
        c.admin_https = true;
    });
    let admin = zkd.admin_addr.unwrap();
    // A node only the certificate's subject may use, made through the plain client port.
    let dn = pki.client_dn.clone();
    zk_tests::runtime().block_on(async {
        let c = zk_client::Client::connect(&zkd.addr.to_string())
            .await
            .unwrap();
        let acl = vec![zk_proto::Acl {
            perms: zk_proto::perms::ALL,
            id: zk_proto::Id {
                scheme: "x509".into(),
                id: dn.clone(),
            },
        }];
        c.create(
            "/cert-only",
            b"for the cert".to_vec(),
            acl,
            zk_client::CreateMode::Persistent,
        )
        .await
        .unwrap();
        c.close().await;
    });
    let script = r#"
import http.client, json, ssl, sys
host, port, ca, cert, key = sys.argv[1:6]
def call(method, path, body=None, with_cert=False):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    if with_cert:
        ctx.load_cert_chain(cert, key)
    c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    c.request(method, path, body=body)
    r = c.getresponse()
    return [r.status, json.loads(r.read() or b"null")]
out = {
    "anon_whoami": call("GET", "/ui/api/whoami"),
    "anon_write": call("POST", "/ui/api/create?path=/by-anon", b"x"),
    "anon_read": call("GET", "/ui/api/node?path=/cert-only"),
    "cert_whoami": call("GET", "/ui/api/whoami", with_cert=True),
    "cert_read": call("GET", "/ui/api/node?path=/cert-only", with_cert=True),
    "cert_write": call("POST", "/ui/api/set?path=/cert-only&version=0", b"changed", with_cert=True),
}
print(json.dumps(out))
"#;
    let text = zk_tests::output_ok(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg("127.0.0.1")
            .arg(admin.port().to_string())
            .arg(&pki.ca)
            .arg(&pki.client_cert)
            .arg(&pki.client_key),
        "the console over HTTPS",
    );
    println!("{text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["anon_whoami"][1]["read_only"], true);
    assert_eq!(v["anon_write"][0], 401);
    assert_eq!(v["anon_read"][0], 403, "x509 ACL without the certificate");
    assert_eq!(v["cert_whoami"][1]["user"], pki.client_dn.as_str());
    assert_eq!(v["cert_whoami"][1]["read_only"], false);
    assert_eq!(v["cert_read"][0], 200);
    assert_eq!(v["cert_read"][1]["text"], "for the cert");
    assert_eq!(v["cert_write"][0], 200);
    assert_eq!(v["cert_write"][1]["stat"]["version"], 1);
    // Plain HTTP on the HTTPS port gets no page.
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"GET /ui HTTP/1.0\r\n\r\n");
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(!String::from_utf8_lossy(&reply).contains("zkd console"));
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each client port has its own frame limit: `secureClientPort.maxPacket` lowered to 64 KiB
/// refuses (closes on) a 70,000-byte frame on the TLS port, while the plain port, at
/// `jute.maxbuffer`, waits for the rest of the same frame; the refusal is counted.
#[test]
fn each_client_port_has_its_own_max_packet() {
    let dir = temp("maxpacket");
    let pki = certs::generate(&dir.join("pki"));
    let tls = settings(&pki, ClientAuth::Need);
    let zkd = Zkd::start(&dir.join("data"), move |c| {
        c.secure_client_addr = Some(([127, 0, 0, 1], 0).into());
        c.tls = tls;
        c.secure_max_packet = Some(65_536);
    });
    let secure = zkd.secure_addr.unwrap();
    // Over TLS: a length prefix of 70,000 and a little of the body.
    let script = r#"
import socket, ssl, struct, sys
host, port, ca, cert, key = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=5))
s.sendall(struct.pack(">i", 70000) + b"\0" * 1000)
try:
    print("closed" if s.recv(1) == b"" else "answered")
except socket.timeout:
    print("waiting")
except (ConnectionError, ssl.SSLError):
    print("closed")
"#;
    let text = zk_tests::output_ok(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg("127.0.0.1")
            .arg(secure.port().to_string())
            .arg(&pki.ca)
            .arg(&pki.client_cert)
            .arg(&pki.client_key),
        "an oversized frame over TLS",
    );
    assert_eq!(text.trim(), "closed");
    // The plain port takes frames up to jute.maxbuffer: it waits for the rest.
    let mut plain = TcpStream::connect(zkd.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    plain.write_all(&70_000i32.to_be_bytes()).unwrap();
    plain.write_all(&[0u8; 1000]).unwrap();
    let mut one = [0u8; 1];
    let waited = matches!(plain.read(&mut one), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
    assert!(waited, "the plain port refused a frame under its limit");
    let monitor: serde_json::Value =
        serde_json::from_str(&zkd.admin_get("/commands/monitor")).unwrap();
    assert_eq!(monitor["guardrail_oversized_frames"], 1, "{monitor}");
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

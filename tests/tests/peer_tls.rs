//! TLS between ensemble members (`sslQuorum`, `ssl.quorum.*`): three zkd servers with
//! certificates from one CA form an ensemble and replicate writes; a server whose
//! certificate comes from another CA never joins (the others refuse its handshake and it
//! refuses theirs), while the two trusted servers keep a quorum.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use zk_client::{well_known, Client, CreateMode};
use zk_server::tls::{ClientAuth, Store, TlsSettings};
use zk_tests::certs::Pki;

fn tls(key: &std::path::Path, ca: &std::path::Path) -> TlsSettings {
    TlsSettings {
        key_store: Some(Store {
            location: key.to_path_buf(),
            password: None,
            kind: Some("PEM".into()),
        }),
        trust_store: Some(Store {
            location: ca.to_path_buf(),
            password: None,
            kind: Some("PEM".into()),
        }),
        client_auth: ClientAuth::Need,
        handshake_timeout_ms: 1000,
        ..TlsSettings::default()
    }
}

fn mode(addr: std::net::SocketAddr) -> Option<String> {
    let text = zk_tests::zookeeper::four_letter(addr, "srvr")?;
    text.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::to_owned)
}

/// Servers 1 and 2 (trusted certificates) make a quorum over TLS and serve; server 3,
/// configured with `third`, never gets a link: it never follows or leads.
fn two_replicate_and_the_third_stays_out(name: &str, third: fn(&Pki) -> TlsSettings) {
    let dir = std::env::temp_dir().join(format!("zkd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pki = zk_tests::certs::generate(&dir);
    let good = tls(&pki.peer, &pki.ca);
    let bad = third(&pki);
    let servers = zk_tests::zkd::start_ensemble_with(name, 3, move |c| {
        c.quorum_tls = Some(if c.server_id == 3 {
            bad.clone()
        } else {
            good.clone()
        });
    });
    let rt = zk_tests::runtime();
    let both = format!("{},{}", servers[0].addr, servers[1].addr);
    rt.block_on(async {
        let zk = Client::connect(&both).await.unwrap();
        zk.wait_connected(Duration::from_secs(20)).await.unwrap();
        zk.create(
            &format!("/{name}"),
            "",
            well_known::open_acl_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        zk.close().await;
    });
    let modes: Vec<Option<String>> = servers[..2].iter().map(|s| mode(s.addr)).collect();
    assert!(
        modes.contains(&Some("leader".into())) && modes.contains(&Some("follower".into())),
        "{modes:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let m = mode(servers[2].addr);
        assert!(
            !matches!(m.as_deref(), Some("follower" | "leader")),
            "server 3 joined: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A certificate from another CA: the others refuse its handshake and it refuses theirs.
#[test]
fn members_with_trusted_certificates_replicate_and_a_stranger_stays_out() {
    two_replicate_and_the_third_stays_out("peer-tls", |pki| tls(&pki.other_peer, &pki.other_ca));
}

/// A mis-identified member: server 3 presents a certificate from the trusted CA, but for
/// another host (`peer-a.test`) than its `server.3` line names (127.0.0.1). The others
/// refuse it (the acceptor checks the dialler's certificate against the claimed id's
/// host, as the dialler checks the acceptor's), so it never joins.
#[test]
fn a_trusted_certificate_for_another_host_does_not_make_a_member() {
    two_replicate_and_the_third_stays_out("peer-tls-id", |pki| tls(&pki.elsewhere_peer, &pki.ca));
}

//! Two servers on loopback: the higher id dials, both see the link come up, messages arrive
//! in order both ways; a server of another ensemble is refused.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use zk_peer::{Event, Member, NetConfig, Network, QuorumAuth};
use zk_zab::peer::Msg;

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event in time")
        .expect("the network is running")
}

/// Two bound listeners and the member list naming them as servers 1 and 2.
async fn two_listeners() -> (TcpListener, TcpListener, Vec<Member>) {
    let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let members = vec![
        Member {
            id: 1,
            addr: l1.local_addr().unwrap().to_string(),
        },
        Member {
            id: 2,
            addr: l2.local_addr().unwrap().to_string(),
        },
    ];
    (l1, l2, members)
}

#[tokio::test]
async fn a_link_is_fifo_both_ways_and_strangers_are_refused() {
    let (l1, l2, members) = two_listeners().await;
    let a1 = members[0].addr.clone();
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let cfg = |me| NetConfig {
        me,
        members: members.clone(),
        ensemble: "test".into(),
        auth: None,
        accept_unknown: false,
        tls: None,
    };
    let n1 = Network::start(cfg(1), l1, tx1);
    let n2 = Network::start(cfg(2), l2, tx2);
    assert_eq!(next(&mut rx1).await, Event::LinkUp { peer: 2 });
    assert_eq!(next(&mut rx2).await, Event::LinkUp { peer: 1 });
    for i in 0..200u8 {
        n2.send(1, &Msg::Request(vec![i]));
        n1.send(2, &Msg::Ping(vec![i]));
    }
    for i in 0..200u8 {
        assert_eq!(
            next(&mut rx1).await,
            Event::Msg {
                from: 2,
                msg: Msg::Request(vec![i])
            }
        );
        assert_eq!(
            next(&mut rx2).await,
            Event::Msg {
                from: 1,
                msg: Msg::Ping(vec![i])
            }
        );
    }

    // Server 3 of another ensemble dials server 1 and is refused: no link comes up.
    let l3 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx3, mut rx3) = mpsc::unbounded_channel();
    let _n3 = Network::start(
        NetConfig {
            me: 3,
            members: vec![Member {
                id: 1,
                addr: a1.clone(),
            }],
            ensemble: "another".into(),
            auth: None,
            accept_unknown: false,
            tls: None,
        },
        l3,
        tx3,
    );
    let quiet = tokio::time::timeout(Duration::from_millis(800), rx3.recv()).await;
    assert!(quiet.is_err(), "no event for the stranger: {quiet:?}");
    let quiet = tokio::time::timeout(Duration::from_millis(100), rx1.recv()).await;
    assert!(quiet.is_err(), "server 1 saw nothing of it: {quiet:?}");
}

fn auth(user: &str, password: &str) -> Option<QuorumAuth> {
    Some(QuorumAuth {
        user: user.into(),
        password: password.into(),
        users: [("zk".to_owned(), "secret".to_owned())]
            .into_iter()
            .collect(),
    })
}

/// Server 1 with quorum authentication, and a dialer as `me` with `credentials`: whether a
/// link comes up.
async fn link_comes_up(me: u64, credentials: Option<QuorumAuth>) -> bool {
    let (l1, l2, members) = two_listeners().await;
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let (tx2, _rx2) = mpsc::unbounded_channel();
    let _n1 = Network::start(
        NetConfig {
            me: 1,
            members: members.clone(),
            ensemble: "e".into(),
            auth: auth("zk", "secret"),
            accept_unknown: false,
            tls: None,
        },
        l1,
        tx1,
    );
    let _n2 = Network::start(
        NetConfig {
            me,
            members,
            ensemble: "e".into(),
            auth: credentials,
            accept_unknown: false,
            tls: None,
        },
        l2,
        tx2,
    );
    matches!(
        tokio::time::timeout(Duration::from_secs(2), rx1.recv()).await,
        Ok(Some(Event::LinkUp { peer })) if peer == me
    )
}

#[tokio::test]
async fn quorum_authentication_keeps_strangers_out() {
    assert!(
        link_comes_up(2, auth("zk", "secret")).await,
        "the right password"
    );
    assert!(
        !link_comes_up(2, auth("zk", "guess")).await,
        "a wrong password"
    );
    assert!(
        !link_comes_up(2, auth("other", "secret")).await,
        "an unknown user"
    );
    assert!(!link_comes_up(2, None).await, "no credentials");
    assert!(
        !link_comes_up(7, auth("zk", "secret")).await,
        "an id outside the ensemble"
    );
}

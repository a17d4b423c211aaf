//! Two servers on loopback: the higher id dials, both see the link come up, messages arrive
//! in order both ways; a server of another ensemble is refused.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use zk_peer::{Event, Member, NetConfig, Network};
use zk_zab::peer::Msg;

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event in time")
        .expect("the network is running")
}

#[tokio::test]
async fn a_link_is_fifo_both_ways_and_strangers_are_refused() {
    let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a1 = l1.local_addr().unwrap();
    let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let members = vec![
        Member {
            id: 1,
            addr: a1.to_string(),
        },
        Member {
            id: 2,
            addr: l2.local_addr().unwrap().to_string(),
        },
    ];
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let cfg = |me| NetConfig {
        me,
        members: members.clone(),
        ensemble: "test".into(),
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
                addr: a1.to_string(),
            }],
            ensemble: "another".into(),
        },
        l3,
        tx3,
    );
    let quiet = tokio::time::timeout(Duration::from_millis(800), rx3.recv()).await;
    assert!(quiet.is_err(), "no event for the stranger: {quiet:?}");
    let quiet = tokio::time::timeout(Duration::from_millis(100), rx1.recv()).await;
    assert!(quiet.is_err(), "server 1 saw nothing of it: {quiet:?}");
}

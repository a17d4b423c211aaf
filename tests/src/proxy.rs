//! A TCP proxy a test can cut: every connection through it is dropped, and new ones are
//! refused, until it is healed. It stands between a client and a server to simulate a
//! network failure without touching either.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A running proxy to one upstream address.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let cut = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, l) = (cut.clone(), live.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(down) = conn else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = up.set_nodelay(true);
                let _ = down.set_nodelay(true);
                if let (Ok(a), Ok(b)) = (down.try_clone(), up.try_clone()) {
                    if let Ok(mut live) = l.lock() {
                        live.push(a);
                        live.push(b);
                    }
                }
                pipe(&down, &up);
                pipe(&up, &down);
            }
        });
        Proxy { addr, cut, live }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Ok(mut live) = self.live.lock() {
            for s in live.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Accepts connections again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// A proxy in front of one member's peer port that delays what it forwards, for the chaos
/// suite (`tc netem` is not available). It listens on `listen`, connects to `upstream`
/// from the source address `source_for` names for the connecting peer (so the member's
/// firewall rules still know who is talking), and holds each chunk, in both directions,
/// for `delay_for(peer)` before passing it on, keeping the stream's order.
pub struct DelayProxy {
    pub listen: SocketAddr,
}

impl std::fmt::Debug for DelayProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DelayProxy({})", self.listen)
    }
}

type PeerFn<T> = Arc<dyn Fn(std::net::IpAddr) -> T + Send + Sync>;

impl DelayProxy {
    /// Starts the proxy on its own thread and runtime; it runs until the process ends.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        source_for: PeerFn<Option<std::net::IpAddr>>,
        delay_for: PeerFn<std::time::Duration>,
    ) -> std::io::Result<DelayProxy> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    let Ok((down, peer)) = listener.accept().await else {
                        continue;
                    };
                    let (source_for, delay_for) = (source_for.clone(), delay_for.clone());
                    tokio::spawn(async move {
                        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                            return;
                        };
                        if let Some(ip) = source_for(peer.ip()) {
                            if socket.bind(SocketAddr::new(ip, 0)).is_err() {
                                return;
                            }
                        }
                        let Ok(up) = socket.connect(upstream).await else {
                            return;
                        };
                        let _ = up.set_nodelay(true);
                        let _ = down.set_nodelay(true);
                        let (down_r, down_w) = down.into_split();
                        let (up_r, up_w) = up.into_split();
                        let ip = peer.ip();
                        let (d1, d2) = (delay_for.clone(), delay_for);
                        tokio::spawn(delayed_pipe(down_r, up_w, move || d1(ip)));
                        tokio::spawn(delayed_pipe(up_r, down_w, move || d2(ip)));
                    });
                }
            });
        });
        Ok(DelayProxy { listen })
    }
}

/// Copies `from` to `to`, each chunk sent `delay()` after it was read.
async fn delayed_pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: impl Fn() -> std::time::Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let at = tokio::time::Instant::now() + delay();
                if tx.send((at, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    /// Through the proxy, an echo takes the delay twice (there and back), and arrives whole
    /// and in order; with the delay set to zero it is fast again.
    #[test]
    fn the_delay_proxy_delays_both_ways_and_keeps_order() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = echo.local_addr().unwrap();
        thread::spawn(move || {
            for conn in echo.incoming() {
                let Ok(mut s) = conn else { continue };
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(300));
        let d = delay_ms.clone();
        let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), crate::free_port());
        DelayProxy::start(
            listen,
            upstream,
            Arc::new(|_| None),
            Arc::new(move |_| Duration::from_millis(d.load(Ordering::Relaxed))),
        )
        .unwrap();
        let mut s = TcpStream::connect(listen).unwrap();
        let round_trip = |s: &mut TcpStream, msg: &[u8]| {
            let started = Instant::now();
            for chunk in msg.chunks(3) {
                s.write_all(chunk).unwrap();
            }
            let mut got = vec![0u8; msg.len()];
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, msg);
            started.elapsed()
        };
        let slow = round_trip(&mut s, b"the quick brown fox");
        assert!(slow >= Duration::from_millis(600), "{slow:?}");
        delay_ms.store(0, Ordering::Relaxed);
        let fast = round_trip(&mut s, b"jumps over");
        assert!(fast < slow, "{fast:?} vs {slow:?}");
    }
}

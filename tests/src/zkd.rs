//! zkd in-process on its own runtime thread, for tests that drive it with blocking
//! clients or external programs.

use crate::free_port;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;

/// A running zkd; stops (and waits for it) on drop.
#[derive(Debug)]
pub struct Zkd {
    pub addr: SocketAddr,
    /// The TLS port, when the configuration asked for one (`secure_client_addr`).
    pub secure_addr: Option<SocketAddr>,
    /// The AdminServer (`/commands`, `/metrics`), unless `admin_enabled` was turned off.
    pub admin_addr: Option<SocketAddr>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Zkd {
    /// Starts zkd on 127.0.0.1 (a free port) over `data_dir`, after `configure` adjusts the
    /// test defaults (small preallocation, all four-letter words, TTL nodes on).
    pub fn start(data_dir: &Path, configure: impl FnOnce(&mut zk_server::Config)) -> Zkd {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let mut config = zk_server::Config {
            data_dir: data_dir.to_path_buf(),
            prealloc_kb: 64,
            extended_types_enabled: true,
            four_letter_words: vec!["*".into()],
            ..zk_server::Config::default()
        };
        configure(&mut config);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a free port");
                let addr = listener.local_addr().expect("bound");
                config.client_addr = addr;
                let secure = match config.secure_client_addr {
                    Some(_) => Some(
                        tokio::net::TcpListener::bind("127.0.0.1:0")
                            .await
                            .expect("a free port"),
                    ),
                    None => None,
                };
                let secure_addr = secure.as_ref().map(|l| l.local_addr().expect("bound"));
                config.secure_client_addr = secure_addr;
                let admin = match config.admin_enabled {
                    true => Some(
                        tokio::net::TcpListener::bind("127.0.0.1:0")
                            .await
                            .expect("a free port"),
                    ),
                    false => None,
                };
                let admin_addr = admin.as_ref().map(|l| l.local_addr().expect("bound"));
                if let Some(a) = admin_addr {
                    config.admin_addr = a;
                }
                let _ = addr_tx.send((addr, secure_addr, admin_addr));
                let stop = tokio::task::spawn_blocking(move || {
                    let _ = stop_rx.recv();
                });
                let listeners = zk_server::Listeners {
                    client: Some(listener),
                    secure,
                    admin,
                };
                if let Err(e) = zk_server::run_with_listeners(config, listeners, async {
                    let _ = stop.await;
                })
                .await
                {
                    panic!("zkd failed: {e}");
                }
            });
        });
        let (addr, secure_addr, admin_addr) = addr_rx.recv().expect("zkd started");
        Zkd {
            addr,
            secure_addr,
            admin_addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Zkd {
    /// An AdminServer path's body (`/commands/monitor`, `/metrics`, ...).
    pub fn admin_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.admin_addr.expect("the AdminServer is on");
        let mut s = std::net::TcpStream::connect(addr).expect("the AdminServer answers");
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("a request");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
    }
}

impl Drop for Zkd {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `n` in-process zkd servers forming one ensemble on loopback (tickTime 200 ms), each
/// with its own data directory under `name`.
pub fn start_ensemble(name: &str, n: usize) -> Vec<Zkd> {
    start_ensemble_with(name, n, |_| {})
}

/// [`start_ensemble`], with `configure` adjusting every server's configuration.
pub fn start_ensemble_with(
    name: &str,
    n: usize,
    configure: impl Fn(&mut zk_server::Config) + Clone + Send + 'static,
) -> Vec<Zkd> {
    let base = std::env::temp_dir().join(format!("zkd-ens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let servers: Vec<zk_server::config::ServerSpec> = (0..n)
        .map(|i| zk_server::config::ServerSpec {
            id: i as u64 + 1,
            host: "127.0.0.1".into(),
            quorum_port: free_port(),
            election_port: free_port(),
            observer: false,
            client_port: None,
            client_host: None,
        })
        .collect();
    (0..n)
        .map(|i| {
            let servers = servers.clone();
            let configure = configure.clone();
            Zkd::start(&base.join(format!("s{}", i + 1)), move |c| {
                c.servers = servers;
                c.server_id = i as u8 + 1;
                c.tick_time_ms = 200;
                configure(c);
            })
        })
        .collect()
}

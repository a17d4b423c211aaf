//! An async ZooKeeper client on tokio, speaking the wire protocol of Apache ZooKeeper 3.9.
//!
//! - Every opcode: create / create2 / createContainer / createTTL, delete, exists, getData,
//!   setData, getACL, setACL, getChildren(2), getAllChildrenNumber, getEphemerals, sync,
//!   multi, multiRead, addWatch, removeWatches, checkWatches, auth, whoAmI, reconfig.
//! - A connect string with several hosts and a chroot (`h1:2181,h2:2181/app`); when a
//!   connection breaks, the client moves to another host and resumes the session with its id
//!   and password, re-sending auth and re-arming every watch (`setWatches2`). A session the
//!   ensemble has expired ends with `SessionExpired`; a client cut off from every server for
//!   longer than its session timeout declares the session expired itself.
//! - Watches are values: a one-shot watch is a future ([`OneshotWatch`]), a persistent
//!   watch a stream ([`PersistentWatch`]); session events and `watch = true` style watches go
//!   to an optional default watcher channel, as in the Java client.
//! - Errors are typed: [`Error::Code`] carries ZooKeeper's [`ErrorCode`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // A throwaway zkd in this process stands in for a real ensemble.
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # let dir = std::env::temp_dir().join(format!("zk-client-doc-{}", std::process::id()));
//! # let config = zk_server::Config { data_dir: dir.clone(), client_addr: addr, ..Default::default() };
//! # tokio::spawn(zk_server::run(config, listener, std::future::pending()));
//! # let server = addr.to_string();
//! use zk_client::{Client, CreateMode, EventType, well_known};
//!
//! // `server` is "host:port"; a chroot keeps this application under /app.
//! let root = Client::connect(&server).await?;
//! root.create("/app", "", well_known::open_acl_unsafe(), CreateMode::Persistent).await?;
//! let zk = Client::connect(&format!("{server}/app")).await?;
//! zk.create("/config", "v1", well_known::open_acl_unsafe(), CreateMode::Persistent).await?;
//! let (data, stat, watch) = zk.get_data_watch("/config").await?;
//! assert_eq!(data.as_deref(), Some(&b"v1"[..]));
//! zk.set_data("/config", "v2", stat.version).await?;
//! let event = watch.changed().await;
//! assert_eq!(event.event_type, EventType::NodeDataChanged);
//! assert_eq!(event.path.as_deref(), Some("/config"));
//! # zk.close().await;
//! # let _ = std::fs::remove_dir_all(dir);
//! # Ok(()) }
//! ```

mod actor;
mod client;
pub mod connect_string;
mod error;
mod tls;
mod watch;

pub use client::{
    Client, ClientBuilder, Data, DefaultWatch, Op, OpResult, ReadOp, ReadResult, State,
};
pub use error::{Error, Result};
pub use tls::TlsOptions;
pub use watch::{OneshotWatch, PersistentWatch, WatchedEvent};
pub use zk_proto::{
    perms, well_known, Acl, AddWatchMode, ClientInfo, CreateMode, ErrorCode, EventType, Id,
    KeeperState, Stat, WatcherType,
};

/// The node that holds the ensemble's dynamic configuration.
pub const CONFIG_NODE: &str = "/zookeeper/config";

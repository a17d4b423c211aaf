//! `zkbench`: a load generator for any ZooKeeper-compatible server, built on zk-client.
//!
//! ```text
//! zkbench --servers 127.0.0.1:2181 --workload get --clients 32 --in-flight 16 --duration 10
//! ```
//! Every reply is checked (a read returns the bytes written for that znode, a create returns
//! its path), so impossible numbers cannot be reported. Prints a table row and one JSON line
//! with throughput, latency percentiles (p50, p99, p99.9, max) and errors.

/// jemalloc rather than glibc's malloc, as in zkd: the load's tasks allocate requests on
/// one worker thread and the session task frees them on another, and glibc's arenas then
/// contend on a lock (perf: a tenth of zkbench's CPU under setData in malloc, free and their
/// lock waits). A load generator that spends less of the machine leaves more to the server
/// it measures.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use zk_client::{well_known, Client, CreateMode, EventType};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// getData of existing znodes.
    Get,
    /// setData of existing znodes.
    Set,
    /// create of new persistent znodes.
    Create,
    /// create of persistent sequential znodes.
    CreateSeq,
    /// exists of existing znodes.
    Exists,
    /// getChildren of a parent with `--znodes` children.
    Children,
    /// getData / setData, `--read-percent` reads.
    Mixed,
    /// create an ephemeral znode and delete it.
    Ephemeral,
    /// open a session and close it.
    Connect,
    /// `--clients` sessions watch one znode; time from setData to the last notification.
    Watch,
}

#[derive(Debug, Parser)]
#[command(version, about = "Load generator for ZooKeeper-compatible servers")]
struct Args {
    /// Connect string.
    #[arg(long, default_value = "127.0.0.1:2181")]
    servers: String,
    #[arg(long, value_enum, default_value = "get")]
    workload: Workload,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests in flight per session.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Bytes per value.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Znodes to read and write.
    #[arg(long, default_value_t = 1000)]
    znodes: usize,
    /// Share of reads in `mixed`, in percent.
    #[arg(long, default_value_t = 90)]
    read_percent: u64,
    /// Stop after this many requests in all (0: run for `--duration`); with `create` and
    /// `--value-size 100` this fills a server with N znodes.
    #[arg(long, default_value_t = 0)]
    ops: u64,
    /// Keep the znodes created (to measure a full server afterwards).
    #[arg(long)]
    keep: bool,
    /// A label for the output (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Runtime worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// An existing znode to work under (e.g. a subtree with its own `readPolicy`).
    #[arg(long, default_value = "/")]
    parent: String,
}

/// The value written to znode `i`: recognisable, so reads can be checked; exactly `size`
/// bytes when `size` is at least 24.
fn value(i: usize, round: u64, size: usize) -> Bytes {
    let mut v = Vec::with_capacity(size.max(24));
    v.extend_from_slice(format!("{i}:{round}:").as_bytes());
    if size >= 24 {
        v.resize(size, b'x');
    }
    Bytes::from(v)
}

fn check_value(i: usize, data: &Option<Bytes>, size: usize) -> bool {
    let Some(d) = data else { return false };
    // The value starts with `i` in decimal and a colon (read without formatting `i`).
    let digits = d.iter().take_while(|b| b.is_ascii_digit()).count();
    let written = std::str::from_utf8(&d[..digits])
        .ok()
        .and_then(|s| s.parse::<usize>().ok());
    written == Some(i) && d.get(digits) == Some(&b':') && (size < 24 || d.len() == size)
}

struct Recorder {
    latencies_us: Vec<u32>,
    errors: u64,
}

fn main() {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        runtime.worker_threads(args.threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zkbench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("zkbench: {e}");
        std::process::exit(1);
    }
}

async fn connect(servers: &str) -> Result<Client, String> {
    Client::builder(servers)
        .session_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {servers}: {e}"))
}

async fn run(args: Args) -> Result<(), String> {
    let parent = args.parent.trim_end_matches('/');
    let root = format!("{parent}/zkbench-{}", std::process::id());
    let admin = connect(&args.servers).await?;
    let open = well_known::open_acl_unsafe;
    admin
        .create(&root, None::<Bytes>, open(), CreateMode::Persistent)
        .await
        .map_err(|e| format!("create {root}: {e}"))?;
    // Fill the znodes the workloads read and write.
    if matches!(
        args.workload,
        Workload::Get | Workload::Set | Workload::Exists | Workload::Children | Workload::Mixed
    ) {
        let mut tasks = Vec::new();
        let per = args.znodes.div_ceil(16);
        for t in 0..16 {
            let zk = admin.clone();
            let (root, size, znodes) = (root.clone(), args.value_size, args.znodes);
            tasks.push(tokio::spawn(async move {
                for i in (t * per)..((t + 1) * per).min(znodes) {
                    zk.create(
                        &format!("{root}/n{i}"),
                        value(i, 0, size),
                        open(),
                        CreateMode::Persistent,
                    )
                    .await
                    .map_err(|e| format!("fill: {e}"))?;
                }
                Ok::<(), String>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
    }
    let seconds = if args.ops > 0 {
        86_400.0
    } else {
        args.duration
    };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let created = Arc::new(AtomicU64::new(0));
    let (mut latencies, errors) = if args.workload == Workload::Watch {
        watch_fanout(&args, &root, deadline).await?
    } else {
        load(&args, &root, deadline, &created).await?
    };
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let ops = latencies.len() as u64;
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    let throughput = ops as f64 / elapsed;
    let workload = args
        .workload
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string());
    println!(
        "{:<10} {:<10} clients={:<4} in-flight={:<3} ops={:<9} ops/s={:<10.0} p50={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms errors={}",
        args.label,
        workload,
        args.clients,
        args.in_flight,
        ops,
        throughput,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(1.0),
        errors
    );
    println!(
        "{}",
        serde_json::json!({
            "label": args.label, "workload": workload, "clients": args.clients,
            "in_flight": args.in_flight, "value_size": args.value_size, "ops": ops,
            "seconds": elapsed, "ops_per_sec": throughput, "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "p999_ms": pct(0.999), "max_ms": pct(1.0), "errors": errors,
        })
    );
    // Clean up (best effort), so the next run starts from the same tree: the znodes a
    // create run made are deleted by name first (hundreds of thousands of children make a
    // getChildren answer larger than jute.maxbuffer), then whatever is left.
    if !args.keep {
        if args.workload == Workload::Create {
            delete_named(&admin, &root, created.load(Ordering::Relaxed)).await;
        }
        let _ = delete_tree(&admin, &root).await;
    }
    admin.close().await;
    if errors > 0 {
        return Err(format!("{errors} requests failed or returned wrong data"));
    }
    Ok(())
}

/// Deletes `root/c0` .. `root/c{n-1}`, 64 at a time in flight.
async fn delete_named(zk: &Client, root: &str, n: u64) {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (zk, root, next) = (zk.clone(), root.to_owned(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let _ = zk.delete(&format!("{root}/c{i}"), -1).await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn delete_tree(zk: &Client, root: &str) -> Result<(), zk_client::Error> {
    let children = zk.get_children(root).await?;
    for chunk in children.chunks(500) {
        let ops = chunk
            .iter()
            .map(|c| zk_client::Op::Delete {
                path: format!("{root}/{c}"),
                version: -1,
            })
            .collect();
        zk.multi(ops).await?;
    }
    zk.delete(root, -1).await
}

/// `clients` sessions × `in_flight` loops, each issuing the workload's requests until the
/// deadline and recording every latency.
/// `counter` counts the writes (`create` names its znodes `c0`, `c1`, ... after it).
async fn load(
    args: &Args,
    root: &str,
    deadline: Instant,
    counter: &Arc<AtomicU64>,
) -> Result<(Vec<u32>, u64), String> {
    let mut sessions = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        sessions.push(connect(&args.servers).await?);
    }
    let counter = counter.clone();
    let issued = Arc::new(AtomicU64::new(0));
    let limit = args.ops;
    let mut tasks = Vec::new();
    // Every znode's path, made once rather than formatted per request.
    let paths: Arc<Vec<String>> = Arc::new(
        (0..args.znodes.max(1))
            .map(|i| format!("{root}/n{i}"))
            .collect(),
    );
    for (s, zk) in sessions.iter().enumerate() {
        for k in 0..args.in_flight {
            let zk = zk.clone();
            let root = root.to_string();
            let paths = paths.clone();
            let counter = counter.clone();
            let issued = issued.clone();
            let (workload, znodes, size, read_percent, servers) = (
                args.workload,
                args.znodes.max(1),
                args.value_size,
                args.read_percent,
                args.servers.clone(),
            );
            let seed = (s * 1000 + k) as u64;
            tasks.push(tokio::spawn(async move {
                let mut rec = Recorder {
                    latencies_us: Vec::new(),
                    errors: 0,
                };
                let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let open = well_known::open_acl_unsafe;
                while Instant::now() < deadline {
                    if limit > 0 && issued.fetch_add(1, Ordering::Relaxed) >= limit {
                        break;
                    }
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let i = (rng % znodes as u64) as usize;
                    let path = &paths[i];
                    let t = Instant::now();
                    let ok = match workload {
                        Workload::Get => zk
                            .get_data(path)
                            .await
                            .is_ok_and(|(d, _)| check_value(i, &d, size)),
                        Workload::Exists => zk.exists(path).await.is_ok_and(|s| s.is_some()),
                        Workload::Children => zk
                            .get_children(&root)
                            .await
                            .is_ok_and(|c| c.len() >= znodes),
                        Workload::Set => {
                            let round = counter.fetch_add(1, Ordering::Relaxed);
                            zk.set_data(path, value(i, round, size), -1).await.is_ok()
                        }
                        Workload::Mixed => {
                            if rng % 100 < read_percent {
                                zk.get_data(path)
                                    .await
                                    .is_ok_and(|(d, _)| check_value(i, &d, size))
                            } else {
                                let round = counter.fetch_add(1, Ordering::Relaxed);
                                zk.set_data(path, value(i, round, size), -1).await.is_ok()
                            }
                        }
                        Workload::Create => {
                            let n = counter.fetch_add(1, Ordering::Relaxed);
                            let p = format!("{root}/c{n}");
                            zk.create(&p, value(0, n, size), open(), CreateMode::Persistent)
                                .await
                                .is_ok_and(|got| got == p)
                        }
                        Workload::CreateSeq => zk
                            .create(
                                &format!("{root}/s-"),
                                value(0, 0, size),
                                open(),
                                CreateMode::PersistentSequential,
                            )
                            .await
                            .is_ok_and(|got| got.starts_with(&format!("{root}/s-"))),
                        Workload::Ephemeral => {
                            let n = counter.fetch_add(1, Ordering::Relaxed);
                            let p = format!("{root}/e{n}");
                            zk.create(&p, value(0, n, size), open(), CreateMode::Ephemeral)
                                .await
                                .is_ok()
                                && zk.delete(&p, 0).await.is_ok()
                        }
                        Workload::Connect => match connect(&servers).await {
                            Ok(c) => {
                                c.close().await;
                                true
                            }
                            Err(_) => false,
                        },
                        Workload::Watch => false,
                    };
                    let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    if ok {
                        rec.latencies_us.push(us);
                    } else {
                        rec.errors += 1;
                    }
                }
                rec
            }));
        }
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let rec = t.await.map_err(|e| e.to_string())?;
        latencies.extend(rec.latencies_us);
        errors += rec.errors;
    }
    for zk in sessions {
        zk.close().await;
    }
    Ok((latencies, errors))
}

/// `clients` sessions each watch one znode; each round sets it and measures the time until
/// the last session heard NodeDataChanged.
async fn watch_fanout(
    args: &Args,
    root: &str,
    deadline: Instant,
) -> Result<(Vec<u32>, u64), String> {
    let started = Instant::now();
    let path = format!("{root}/watched");
    let writer = connect(&args.servers).await?;
    writer
        .create(
            &path,
            value(0, 0, args.value_size),
            well_known::open_acl_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .map_err(|e| e.to_string())?;
    // Sessions open 100 at a time (10,000 one by one would take most of a run).
    let mut watchers = Vec::with_capacity(args.clients);
    while watchers.len() < args.clients {
        let batch = (args.clients - watchers.len()).min(100);
        let opening: Vec<_> = (0..batch)
            .map(|_| {
                let servers = args.servers.clone();
                tokio::spawn(async move { connect(&servers).await })
            })
            .collect();
        for o in opening {
            watchers.push(o.await.map_err(|e| e.to_string())??);
        }
    }
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    let mut round = 0u64;
    // The run's time starts once every session is open (10,000 take a while to open).
    let deadline = Instant::now() + deadline.saturating_duration_since(started);
    while Instant::now() < deadline {
        round += 1;
        // Every watcher arms its watch and then waits in its own task, noting when it heard
        // the event, so the time is the server's fan-out, not how fast this loop gets to
        // them. The write starts once every watch is armed.
        // Each task says when its watch is armed (or failed: counted when it is awaited).
        let (armed_tx, mut armed_rx) = tokio::sync::mpsc::channel::<()>(watchers.len().max(1));
        let mut waits = Vec::with_capacity(watchers.len());
        for zk in &watchers {
            let (zk, path, armed) = (zk.clone(), path.clone(), armed_tx.clone());
            waits.push(tokio::spawn(async move {
                let watch = zk.get_data_watch(&path).await;
                let _ = armed.send(()).await;
                drop(armed);
                let Ok((_, _, w)) = watch else {
                    return None;
                };
                tokio::time::timeout(Duration::from_secs(30), w.changed())
                    .await
                    .ok()
                    .filter(|e| e.event_type == EventType::NodeDataChanged)
                    .map(|_| Instant::now())
            }));
        }
        drop(armed_tx);
        for _ in 0..waits.len() {
            if armed_rx.recv().await.is_none() {
                break;
            }
        }
        let t = Instant::now();
        if writer
            .set_data(&path, value(0, round, args.value_size), -1)
            .await
            .is_err()
        {
            errors += 1;
            continue;
        }
        let mut last = t;
        for w in waits {
            match w.await.ok().flatten() {
                Some(heard) => last = last.max(heard),
                None => errors += 1,
            }
        }
        latencies.push(last.duration_since(t).as_micros().min(u128::from(u32::MAX)) as u32);
    }
    for zk in watchers {
        zk.close().await;
    }
    writer.close().await;
    Ok((latencies, errors))
}

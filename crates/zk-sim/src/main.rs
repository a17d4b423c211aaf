//! `zk-sim`: runs seeds of the ensemble simulator and prints `N seeds, V violations` and the
//! coverage counts. Every failing seed prints a one-line replay command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use zk_sim::{run, Coverage, Options, Report};

#[derive(Parser, Debug)]
#[command(
    about = "Deterministic ensemble simulator: real zk-zab peers and zk-tree trees under injected faults"
)]
struct Args {
    /// How many seeds to run (from --start).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Run exactly this seed (and nothing else).
    #[arg(long)]
    seed: Option<u64>,
    /// Ensemble size: 3 or 5; without it seeds alternate between both.
    #[arg(long)]
    nodes: Option<usize>,
    /// Stop starting seeds after this many seconds (the count run is printed).
    #[arg(long)]
    time_box: Option<u64>,
    /// A file of seeds to run first (one `SEED NODES` per line, `#` comments).
    #[arg(long)]
    regressions: Option<PathBuf>,
    /// Print role changes and faults (with --seed).
    #[arg(long)]
    trace: bool,
    /// Fail unless at least this many seeds ran (a time box must not make the run vacuous).
    #[arg(long, default_value_t = 0)]
    min_seeds: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
}

fn nodes_for(seed: u64, fixed: Option<usize>) -> usize {
    fixed.unwrap_or(if seed % 2 == 0 { 5 } else { 3 })
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(n) = args.nodes {
        if n != 3 && n != 5 {
            eprintln!("zk-sim: --nodes must be 3 or 5");
            return ExitCode::from(2);
        }
    }
    let mut work: Vec<(u64, usize)> = Vec::new();
    if let Some(path) = &args.regressions {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("zk-sim: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let seed = parts.next().and_then(|s| s.parse::<u64>().ok());
            let nodes = parts.next().and_then(|s| s.parse::<usize>().ok());
            match seed {
                Some(seed) => work.push((seed, nodes.unwrap_or(nodes_for(seed, args.nodes)))),
                None => {
                    eprintln!("zk-sim: bad line in {}: {line}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
    }
    match args.seed {
        Some(s) => work.push((s, nodes_for(s, args.nodes))),
        None => {
            for s in args.start..args.start.saturating_add(args.seeds) {
                work.push((s, nodes_for(s, args.nodes)));
            }
        }
    }
    let work = Arc::new(work);
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<Report>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let trace = args.trace;
    let deadline = args.time_box.map(|s| started + Duration::from_secs(s));
    let threads: Vec<_> = (0..args.jobs.max(1))
        .map(|_| {
            let (work, next, stop, results) =
                (work.clone(), next.clone(), stop.clone(), results.clone());
            std::thread::spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&(seed, nodes)) = work.get(k) else {
                    return;
                };
                let mut opts = Options::new(seed, nodes);
                opts.trace = trace;
                let report = run(&opts);
                if !report.violations.is_empty() {
                    for v in &report.violations {
                        println!("seed {seed} ({nodes} nodes): {v}");
                    }
                    println!(
                        "  replay: cargo run --release -p zk-sim -- --seed {seed} --nodes {nodes}"
                    );
                }
                if let Ok(mut r) = results.lock() {
                    r.push(report);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let results = match results.lock() {
        Ok(r) => r.clone(),
        Err(_) => return ExitCode::from(2),
    };
    let mut coverage = Coverage::default();
    let mut failed = 0;
    let mut violations = 0;
    let mut heal: Vec<u64> = Vec::new();
    for r in &results {
        coverage.add(&r.coverage);
        violations += r.violations.len();
        if !r.violations.is_empty() {
            failed += 1;
        }
        heal.extend(r.heal_to_write_ms);
    }
    heal.sort_unstable();
    let pct = |p: usize| {
        heal.get(heal.len().saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "heal to first write: p50 {} ms, p99 {} ms, max {} ms; {:.1} s",
        pct(50),
        pct(99),
        heal.last().copied().unwrap_or(0),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{} seeds, {} violations ({} failing seeds); {}",
        results.len(),
        violations,
        failed,
        coverage
    );
    if results.len() < args.min_seeds {
        println!(
            "only {} seeds ran, fewer than --min-seeds {}",
            results.len(),
            args.min_seeds
        );
        return ExitCode::FAILURE;
    }
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

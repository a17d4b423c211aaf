//! `zkcli`: Apache ZooKeeper's shell, `zkCli.sh`, as a native program.
//!
//! ```text
//! zkcli [-server host:port[,host:port]/chroot] [-timeout ms] [-r] [-waitforconnection]
//!       [--output json] [cmd args...]
//! ```
//! `zkcli compat --a HOST:PORT --b HOST:PORT` compares two servers' behaviour instead
//! (see `zk_cli::compat`); `zkcli backup list|verify DIR` and `zkcli restore ...` work
//! on zkd's continuous backups (see `zk_cli::backup`).
//!
//! With a command it runs that command and exits with its status (0 ok, 1 failed, 127
//! unknown command); otherwise it reads commands from a terminal (line editing, history in
//! `~/.zkcli_history`, tab completion of commands and znode paths) or from standard input.

use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use zk_cli::{sink, Format, Options, Shell};

const USAGE: &str = "usage: zkcli [-server host:port[,host:port...][/chroot]] [-timeout ms] [-r] [-waitforconnection] [--output json] [cmd args...]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("compat") {
        // `zkcli compat --a HOST:PORT --b HOST:PORT ...`: the compatibility oracle.
        let code = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(zk_cli::compat::main(&args[1..])),
            Err(e) => {
                eprintln!("zkcli: cannot start: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    if args.first().map(String::as_str) == Some("backup") {
        std::process::exit(zk_cli::backup::backup_main(&args[1..]));
    }
    if args.first().map(String::as_str) == Some("restore") {
        std::process::exit(zk_cli::backup::restore_main(&args[1..]));
    }
    let (opts, words) = match parse_args(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zkcli: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let json = opts.format == Format::Json;
    let mut shell = rt.block_on(Shell::start(
        opts,
        sink(std::io::stdout()),
        sink(std::io::stderr()),
    ));
    let code = if !words.is_empty() {
        let code = rt.block_on(shell.run_words(words));
        shell.mute_watches();
        rt.block_on(shell.close());
        code
    } else if std::io::stdin().is_terminal() {
        interactive(&rt, &mut shell)
    } else {
        if !json {
            println!("Welcome to ZooKeeper!");
            println!("JLine support is disabled");
        }
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            rt.block_on(shell.execute_line(&line));
            if shell.quitting() {
                break;
            }
        }
        if !shell.quitting() {
            shell.mute_watches();
            rt.block_on(shell.close());
        }
        shell.exit_code()
    };
    rt.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(code);
}

fn parse_args(args: &[String]) -> Result<(Options, Vec<String>), String> {
    let mut opts = Options::default();
    let mut words = Vec::new();
    // The Java client's system properties, as zkCli.sh users pass them, then the
    // -client-configuration file over them.
    let mut client_props: std::collections::BTreeMap<String, String> =
        std::env::var("CLIENT_JVMFLAGS")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|f| f.strip_prefix("-D"))
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("Error: no argument found for option {name}"))
        };
        match a.as_str() {
            "-server" | "--server" => opts.server = value(a)?,
            "-timeout" | "--timeout" => {
                let v = value(a)?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("-timeout: not a number of milliseconds: {v}"))?;
                opts.timeout = Duration::from_millis(ms);
            }
            "-r" => opts.read_only = true,
            "-waitforconnection" | "--waitforconnection" => opts.wait_for_connection = true,
            "-client-configuration" => {
                let f = value(a)?;
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| format!("-client-configuration {f}: {e}"))?;
                client_props.extend(properties(&text));
            }
            "--output" | "-output" => match value(a)?.as_str() {
                "json" => opts.format = Format::Json,
                "text" => opts.format = Format::Text,
                other => return Err(format!("--output: json or text, not {other}")),
            },
            "-h" | "--help" | "-help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--version" | "-version" => {
                println!("zkcli {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            _ if words.is_empty() && a.starts_with('-') => {
                // zkCli ignores flags it does not know.
            }
            _ => {
                words.push(a.clone());
                words.extend(it.by_ref().cloned());
                break;
            }
        }
    }
    opts.tls = tls_options(&client_props)?;
    Ok((opts, words))
}

/// `key=value` lines of a Java properties file (`#` comments).
fn properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            l.split_once(['=', ':'])
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// TLS settings from the Java client's properties (`zookeeper.client.secure` and
/// `zookeeper.ssl.*`); PEM stores only.
fn tls_options(
    props: &std::collections::BTreeMap<String, String>,
) -> Result<Option<zk_cli::TlsOptions>, String> {
    if props.get("zookeeper.client.secure").map(String::as_str) != Some("true") {
        return Ok(None);
    }
    for store in ["keyStore", "trustStore"] {
        if let Some(t) = props.get(&format!("zookeeper.ssl.{store}.type")) {
            if !t.eq_ignore_ascii_case("PEM") {
                return Err(format!(
                    "zookeeper.ssl.{store}.type={t}: zkcli reads PEM stores (convert with openssl)"
                ));
            }
        }
    }
    Ok(Some(zk_cli::TlsOptions {
        trust_store: props
            .get("zookeeper.ssl.trustStore.location")
            .map(Into::into),
        key_store: props.get("zookeeper.ssl.keyStore.location").map(Into::into),
        hostname_verification: props
            .get("zookeeper.ssl.hostnameVerification")
            .is_none_or(|v| v != "false"),
    }))
}

/// Completion through the live session; the shell's client is shared after each command.
struct ZkHelper {
    rt: tokio::runtime::Handle,
    client: Arc<Mutex<Option<zk_cli::Client>>>,
}

impl Completer for ZkHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let client = self.client.lock().ok().and_then(|c| c.clone());
        let found = self.rt.block_on(zk_cli::complete(client.as_ref(), head));
        Ok((
            start,
            found
                .into_iter()
                .map(|c| Pair {
                    display: c.clone(),
                    replacement: c,
                })
                .collect(),
        ))
    }
}

impl Helper for ZkHelper {}
impl Highlighter for ZkHelper {}
impl Validator for ZkHelper {}
impl Hinter for ZkHelper {
    type Hint = String;
}

fn history_file() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("ZKCLI_HISTORY") {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".zkcli_history"))
}

fn interactive(rt: &tokio::runtime::Runtime, shell: &mut Shell) -> i32 {
    println!("Welcome to ZooKeeper!");
    println!("Line editing is enabled (tab completes commands and paths)");
    let client = Arc::new(Mutex::new(shell.client()));
    let mut editor = match rustyline::Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("zkcli: no line editor: {e}");
            return 1;
        }
    };
    editor.set_helper(Some(ZkHelper {
        rt: rt.handle().clone(),
        client: client.clone(),
    }));
    // Events that arrive while the prompt waits are printed as they come, as in zkCli.
    let pump = shell.event_pump();
    let pumping = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still = pumping.clone();
    std::thread::spawn(move || {
        while still.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            pump();
        }
    });
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    loop {
        match editor.readline(&shell.prompt()) {
            Ok(line) => {
                let line = line.trim_end().to_string();
                if !line.is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(h) = &history {
                        let _ = editor.append_history(h);
                    }
                }
                rt.block_on(shell.execute_line(&line));
                if let Ok(mut c) = client.lock() {
                    *c = shell.client();
                }
                if shell.quitting() {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => {
                shell.mute_watches();
                rt.block_on(shell.close());
                break;
            }
        }
    }
    pumping.store(false, std::sync::atomic::Ordering::SeqCst);
    shell.exit_code()
}

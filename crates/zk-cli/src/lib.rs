//! The zkcli shell: every command of Apache ZooKeeper's `zkCli.sh` with its flags, output
//! and error messages (so scripts written against zkCli keep working), on top of
//! [`zk_client`], plus commands zkCli lacks (`tree`, `find-big`, `cp`, `mv`, `export`,
//! `import`) and `--output json` for scripts.
//!
//! The shell is a library so that the binary (`bins/zkcli`), tests and other tools drive it
//! the same way: [`Shell::execute_line`] runs one line, writing to the shell's stdout and
//! stderr sinks exactly what zkCli would write to its own.

pub mod backup;
mod commands;
pub mod compat;
pub mod text;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use zk_client::{State, WatchedEvent};

pub use zk_client::{Client, TlsOptions};

/// Where the shell writes: stdout and stderr of the process, or buffers in tests.
pub type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// Makes a [`Sink`] from any writer.
pub fn sink(w: impl Write + Send + 'static) -> Sink {
    Arc::new(Mutex::new(Box::new(w)))
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// zkCli's text, byte for byte.
    Text,
    /// One JSON object per command on stdout (errors as JSON on stderr), for scripts.
    Json,
}

/// The command line options zkCli takes.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-server`: a connect string, `host:port[,host:port]/chroot`.
    pub server: String,
    /// `-timeout`: session timeout.
    pub timeout: Duration,
    /// `-r`: accept a read-only server.
    pub read_only: bool,
    /// `-waitforconnection`: block until connected before the first command.
    pub wait_for_connection: bool,
    pub format: Format,
    /// TLS (`zookeeper.client.secure=true` in `-client-configuration` or CLIENT_JVMFLAGS).
    pub tls: Option<zk_client::TlsOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            server: "localhost:2181".into(),
            timeout: Duration::from_millis(30_000),
            read_only: false,
            wait_for_connection: false,
            format: Format::Text,
            tls: None,
        }
    }
}

/// One zkcli session: the connection, history, printwatches, output sinks.
pub struct Shell {
    opts: Options,
    host: String,
    zk: Option<Client>,
    print_watches: Arc<AtomicBool>,
    /// Watch and session events of the current client, printed at command boundaries (so a
    /// script's output is deterministic) and by [`Shell::event_pump`] while idle.
    events: Arc<Mutex<Option<mpsc::UnboundedReceiver<WatchedEvent>>>>,
    history: BTreeMap<usize, String>,
    count: usize,
    exit_code: i32,
    quit: bool,
    out: Sink,
    err: Sink,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("host", &self.host)
            .field("count", &self.count)
            .field("exit_code", &self.exit_code)
            .finish_non_exhaustive()
    }
}

/// A failed command: the message zkCli prints on stderr, and its exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    pub message: String,
    pub code: i32,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: 1,
        }
    }
}

impl Shell {
    /// Prints `Connecting to ...` and starts connecting (waiting only with
    /// `-waitforconnection`).
    pub async fn start(opts: Options, out: Sink, err: Sink) -> Shell {
        let mut shell = Shell {
            host: opts.server.clone(),
            opts,
            zk: None,
            print_watches: Arc::new(AtomicBool::new(true)),
            events: Arc::new(Mutex::new(None)),
            history: BTreeMap::new(),
            count: 0,
            exit_code: 0,
            quit: false,
            out,
            err,
        };
        if shell.opts.format == Format::Text {
            shell.print_out(&format!("Connecting to {}\n", shell.host));
        }
        let host = shell.host.clone();
        if let Err(e) = shell.connect(&host).await {
            shell.print_err(&format!("{}\n", e.message));
            shell.exit_code = e.code;
        }
        shell
    }

    /// zkCli's prompt: `[zk: host:port(CONNECTED) 3] `.
    pub fn prompt(&self) -> String {
        let state = self.zk.as_ref().map_or(State::Closed, Client::state);
        format!("[zk: {}({}) {}] ", self.host, state.java_name(), self.count)
    }

    /// The exit status of the last command (0 ok, 1 failed, 127 unknown command).
    pub fn exit_code(&self) -> i32 {
        self.exit_code
    }

    /// Whether `quit` was given.
    pub fn quitting(&self) -> bool {
        self.quit
    }

    /// The live client, if any (for completion).
    pub fn client(&self) -> Option<Client> {
        self.zk.clone()
    }

    /// The history, oldest first, as `history` lists it.
    pub fn history(&self) -> Vec<String> {
        self.history.values().cloned().collect()
    }

    async fn connect(&mut self, host: &str) -> Result<(), CliError> {
        if let Some(old) = self.zk.take() {
            old.close().await;
        }
        self.host = host.to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        self.drain_events();
        if let Ok(mut slot) = self.events.lock() {
            *slot = Some(rx);
        }
        let mut builder = Client::builder(host)
            .session_timeout(self.opts.timeout)
            .read_only(self.opts.read_only)
            .default_watcher(tx);
        if let Some(tls) = &self.opts.tls {
            builder = builder.tls(tls.clone());
        }
        let client = if self.opts.wait_for_connection {
            builder.connect().await
        } else {
            builder.start()
        };
        match client {
            Ok(c) => {
                self.zk = Some(c);
                Ok(())
            }
            Err(e) => Err(CliError::new(e.to_string())),
        }
    }

    /// Prints the events received so far (as zkCli's watcher does, when printwatches is on).
    pub fn drain_events(&self) {
        drain(&self.events, &self.print_watches, &self.out, self.json());
    }

    /// A function that prints pending events; an interactive front end calls it while
    /// waiting for input, so events show up without a command.
    pub fn event_pump(&self) -> impl Fn() + Send + 'static {
        let (events, on, out, json) = (
            self.events.clone(),
            self.print_watches.clone(),
            self.out.clone(),
            self.json(),
        );
        move || drain(&events, &on, &out, json)
    }

    pub(crate) fn print_out(&self, s: &str) {
        self.drain_events();
        if let Ok(mut w) = self.out.lock() {
            let _ = w.write_all(s.as_bytes());
            let _ = w.flush();
        }
    }

    pub(crate) fn print_err(&self, s: &str) {
        self.drain_events();
        if let Ok(mut w) = self.err.lock() {
            let _ = w.write_all(s.as_bytes());
            let _ = w.flush();
        }
    }

    pub(crate) fn json(&self) -> bool {
        self.opts.format == Format::Json
    }

    /// Runs one line as zkCli does: blank lines are skipped, anything else is numbered,
    /// kept in history, and executed.
    pub async fn execute_line(&mut self, line: &str) {
        if line.is_empty() {
            return;
        }
        self.history.insert(self.count, line.to_string());
        let words = text::tokenize(line);
        self.process(words).await;
        self.drain_events();
        self.count += 1;
    }

    /// Runs one command given as words (one-shot mode: `zkcli -server h:p get /x`).
    pub async fn run_words(&mut self, words: Vec<String>) -> i32 {
        self.process(words).await;
        self.exit_code
    }

    async fn process(&mut self, words: Vec<String>) {
        match self.dispatch(&words).await {
            Ok(()) => self.exit_code = 0,
            Err(e) => {
                self.exit_code = e.code;
                if self.json() {
                    self.print_err(&format!(
                        "{}\n",
                        serde_json::json!({"error": e.message, "exitCode": e.code})
                    ));
                } else {
                    self.print_err(&format!("{}\n", e.message));
                }
            }
        }
    }

    /// Closes the session (at `quit` or end of input).
    pub async fn close(&mut self) {
        if let Some(zk) = self.zk.take() {
            zk.close().await;
            self.drain_events();
        }
    }

    /// Completions for the end of `line` (see [`complete`]).
    pub async fn complete(&self, line: &str) -> Vec<String> {
        complete(self.zk.as_ref(), line).await
    }

    /// Stops printing watch events (used before a quiet close at end of input).
    pub fn mute_watches(&self) {
        self.print_watches.store(false, Ordering::SeqCst);
    }
}

fn drain(
    events: &Mutex<Option<mpsc::UnboundedReceiver<WatchedEvent>>>,
    on: &AtomicBool,
    out: &Sink,
    json: bool,
) {
    let Ok(mut slot) = events.lock() else {
        return;
    };
    let Some(rx) = slot.as_mut() else {
        return;
    };
    while let Ok(e) = rx.try_recv() {
        if !on.load(Ordering::SeqCst) {
            continue;
        }
        let text = if json {
            format!(
                "{}\n",
                serde_json::json!({"event": {
                    "state": format!("{:?}", e.state),
                    "type": format!("{:?}", e.event_type),
                    "path": e.path,
                }})
            )
        } else {
            format!("\nWATCHER::\n\n{e}\n")
        };
        if let Ok(mut w) = out.lock() {
            let _ = w.write_all(text.as_bytes());
            let _ = w.flush();
        }
    }
}

/// Completions for the word under the cursor at the end of `line`: command names for the
/// first word, znode paths (children asked from the server) after it.
pub async fn complete(zk: Option<&Client>, line: &str) -> Vec<String> {
    let words = text::tokenize(line);
    let ends_with_space = line.ends_with(char::is_whitespace);
    if words.is_empty() || (words.len() == 1 && !ends_with_space) {
        let prefix = words.first().map_or("", String::as_str);
        return commands::NAMES
            .iter()
            .filter(|n| n.starts_with(prefix))
            .map(|n| n.to_string())
            .collect();
    }
    let word = if ends_with_space {
        ""
    } else {
        words.last().map_or("", String::as_str)
    };
    if !word.starts_with('/') {
        return Vec::new();
    }
    let Some(zk) = zk else {
        return Vec::new();
    };
    let (dir, partial) = match word.rfind('/') {
        Some(0) => ("/", &word[1..]),
        Some(i) => (&word[..i], &word[i + 1..]),
        None => return Vec::new(),
    };
    let Ok(Ok(mut children)) =
        tokio::time::timeout(Duration::from_secs(2), zk.get_children(dir)).await
    else {
        return Vec::new();
    };
    children.sort();
    children
        .into_iter()
        .filter(|c| c.starts_with(partial))
        .map(|c| {
            if dir == "/" {
                format!("/{c}")
            } else {
                format!("{dir}/{c}")
            }
        })
        .collect()
}

//! The commands. Each reproduces its zkCli counterpart (3.8 output, 3.9 flags): what goes
//! to stdout, what goes to stderr, and the error message for each ZooKeeper error.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use zk_client::{
    well_known, Acl, AddWatchMode, Client, CreateMode, Error, ErrorCode, Op, OpResult, WatcherType,
};

use crate::text::{self, acl_text, parse_flags, stat_json, stat_text, Parsed, StatsTrack};
use crate::{CliError, Shell};

/// Every command, for completion and usage (zkCli's, then ours).
pub(crate) const NAMES: &[&str] = &[
    "addWatch",
    "addauth",
    "close",
    "config",
    "connect",
    "create",
    "delete",
    "deleteall",
    "delquota",
    "get",
    "getAcl",
    "getAllChildrenNumber",
    "getEphemerals",
    "history",
    "listquota",
    "ls",
    "printwatches",
    "quit",
    "reconfig",
    "redo",
    "removewatches",
    "set",
    "setAcl",
    "setquota",
    "stat",
    "sync",
    "version",
    "whoami",
    "exit",
    "tree",
    "find-big",
    "cp",
    "mv",
    "export",
    "import",
    "help",
];

fn usage_of(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "addWatch" => "addWatch [-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
        "addauth" => "addauth scheme auth",
        "close" => "close ",
        "config" => "config [-c] [-w] [-s]",
        "connect" => "connect host:port",
        "create" => "create [-s] [-e] [-c] [-t ttl] path [data] [acl]",
        "delete" => "delete [-v version] path",
        "deleteall" => "deleteall path [-b batch size]",
        "delquota" => "delquota [-n|-b|-N|-B] path",
        "get" => "get [-s] [-w] path",
        "getAcl" => "getAcl [-s] path",
        "getAllChildrenNumber" => "getAllChildrenNumber path",
        "getEphemerals" => "getEphemerals path",
        "history" => "history ",
        "listquota" => "listquota path",
        "ls" => "ls [-s] [-w] [-R] path",
        "printwatches" => "printwatches on|off",
        "quit" => "quit ",
        "reconfig" => "reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
        "redo" => "redo cmdno",
        "removewatches" => "removewatches path [-c|-d|-a] [-l]",
        "set" => "set [-s] [-v version] path data",
        "setAcl" => "setAcl [-s] [-v version] [-R] path acl",
        "setquota" => "setquota -n|-b|-N|-B val path",
        "stat" => "stat [-w] path",
        "sync" => "sync path",
        "version" => "version ",
        "whoami" => "whoami ",
        "tree" => "tree [-d depth] path # beyond zkCli: the subtree, indented, with sizes",
        "find-big" => "find-big [-n count] path # beyond zkCli: largest subtrees by nodes and bytes, largest families by children",
        "cp" => "cp source destination # beyond zkCli: copy a subtree (data and ACLs) in one multi",
        "mv" => "mv source destination # beyond zkCli: move a subtree in one multi",
        "export" => "export path file # beyond zkCli: a subtree with data and ACLs as JSON",
        "import" => "import file path # beyond zkCli: recreate an exported subtree under path",
        "help" => "help # beyond zkCli: this list",
        _ => return None,
    })
}

/// zkCli's usage text (printed on stderr for an unknown command); `with_extras` adds the
/// commands zkCli does not have (the `help` command shows those too).
fn usage_text(with_extras: bool) -> String {
    let mut s = String::from(
        "ZooKeeper -server host:port -client-configuration properties-file cmd args\n",
    );
    let mut names: Vec<&&str> = NAMES
        .iter()
        .filter(|n| **n != "exit" && **n != "help")
        .collect();
    names.sort_by_key(|n| {
        // zkCli's list is sorted case-sensitively; ours come after it.
        (
            usage_of(n).is_some_and(|u| u.contains("beyond zkCli")),
            n.to_string(),
        )
    });
    for n in names {
        if let Some(u) = usage_of(n) {
            if !with_extras && u.contains("beyond zkCli") {
                continue;
            }
            s.push('\t');
            s.push_str(u);
            s.push('\n');
        }
    }
    s
}

fn usage_all() -> String {
    usage_text(false)
}

/// zkCli's message for a ZooKeeper error (`CliWrapperException`).
pub(crate) fn keeper_message(e: &Error, path: Option<&str>) -> String {
    let code = match e {
        Error::Code(c) => *c,
        Error::BadArguments(m) => return m.clone(),
        Error::Closed => ErrorCode::SessionExpired,
        Error::Marshalling(m) => return m.clone(),
    };
    let p = path.unwrap_or("null");
    match code {
        ErrorCode::NoNode => format!("Node does not exist: {p}"),
        ErrorCode::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {p}"),
        ErrorCode::NodeExists => format!("Node already exists: {p}"),
        ErrorCode::NotEmpty => format!("Node not empty: {p}"),
        ErrorCode::NotReadOnly => format!("Not a read-only call: {p}"),
        ErrorCode::InvalidAcl => format!("Acl is not valid : {p}"),
        ErrorCode::NoAuth => format!("Insufficient permission : {p}"),
        ErrorCode::BadArguments => format!("Arguments are not valid : {p}"),
        ErrorCode::BadVersion => format!("version No is not valid : {p}"),
        ErrorCode::ReconfigInProgress => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)".into()
        }
        ErrorCode::NewConfigNoQuorum => "No quorum of new config is connected and up-to-date with the leader of last committed config - try invoking reconfiguration after new servers are connected and synced".into(),
        ErrorCode::QuotaExceeded => format!("Quota has exceeded : {p}"),
        // Java leaves out " for path" when the path is null or empty.
        c => match path {
            Some(p) if !p.is_empty() => format!("KeeperErrorCode = {} for {p}", c.message()),
            _ => format!("KeeperErrorCode = {}", c.message()),
        },
    }
}

fn wrap(path: &str) -> impl Fn(Error) -> CliError + '_ {
    move |e| CliError::new(keeper_message(&e, Some(path)))
}

fn data_string(data: &Option<Bytes>) -> String {
    match data {
        Some(d) => String::from_utf8_lossy(d).into_owned(),
        None => "null".into(),
    }
}

fn children_text(children: &[String]) -> String {
    format!("[{}]\n", children.join(", "))
}

fn parse_version(v: Option<&str>, what: &str) -> Result<i32, CliError> {
    match v {
        None => Ok(-1),
        Some(v) => v
            .parse()
            .map_err(|_| CliError::new(format!("{what} argument must be a number"))),
    }
}

impl Shell {
    fn client_or_not_connected(&self) -> Option<Client> {
        match &self.zk {
            Some(zk) if zk.state().is_alive() => Some(zk.clone()),
            _ => None,
        }
    }

    fn parse(&self, words: &[String], spec: &str, min_args: usize) -> Result<Parsed, CliError> {
        let p = parse_flags(words, spec).map_err(CliError::new)?;
        if p.args.len() < min_args {
            return Err(CliError::new(
                usage_of(&words[0]).unwrap_or_default().to_string(),
            ));
        }
        Ok(p)
    }

    fn emit(&self, text_out: &str, text_err: &str, value: Value) {
        if self.json() {
            self.print_out(&format!("{value}\n"));
        } else {
            if !text_err.is_empty() {
                self.print_err(text_err);
            }
            if !text_out.is_empty() {
                self.print_out(text_out);
            }
        }
    }

    pub(crate) async fn dispatch(&mut self, words: &[String]) -> Result<(), CliError> {
        let Some(cmd) = words.first().cloned() else {
            self.print_err(&usage_all());
            return Err(CliError::new("No command entered"));
        };
        if usage_of(&cmd).is_none() && cmd != "exit" {
            self.print_err(&usage_all());
            return Err(CliError {
                message: format!("Command not found: Command not found {cmd}"),
                code: 127,
            });
        }
        // Commands that work without a connection.
        match cmd.as_str() {
            "quit" | "exit" => {
                self.quit = true;
                self.close().await;
                return Ok(());
            }
            "redo" if words.len() >= 2 => {
                let i: i64 = words[1]
                    .parse()
                    .map_err(|_| CliError::new(format!("For input string: \"{}\"", words[1])))?;
                let Some(line) = usize::try_from(i)
                    .ok()
                    .filter(|i| *i < self.count)
                    .and_then(|i| self.history.get(&i).cloned())
                else {
                    return Err(CliError::new("Command index out of range"));
                };
                let again = text::tokenize(&line);
                if again.first().map(String::as_str) == Some("redo") {
                    return Err(CliError::new("No redoing redos"));
                }
                self.history.insert(self.count, line);
                return Box::pin(self.dispatch(&again)).await;
            }
            "history" => {
                let mut s = String::new();
                let from = self.count.saturating_sub(10);
                for i in from..=self.count {
                    if let Some(l) = self.history.get(&i) {
                        s.push_str(&format!("{i} - {l}\n"));
                    }
                }
                let list: Vec<Value> = (from..=self.count)
                    .filter_map(|i| self.history.get(&i).map(|l| json!({"n": i, "command": l})))
                    .collect();
                self.emit(&s, "", json!({ "history": list }));
            }
            "printwatches" => {
                if words.len() == 1 {
                    let on = self.print_watches.load(Ordering::SeqCst);
                    let s = format!("printwatches is {}\n", if on { "on" } else { "off" });
                    self.emit(&s, "", json!({ "printwatches": on }));
                } else {
                    self.print_watches.store(words[1] == "on", Ordering::SeqCst);
                }
            }
            "help" => {
                self.emit(&usage_text(true), "", json!({ "usage": usage_text(true) }));
                return Ok(());
            }
            "connect" => {
                let host = words.get(1).cloned().unwrap_or_else(|| self.host.clone());
                self.connect(&host).await?;
            }
            _ => {}
        }
        let Some(zk) = self.client_or_not_connected() else {
            self.print_out("Not connected\n");
            return Ok(());
        };
        // Requests wait for a connection at most one session timeout, then fail like
        // the Java client's do.
        let timeout = self.opts.timeout.max(Duration::from_secs(1));
        match tokio::time::timeout(timeout, self.command(&zk, &cmd, words)).await {
            Ok(r) => r,
            Err(_) => Err(CliError::new(format!(
                "KeeperErrorCode = ConnectionLoss for {}",
                words
                    .iter()
                    .skip(1)
                    .find(|w| w.starts_with('/'))
                    .map_or("null", String::as_str)
            ))),
        }
    }

    async fn command(&mut self, zk: &Client, cmd: &str, words: &[String]) -> Result<(), CliError> {
        match cmd {
            "history" | "printwatches" | "connect" | "redo" => Ok(()),
            "create" => self.create(zk, words).await,
            "get" => {
                let p = self.parse(words, "swbx", 1)?;
                let path = &p.args[0];
                let (data, stat) = if p.has('w') {
                    zk.default_watch().get_data(path).await
                } else {
                    zk.get_data(path).await
                }
                .map_err(wrap(path))?;
                let shown = match &data {
                    Some(d) if p.has('b') => base64(d),
                    Some(d) if p.has('x') => hexdump(d),
                    _ => data_string(&data),
                };
                let mut s = format!("{shown}\n");
                if p.has('s') {
                    s.push_str(&stat_text(&stat));
                }
                let j = json!({"path": path, "data": data.as_ref().map(|d| String::from_utf8_lossy(d).into_owned()), "stat": stat_json(&stat)});
                self.emit(&s, "", j);
                Ok(())
            }
            "set" => {
                let p = self.parse(words, "sv:b", 2)?;
                let path = &p.args[0];
                let version = parse_version(p.value('v'), "-v")?;
                let data = if p.has('b') {
                    Bytes::from(
                        unbase64(&p.args[1]).ok_or_else(|| CliError::new("Illegal base64 data"))?,
                    )
                } else {
                    Bytes::copy_from_slice(p.args[1].as_bytes())
                };
                let stat = zk.set_data(path, data, version).await.map_err(wrap(path))?;
                let s = if p.has('s') {
                    stat_text(&stat)
                } else {
                    String::new()
                };
                self.emit(&s, "", json!({"path": path, "stat": stat_json(&stat)}));
                Ok(())
            }
            "stat" => {
                let p = self.parse(words, "w", 1)?;
                let path = &p.args[0];
                let stat = if p.has('w') {
                    zk.default_watch().exists(path).await
                } else {
                    zk.exists(path).await
                }
                .map_err(wrap(path))?
                .ok_or_else(|| CliError::new(format!("Node does not exist: {path}")))?;
                self.emit(
                    &stat_text(&stat),
                    "",
                    json!({"path": path, "stat": stat_json(&stat)}),
                );
                Ok(())
            }
            "ls" => self.ls(zk, words).await,
            "delete" => {
                let p = self.parse(words, "v:", 1)?;
                let path = &p.args[0];
                let version = parse_version(p.value('v'), "-v")?;
                zk.delete(path, version).await.map_err(wrap(path))?;
                self.emit("", "", json!({"deleted": path}));
                Ok(())
            }
            "deleteall" => {
                let p = self.parse(words, "b:", 1)?;
                let path = &p.args[0];
                let batch: usize = match p.value('b') {
                    Some(b) => b
                        .parse()
                        .map_err(|_| CliError::new("-b argument must be an int value"))?,
                    None => 1000,
                };
                let nodes = subtree_bfs(zk, path).await.map_err(wrap(path))?;
                let ok = delete_all(zk, &nodes, batch.max(1)).await;
                if !ok {
                    self.print_err("Failed to delete some node(s) in the subtree!\n");
                }
                self.emit("", "", json!({"deleted": nodes.len(), "ok": ok}));
                Ok(())
            }
            "getAcl" => {
                let p = self.parse(words, "s", 1)?;
                let path = &p.args[0];
                let (acl, stat) = zk.get_acl(path).await.map_err(wrap(path))?;
                let mut s: String = acl.iter().map(acl_text).collect();
                if p.has('s') {
                    s.push_str(&stat_text(&stat));
                }
                self.emit(
                    &s,
                    "",
                    json!({"path": path, "acl": acl_json(&acl), "stat": stat_json(&stat)}),
                );
                Ok(())
            }
            "setAcl" => {
                let p = self.parse(words, "sv:R", 2)?;
                let path = &p.args[0];
                let version = parse_version(p.value('v'), "-v")?;
                let mut warn = Vec::new();
                let acl = text::parse_acl(&p.args[1], &mut warn);
                for w in &warn {
                    self.print_err(&format!("{w}\n"));
                }
                if acl.is_empty() {
                    return Err(CliError::new("Acl is not valid : null"));
                }
                let targets = if p.has('R') {
                    subtree_bfs(zk, path).await.map_err(wrap(path))?
                } else {
                    vec![path.clone()]
                };
                let mut last = None;
                for t in &targets {
                    last = Some(zk.set_acl(t, acl.clone(), version).await.map_err(wrap(t))?);
                }
                let s = match (&last, p.has('s')) {
                    (Some(st), true) => stat_text(st),
                    _ => String::new(),
                };
                self.emit(&s, "", json!({"path": path, "acl": acl_json(&acl)}));
                Ok(())
            }
            "getAllChildrenNumber" => {
                let p = self.parse(words, "", 1)?;
                let path = &p.args[0];
                let n = zk.get_all_children_number(path).await.map_err(wrap(path))?;
                self.emit(&format!("{n}\n"), "", json!({"path": path, "count": n}));
                Ok(())
            }
            "getEphemerals" => {
                let p = self.parse(words, "", 0)?;
                let path = p.args.first().map_or("/", String::as_str);
                let list = zk
                    .get_ephemerals(path)
                    .await
                    .map_err(|e| CliError::new(keeper_message(&e, None)))?;
                self.emit(&children_text(&list), "", json!({"ephemerals": list}));
                Ok(())
            }
            "sync" => {
                let p = self.parse(words, "", 1)?;
                let path = &p.args[0];
                match zk.sync(path).await {
                    Ok(()) => self.emit("Sync is OK\n", "", json!({"sync": path, "ok": true})),
                    Err(e) => self.emit(
                        &format!("Sync has failed, rc={}\n", e.code().code()),
                        "",
                        json!({"sync": path, "ok": false, "error": e.code().code()}),
                    ),
                }
                Ok(())
            }
            "addauth" => {
                let p = self.parse(words, "", 1)?;
                let auth = p.args.get(1).map(|a| Bytes::copy_from_slice(a.as_bytes()));
                // zkCli does not wait for the answer; a refused scheme shows up as an
                // AuthFailed event, failed requests and a dead session.
                drop(zk.add_auth(&p.args[0], auth));
                Ok(())
            }
            "whoami" => {
                let infos = zk
                    .who_am_i()
                    .await
                    .map_err(|e| CliError::new(keeper_message(&e, None)))?;
                let mut s = String::from("Auth scheme: User\n");
                for c in &infos {
                    s.push_str(&format!("{}: {}\n", c.auth_scheme, c.user));
                }
                let j: Vec<Value> = infos
                    .iter()
                    .map(|c| json!({"scheme": c.auth_scheme, "user": c.user}))
                    .collect();
                self.emit(&s, "", json!({ "whoami": j }));
                Ok(())
            }
            "addWatch" => {
                let p = self.parse(words, "m:", 1)?;
                let path = &p.args[0];
                let mode = match p.value('m') {
                    None | Some("PERSISTENT_RECURSIVE") => AddWatchMode::PersistentRecursive,
                    Some("PERSISTENT") => AddWatchMode::Persistent,
                    Some(_) => return Err(CliError::new(usage_of("addWatch").unwrap_or_default())),
                };
                zk.default_watch()
                    .add_watch(path, mode)
                    .await
                    .map_err(wrap(path))?;
                self.emit("", "", json!({"watch": path}));
                Ok(())
            }
            "removewatches" => {
                let p = self.parse(words, "cdal", 1)?;
                let path = &p.args[0];
                let wtype = if p.has('c') {
                    WatcherType::Children
                } else if p.has('d') {
                    WatcherType::Data
                } else {
                    WatcherType::Any
                };
                zk.remove_watches(path, wtype, p.has('l'))
                    .await
                    .map_err(wrap(path))?;
                self.emit("", "", json!({"removed": path}));
                Ok(())
            }
            "config" => {
                let p = self.parse(words, "cws", 0)?;
                let (data, stat) = if p.has('w') {
                    zk.default_watch().get_config().await
                } else {
                    zk.get_config().await
                }
                .map_err(|e| CliError::new(keeper_message(&e, None)))?;
                let text = data_string(&data);
                let shown = if p.has('c') {
                    client_config(&text)
                } else {
                    text
                };
                let mut s = format!("{shown}\n");
                if p.has('s') {
                    s.push_str(&stat_text(&stat));
                }
                self.emit(&s, "", json!({"config": shown, "stat": stat_json(&stat)}));
                Ok(())
            }
            "reconfig" => self.reconfig(zk, words).await,
            "close" => {
                zk.close().await;
                self.drain_events();
                Ok(())
            }
            "version" => {
                let v = format!(
                    "ZooKeeper CLI version: 3.9.3-zkcli-{}, built for Apache ZooKeeper 3.9 servers",
                    env!("CARGO_PKG_VERSION")
                );
                self.emit(&format!("{v}\n"), "", json!({ "version": v }));
                Ok(())
            }
            "setquota" => self.setquota(zk, words).await,
            "listquota" => {
                let p = self.parse(words, "", 1)?;
                let path = &p.args[0];
                let limit = format!("/zookeeper/quota{path}/zookeeper_limits");
                let stats = format!("/zookeeper/quota{path}/zookeeper_stats");
                self.print_err(&format!("absolute path is {limit}\n"));
                let l = zk.get_data(&limit).await;
                let s = zk.get_data(&stats).await;
                match (l, s) {
                    (Ok((l, _)), Ok((s, _))) => {
                        let (l, s) = (
                            StatsTrack::parse(&data_string(&l)),
                            StatsTrack::parse(&data_string(&s)),
                        );
                        let text =
                            format!("Output quota for {path} {l}\nOutput stat for {path} {s}\n");
                        self.emit(
                            &text,
                            "",
                            json!({"path": path, "quota": l.to_string(), "stat": s.to_string()}),
                        );
                        Ok(())
                    }
                    (Err(Error::Code(ErrorCode::NoNode)), _)
                    | (_, Err(Error::Code(ErrorCode::NoNode))) => {
                        self.print_err(&format!("quota for {path} does not exist.\n"));
                        Ok(())
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        Err(CliError::new(keeper_message(&e, Some(&limit))))
                    }
                }
            }
            "delquota" => self.delquota(zk, words).await,
            "tree" => self.tree(zk, words).await,
            "find-big" => self.find_big(zk, words).await,
            "cp" | "mv" => self.copy(zk, words, cmd == "mv").await,
            "export" => self.export(zk, words).await,
            "import" => self.import(zk, words).await,
            _ => Ok(()),
        }
    }

    async fn create(&mut self, zk: &Client, words: &[String]) -> Result<(), CliError> {
        let p = self.parse(words, "sect:", 1)?;
        let (e, s, c) = (p.has('e'), p.has('s'), p.has('c'));
        if c && (e || s) {
            return Err(CliError::new(
                "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
            ));
        }
        let ttl = match p.value('t') {
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| CliError::new("-t argument must be a long value"))?,
            ),
            None => None,
        };
        if ttl.is_some() && e {
            return Err(CliError::new("TTLs cannot be used with Ephemeral znodes"));
        }
        if ttl.is_some() && c {
            return Err(CliError::new("TTLs cannot be used with Container znodes"));
        }
        let mode = match (ttl.is_some(), e, s, c) {
            (true, _, true, _) => CreateMode::PersistentSequentialWithTtl,
            (true, _, false, _) => CreateMode::PersistentWithTtl,
            (_, _, _, true) => CreateMode::Container,
            (_, true, true, _) => CreateMode::EphemeralSequential,
            (_, true, false, _) => CreateMode::Ephemeral,
            (_, false, true, _) => CreateMode::PersistentSequential,
            _ => CreateMode::Persistent,
        };
        let path = &p.args[0];
        let data = p.args.get(1).map(|d| Bytes::copy_from_slice(d.as_bytes()));
        let acl = match p.args.get(2) {
            Some(a) => {
                let mut warn = Vec::new();
                let acl = text::parse_acl(a, &mut warn);
                for w in &warn {
                    self.print_err(&format!("{w}\n"));
                }
                acl
            }
            None => well_known::open_acl_unsafe(),
        };
        if acl.is_empty() {
            // The Java client refuses an empty ACL list before sending; zkCli prints that
            // exception's message, then its own wrapper.
            self.print_err("KeeperErrorCode = InvalidACL\n");
            return Err(CliError::new("Acl is not valid : null"));
        }
        let created = match ttl {
            Some(t) => zk
                .create_ttl(path, data, acl, mode, t)
                .await
                .map(|(p, _)| p),
            None => zk.create(path, data, acl, mode).await,
        };
        match created {
            Ok(p) => {
                self.emit("", &format!("Created {p}\n"), json!({ "created": p }));
                Ok(())
            }
            Err(Error::BadArguments(m)) => Err(CliError::new(m)),
            Err(Error::Code(ErrorCode::EphemeralOnLocalSession)) => {
                self.print_err("Unable to create ephemeral node on a local session\n");
                Err(CliError::new(keeper_message(
                    &Error::Code(ErrorCode::EphemeralOnLocalSession),
                    Some(path),
                )))
            }
            Err(e) => Err(CliError::new(keeper_message(&e, Some(path)))),
        }
    }

    async fn ls(&mut self, zk: &Client, words: &[String]) -> Result<(), CliError> {
        let p = self.parse(words, "?swR", 1)?;
        let path = &p.args[0];
        if p.has('R') {
            let nodes = subtree_bfs(zk, path).await.map_err(wrap(path))?;
            let s: String = nodes.iter().map(|n| format!("{n}\n")).collect();
            self.emit(&s, "", json!({ "paths": nodes }));
            return Ok(());
        }
        let (mut children, stat) = if p.has('w') {
            zk.default_watch().get_children2(path).await
        } else {
            zk.get_children2(path).await
        }
        .map_err(wrap(path))?;
        children.sort();
        let mut s = children_text(&children);
        if p.has('s') {
            s.push_str(&stat_text(&stat));
        }
        self.emit(
            &s,
            "",
            json!({"path": path, "children": children, "stat": stat_json(&stat)}),
        );
        Ok(())
    }

    async fn reconfig(&mut self, zk: &Client, words: &[String]) -> Result<(), CliError> {
        // reconfig's options have long names.
        let words: Vec<String> = words
            .iter()
            .map(|w| match w.as_str() {
                "-add" => "-a".to_string(),
                "-remove" => "-r".to_string(),
                "-members" => "-m".to_string(),
                "-file" => "-f".to_string(),
                _ => w.clone(),
            })
            .collect();
        let p = self.parse(&words, "sv:f:m:a:r:", 0)?;
        let members = match (p.value('f'), p.value('m')) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| CliError::new(format!("{file}: {e}")))?;
                Some(
                    text.lines()
                        .filter(|l| {
                            l.starts_with("server.")
                                || l.starts_with("group")
                                || l.starts_with("weight")
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                )
            }
            (None, m) => m.map(str::to_string),
        };
        if members.is_none() && p.value('a').is_none() && p.value('r').is_none() {
            return Err(CliError::new(usage_of("reconfig").unwrap_or_default()));
        }
        let version = match p.value('v') {
            Some(v) => i64::from_str_radix(v.trim_start_matches("0x"), 16).map_err(|_| {
                CliError::new("-v must be followed by a long (configuration version)")
            })?,
            None => -1,
        };
        let (data, stat) = zk
            .reconfig(p.value('a'), p.value('r'), members.as_deref(), version)
            .await
            // ZooKeeper's client raises reconfig errors with an empty path.
            .map_err(|e| CliError::new(keeper_message(&e, Some(""))))?;
        let mut s = format!("Committed new configuration:\n{}\n", data_string(&data));
        if p.has('s') {
            s.push_str(&stat_text(&stat));
        }
        self.emit(
            &s,
            "",
            json!({"config": data_string(&data), "stat": stat_json(&stat)}),
        );
        Ok(())
    }

    async fn setquota(&mut self, zk: &Client, words: &[String]) -> Result<(), CliError> {
        let p = parse_flags(words, "n:b:N:B:").map_err(CliError::new)?;
        if !(p.has('n') || p.has('b') || p.has('N') || p.has('B')) {
            return Err(CliError::new("org.apache.commons.cli.MissingOptionException: Missing required option: [-n num soft quota, -b bytes soft quota, -N num hard quota, -B bytes hard quota]"));
        }
        if p.args.is_empty() {
            return Err(CliError::new(usage_of("setquota").unwrap_or_default()));
        }
        let path = &p.args[0];
        if path.starts_with("/zookeeper/quota") {
            self.print_err("cannot set a quota under the path: /zookeeper/quota\n");
            return Ok(());
        }
        let mut quota = StatsTrack::default();
        for k in ["count", "bytes", "countHardLimit", "byteHardLimit"] {
            quota.set(k, -1);
        }
        for (flag, key, min, msg) in [
            ('n', "count", 1, "the num quota must be greater than zero"),
            (
                'b',
                "bytes",
                0,
                "the bytes quota must be greater than or equal to zero",
            ),
            (
                'N',
                "countHardLimit",
                1,
                "the num quota must be greater than zero",
            ),
            (
                'B',
                "byteHardLimit",
                0,
                "the bytes quota must be greater than or equal to zero",
            ),
        ] {
            if let Some(v) = p.value(flag) {
                let Ok(v) = v.parse::<i64>() else {
                    self.print_err("NumberFormatException happens when parsing the option value\n");
                    return Ok(());
                };
                if v < min {
                    self.print_err(&format!("{msg}\n"));
                    return Ok(());
                }
                quota.set(key, v);
            }
        }
        if !(p.has('n') || p.has('b') || p.has('N') || p.has('B')) {
            return Err(CliError::new(usage_of("setquota").unwrap_or_default()));
        }
        if zk.exists(path).await.map_err(wrap(path))?.is_none() {
            return Err(CliError::new(format!("{path} does not exist.")));
        }
        // No quota may sit above or below this one.
        let quota_root = format!("/zookeeper/quota{path}");
        if let Ok(nodes) = subtree_bfs(zk, &quota_root).await {
            for n in nodes.iter().skip(1) {
                if n.ends_with("/zookeeper_limits")
                    && n.rsplit_once('/').map(|x| x.0) != Some(quota_root.as_str())
                {
                    let child = n
                        .trim_start_matches("/zookeeper/quota")
                        .trim_end_matches("/zookeeper_limits");
                    return Err(CliError::new(format!(
                        "{path} has a child {child} which has a quota"
                    )));
                }
            }
        }
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut prefix = String::new();
        for seg in segments.iter().take(segments.len().saturating_sub(1)) {
            prefix.push('/');
            prefix.push_str(seg);
            let limits = format!("/zookeeper/quota{prefix}/zookeeper_limits");
            if zk.exists(&limits).await.ok().flatten().is_some() {
                return Err(CliError::new(format!(
                    "{path} has a parent {prefix} which has a quota"
                )));
            }
        }
        let open = well_known::open_acl_unsafe;
        let mut node = String::from("/zookeeper/quota");
        for seg in &segments {
            node.push('/');
            node.push_str(seg);
            match zk
                .create(&node, None::<Bytes>, open(), CreateMode::Persistent)
                .await
            {
                Ok(_) | Err(Error::Code(ErrorCode::NodeExists)) => {}
                Err(e) => return Err(CliError::new(keeper_message(&e, Some(&node)))),
            }
        }
        let limits = format!("{node}/zookeeper_limits");
        let stats_path = format!("{node}/zookeeper_stats");
        let warn = |q: &StatsTrack, s: &StatsTrack, out: &Shell| {
            let (c, b) = (s.get("count"), s.get("bytes"));
            if (q.get("count") > -1 && q.get("count") < c)
                || (q.get("countHardLimit") > -1 && q.get("countHardLimit") < c)
            {
                out.print_out(&format!(
                    "[Warning]: the count quota you create is less than the existing count:{c}\n"
                ));
            }
            if (q.get("bytes") > -1 && q.get("bytes") < b)
                || (q.get("byteHardLimit") > -1 && q.get("byteHardLimit") < b)
            {
                out.print_out(&format!(
                    "[Warning]: the bytes quota you create is less than the existing bytes:{b}\n"
                ));
            }
        };
        match zk.get_data(&limits).await {
            Err(Error::Code(ErrorCode::NoNode)) => {
                zk.create(&limits, quota.to_string(), open(), CreateMode::Persistent)
                    .await
                    .map_err(wrap(&limits))?;
                zk.create(
                    &stats_path,
                    "count=0,bytes=0",
                    open(),
                    CreateMode::Persistent,
                )
                .await
                .map_err(wrap(&stats_path))?;
                let (s, _) = zk.get_data(&stats_path).await.map_err(wrap(&stats_path))?;
                warn(&quota, &StatsTrack::parse(&data_string(&s)), self);
            }
            Ok((old, _)) => {
                let mut merged = StatsTrack::parse(&data_string(&old));
                for k in ["count", "bytes", "countHardLimit", "byteHardLimit"] {
                    if quota.get(k) > -1 {
                        merged.set(k, quota.get(k));
                    }
                }
                let (s, _) = zk.get_data(&stats_path).await.map_err(wrap(&stats_path))?;
                warn(&merged, &StatsTrack::parse(&data_string(&s)), self);
                zk.set_data(&limits, merged.to_string(), -1)
                    .await
                    .map_err(wrap(&limits))?;
            }
            Err(e) => return Err(CliError::new(keeper_message(&e, Some(&limits)))),
        }
        self.emit("", "", json!({"quota": path}));
        Ok(())
    }

    async fn delquota(&mut self, zk: &Client, words: &[String]) -> Result<(), CliError> {
        let p = self.parse(words, "nbNB", 1)?;
        let path = &p.args[0];
        let parent = format!("/zookeeper/quota{path}");
        let limits = format!("{parent}/zookeeper_limits");
        let (data, _) = match zk.get_data(&limits).await {
            Ok(d) => d,
            Err(Error::Code(ErrorCode::NoNode)) => {
                self.print_out(&format!("Quota does not exist for {path}\n"));
                return Ok(());
            }
            Err(e) => return Err(CliError::new(keeper_message(&e, Some(&limits)))),
        };
        let flags = [
            ('n', "count"),
            ('b', "bytes"),
            ('N', "countHardLimit"),
            ('B', "byteHardLimit"),
        ];
        if flags.iter().any(|(f, _)| p.has(*f)) {
            let mut q = StatsTrack::parse(&data_string(&data));
            for (f, k) in flags {
                if p.has(f) {
                    q.set(k, -1);
                }
            }
            zk.set_data(&limits, q.to_string(), -1)
                .await
                .map_err(wrap(&limits))?;
        } else {
            let children = zk.get_children(&parent).await.map_err(wrap(&parent))?;
            for c in children {
                let node = format!("{parent}/{c}");
                zk.delete(&node, -1).await.map_err(wrap(&node))?;
            }
            // Trim now-empty quota directories up to /zookeeper/quota.
            let mut dir = parent;
            while dir != "/zookeeper/quota" {
                match zk.get_children(&dir).await {
                    Ok(c) if c.is_empty() => {
                        zk.delete(&dir, -1).await.map_err(wrap(&dir))?;
                        dir = dir.rsplit_once('/').map_or("/", |x| x.0).to_string();
                    }
                    _ => break,
                }
            }
        }
        self.emit("", "", json!({"quotaRemoved": path}));
        Ok(())
    }

    async fn tree(&mut self, zk: &Client, words: &[String]) -> Result<(), CliError> {
        let p = self.parse(words, "d:", 1)?;
        let root = &p.args[0];
        let max_depth: usize = p
            .value('d')
            .and_then(|d| d.parse().ok())
            .unwrap_or(usize::MAX);
        let mut out = String::new();
        let mut items = Vec::new();
        let mut stack = vec![(root.clone(), 0usize)];
        while let Some((path, depth)) = stack.pop() {
            let (mut children, stat) = match zk.get_children2(&path).await {
                Ok(x) => x,
                Err(Error::Code(ErrorCode::NoNode)) if path != *root => continue,
                Err(e) => return Err(CliError::new(keeper_message(&e, Some(&path)))),
            };
            let name = if depth == 0 {
                path.clone()
            } else {
                path.rsplit('/').next().unwrap_or("").to_string()
            };
            out.push_str(&format!(
                "{}{} ({} B{})\n",
                "  ".repeat(depth),
                name,
                stat.data_length,
                if stat.num_children > 0 {
                    format!(", {} children", stat.num_children)
                } else {
                    String::new()
                }
            ));
            items.push(json!({"path": path, "depth": depth, "bytes": stat.data_length, "children": stat.num_children}));
            if depth < max_depth {
                children.sort();
                for c in children.into_iter().rev() {
                    stack.push((join(&path, &c), depth + 1));
                }
            }
        }
        self.emit(&out, "", json!({ "tree": items }));
        Ok(())
    }

    async fn find_big(&mut self, zk: &Client, words: &[String]) -> Result<(), CliError> {
        let p = self.parse(words, "n:", 1)?;
        let root = &p.args[0];
        let top: usize = p.value('n').and_then(|n| n.parse().ok()).unwrap_or(10);
        // One getChildren2 per node, breadth first: each node's own data length, and its
        // family (children and the size of their names' list, as a getChildren reply).
        let mut own: Vec<(String, i64)> = Vec::new();
        let mut families: Vec<(String, i64, u64)> = Vec::new();
        let mut queue = VecDeque::from([root.clone()]);
        while let Some(node) = queue.pop_front() {
            let (mut children, stat) = match zk.get_children2(&node).await {
                Ok(x) => x,
                Err(Error::Code(ErrorCode::NoNode)) if node != *root => continue,
                Err(e) => return Err(CliError::new(keeper_message(&e, Some(&node)))),
            };
            own.push((node.clone(), i64::from(stat.data_length)));
            if !children.is_empty() {
                let names: u64 = children.iter().map(|c| c.len() as u64).sum();
                let list = 4 + 4 * children.len() as u64 + names;
                families.push((node.clone(), children.len() as i64, list));
            }
            children.sort();
            queue.extend(children.iter().map(|c| join(&node, c)));
        }
        // Totals per subtree (children before parents: reverse BFS).
        let mut totals: std::collections::HashMap<String, (i64, i64)> =
            std::collections::HashMap::new();
        for (n, len) in own.iter().rev() {
            let (count, bytes) = totals.get(n).copied().unwrap_or((0, 0));
            let me = (count + 1, bytes + len);
            totals.insert(n.clone(), me);
            if n != root {
                let parent = n
                    .rsplit_once('/')
                    .map_or("/", |x| if x.0.is_empty() { "/" } else { x.0 })
                    .to_string();
                let e = totals.entry(parent).or_insert((0, 0));
                e.0 += me.0;
                e.1 += me.1;
            }
        }
        let mut by_nodes: Vec<(&String, &(i64, i64))> = totals.iter().collect();
        by_nodes.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        let mut by_bytes = by_nodes.clone();
        by_bytes.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(b.0)));
        families.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut s = String::from("Largest subtrees by nodes:\n");
        for (path, (n, b)) in by_nodes.iter().take(top) {
            s.push_str(&format!("{n:>10} nodes {b:>12} bytes  {path}\n"));
        }
        s.push_str("Largest subtrees by bytes:\n");
        for (path, (n, b)) in by_bytes.iter().take(top) {
            s.push_str(&format!("{b:>12} bytes {n:>10} nodes  {path}\n"));
        }
        // The children list is what outgrows jute.maxbuffer (1 MiB by default).
        s.push_str("Largest families by children:\n");
        for (path, kids, list) in families.iter().take(top) {
            let share = *list as f64 * 100.0 / JUTE_MAXBUFFER as f64;
            s.push_str(&format!(
                "{kids:>10} children {list:>10} list bytes ({share:.1}% of jute.maxbuffer)  {path}\n"
            ));
        }
        let j = |v: &Vec<(&String, &(i64, i64))>| -> Vec<Value> {
            v.iter()
                .take(top)
                .map(|(p, (n, b))| json!({"path": p, "nodes": n, "bytes": b}))
                .collect()
        };
        let fams: Vec<Value> = families
            .iter()
            .take(top)
            .map(|(p, k, l)| json!({"path": p, "children": k, "children_list_bytes": l}))
            .collect();
        self.emit(
            &s,
            "",
            json!({"byNodes": j(&by_nodes), "byBytes": j(&by_bytes), "byChildren": fams}),
        );
        Ok(())
    }

    async fn copy(&mut self, zk: &Client, words: &[String], remove: bool) -> Result<(), CliError> {
        let p = self.parse(words, "", 2)?;
        let (src, dst) = (&p.args[0], &p.args[1]);
        if dst == src || dst.starts_with(&format!("{src}/")) {
            return Err(CliError::new(format!("cannot copy {src} into itself")));
        }
        let nodes = subtree_bfs(zk, src).await.map_err(wrap(src))?;
        let mut ops = Vec::with_capacity(nodes.len() * 2);
        for n in &nodes {
            let (data, _) = zk.get_data(n).await.map_err(wrap(n))?;
            let (acl, _) = zk.get_acl(n).await.map_err(wrap(n))?;
            let target = format!("{dst}{}", &n[src.len()..]);
            ops.push(Op::Create {
                path: target,
                data: data.into(),
                acl,
                mode: CreateMode::Persistent,
                ttl: None,
            });
        }
        if remove {
            for n in nodes.iter().rev() {
                ops.push(Op::Delete {
                    path: n.clone(),
                    version: -1,
                });
            }
        }
        let results = zk.multi(ops).await.map_err(wrap(src))?;
        if let Some(code) = results.iter().find_map(|r| match r {
            OpResult::Error(c) if *c != ErrorCode::Ok && *c != ErrorCode::RuntimeInconsistency => {
                Some(*c)
            }
            _ => None,
        }) {
            return Err(CliError::new(keeper_message(&Error::Code(code), Some(dst))));
        }
        let verb = if remove { "Moved" } else { "Copied" };
        self.emit(
            &format!("{verb} {} node(s) from {src} to {dst}\n", nodes.len()),
            "",
            json!({"from": src, "to": dst, "nodes": nodes.len(), "moved": remove}),
        );
        Ok(())
    }

    async fn export(&mut self, zk: &Client, words: &[String]) -> Result<(), CliError> {
        let p = self.parse(words, "", 2)?;
        let (root, file) = (&p.args[0], &p.args[1]);
        let nodes = subtree_bfs(zk, root).await.map_err(wrap(root))?;
        let mut items = Vec::with_capacity(nodes.len());
        for n in &nodes {
            let (data, stat) = zk.get_data(n).await.map_err(wrap(n))?;
            if stat.ephemeral_owner != 0 {
                continue;
            }
            let (acl, _) = zk.get_acl(n).await.map_err(wrap(n))?;
            items.push(json!({
                "path": &n[root.len().min(n.len())..],
                "data": data.as_ref().map(|d| base64(d)),
                "acl": acl_json(&acl),
            }));
        }
        let doc = json!({"format": "zkcli-export-1", "root": root, "nodes": items});
        let text = serde_json::to_string_pretty(&doc).map_err(|e| CliError::new(e.to_string()))?;
        std::fs::write(file, text).map_err(|e| CliError::new(format!("{file}: {e}")))?;
        self.emit(
            &format!("Exported {} node(s) from {root} to {file}\n", items.len()),
            "",
            json!({"exported": items.len(), "file": file}),
        );
        Ok(())
    }

    async fn import(&mut self, zk: &Client, words: &[String]) -> Result<(), CliError> {
        let p = self.parse(words, "", 2)?;
        let (file, root) = (&p.args[0], &p.args[1]);
        let text =
            std::fs::read_to_string(file).map_err(|e| CliError::new(format!("{file}: {e}")))?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| CliError::new(format!("{file}: {e}")))?;
        let Some(nodes) = doc.get("nodes").and_then(Value::as_array) else {
            return Err(CliError::new(format!("{file}: not a zkcli export")));
        };
        let mut ops = Vec::new();
        for n in nodes {
            let rel = n.get("path").and_then(Value::as_str).unwrap_or("");
            let path = if rel.is_empty() {
                root.clone()
            } else if root == "/" {
                rel.to_string()
            } else {
                format!("{root}{rel}")
            };
            if path == "/" {
                continue;
            }
            let data = match n.get("data").and_then(Value::as_str) {
                Some(d) => {
                    Some(Bytes::from(unbase64(d).ok_or_else(|| {
                        CliError::new(format!("{file}: bad data at {rel}"))
                    })?))
                }
                None => None,
            };
            let acl = n
                .get("acl")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(acl_from_json).collect::<Vec<_>>())
                .filter(|a| !a.is_empty())
                .unwrap_or_else(well_known::open_acl_unsafe);
            ops.push(Op::Create {
                path,
                data: data.into(),
                acl,
                mode: CreateMode::Persistent,
                ttl: None,
            });
        }
        let count = ops.len();
        let results = zk.multi(ops).await.map_err(wrap(root))?;
        if let Some(code) = results.iter().find_map(|r| match r {
            OpResult::Error(c) if *c != ErrorCode::Ok && *c != ErrorCode::RuntimeInconsistency => {
                Some(*c)
            }
            _ => None,
        }) {
            return Err(CliError::new(keeper_message(
                &Error::Code(code),
                Some(root),
            )));
        }
        self.emit(
            &format!("Imported {count} node(s) from {file} to {root}\n"),
            "",
            json!({"imported": count, "root": root}),
        );
        Ok(())
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// The subtree under `root`, breadth first, children sorted (`ZKUtil.listSubTreeBFS`).
pub(crate) async fn subtree_bfs(zk: &Client, root: &str) -> Result<Vec<String>, Error> {
    let mut out = vec![root.to_string()];
    let mut queue = VecDeque::from([root.to_string()]);
    while let Some(node) = queue.pop_front() {
        let mut children = match zk.get_children(&node).await {
            Ok(c) => c,
            Err(Error::Code(ErrorCode::NoNode)) if node != root => continue,
            Err(e) => return Err(e),
        };
        children.sort();
        for c in children {
            let p = join(&node, &c);
            out.push(p.clone());
            queue.push_back(p);
        }
    }
    Ok(out)
}

/// Deletes `root` and everything under it (nothing to do when it is absent).
pub(crate) async fn delete_tree(zk: &Client, root: &str) -> Result<(), String> {
    match zk.exists(root).await {
        Ok(None) => return Ok(()),
        Ok(Some(_)) => {}
        Err(e) => return Err(e.to_string()),
    }
    let nodes = subtree_bfs(zk, root).await.map_err(|e| e.to_string())?;
    if delete_all(zk, &nodes, 100).await {
        Ok(())
    } else {
        Err(format!("some nodes under {root} could not be deleted"))
    }
}

/// Deletes `nodes` (a BFS list) deepest first, `batch` deletes per multi.
async fn delete_all(zk: &Client, nodes: &[String], batch: usize) -> bool {
    let mut ok = true;
    let ordered: Vec<&String> = nodes.iter().rev().collect();
    for chunk in ordered.chunks(batch) {
        let ops = chunk
            .iter()
            .map(|p| Op::Delete {
                path: (*p).clone(),
                version: -1,
            })
            .collect();
        match zk.multi(ops).await {
            Ok(results) => {
                if results
                    .iter()
                    .any(|r| matches!(r, OpResult::Error(c) if *c != ErrorCode::Ok))
                {
                    ok = false;
                }
            }
            Err(_) => ok = false,
        }
    }
    ok
}

fn acl_json(acl: &[Acl]) -> Value {
    Value::Array(
        acl.iter()
            .map(|a| json!({"scheme": a.id.scheme, "id": a.id.id, "perms": text::perm_string(a.perms)}))
            .collect(),
    )
}

fn acl_from_json(v: &Value) -> Option<Acl> {
    let mut warn = Vec::new();
    let s = format!(
        "{}:{}:{}",
        v.get("scheme")?.as_str()?,
        v.get("id")?.as_str()?,
        v.get("perms")?.as_str()?
    );
    text::parse_acl(&s, &mut warn).into_iter().next()
}

/// `-c` of `config`: the client-facing part of a dynamic configuration.
fn client_config(config: &str) -> String {
    let mut servers = Vec::new();
    let mut version = String::new();
    for line in config.lines() {
        if let Some(v) = line.strip_prefix("version=") {
            version = v.to_string();
        } else if line.starts_with("server.") {
            if let Some((_, client)) = line.split_once(';') {
                servers.push(client.to_string());
            }
        }
    }
    format!("{version} {}", servers.join(","))
}

/// ZooKeeper's default `jute.maxbuffer`, the reply size clients accept.
const JUTE_MAXBUFFER: u64 = 0xfffff;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(d: &[u8]) -> String {
    let mut s = String::with_capacity(d.len().div_ceil(3) * 4);
    for chunk in d.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn unbase64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `get -x`: offset, 16 hex bytes, and their printable characters.
fn hexdump(d: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in d.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|b| {
                if b.is_ascii_graphic() || *b == b' ' {
                    *b as char
                } else {
                    '.'
                }
            })
            .collect();
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&format!("{:08x}: {:<47}  {text}", i * 16, hex.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for d in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0, 255, 7, 9, 200]] {
            assert_eq!(unbase64(&base64(d)).unwrap(), d);
        }
        assert_eq!(base64(b"hello"), "aGVsbG8=");
    }

    #[test]
    fn usage_lists_zkcli_commands_in_order() {
        let u = usage_all();
        let lines: Vec<&str> = u.lines().collect();
        assert_eq!(lines[1], "\taddWatch [-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE");
        assert_eq!(lines[2], "\taddauth scheme auth");
        assert_eq!(lines[28], "\twhoami ");
        assert_eq!(lines.len(), 29);
        assert!(usage_text(true).contains("\tcp source"));
    }
}

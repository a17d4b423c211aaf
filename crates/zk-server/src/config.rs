//! Server configuration: ZooKeeper's `zoo.cfg` keys (Java properties syntax), with
//! ZooKeeper's defaults. Keys this server does not use are reported, never fatal, so any
//! zoo.cfg Apache ZooKeeper accepts starts `zkd`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration problem: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

/// How a read is served in an ensemble (`readPolicy`); see [`Config::read_policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPolicy {
    Local,
    Linearizable,
    /// Local when in touch with the leader (or, leading, a quorum) within this many ms.
    Bounded(u64),
}

impl ReadPolicy {
    /// `local`, `linearizable`, `bounded(500)` (or `bounded:500`).
    pub fn parse(key: &str, value: &str) -> Result<ReadPolicy, ConfigError> {
        let v = value.trim().to_ascii_lowercase();
        let bad = || ConfigError {
            key: key.to_owned(),
            problem: format!("{value:?} is not a read policy: local, linearizable or bounded(MS)"),
        };
        match v.as_str() {
            "local" => Ok(ReadPolicy::Local),
            "linearizable" => Ok(ReadPolicy::Linearizable),
            _ => {
                let ms = v
                    .strip_prefix("bounded(")
                    .and_then(|r| r.strip_suffix(')'))
                    .or_else(|| v.strip_prefix("bounded:"))
                    .ok_or_else(bad)?;
                ms.trim()
                    .parse::<u64>()
                    .map(ReadPolicy::Bounded)
                    .map_err(|_| bad())
            }
        }
    }
}

impl Config {
    /// The policy for reads of `path`: the longest matching prefix's, else the default.
    pub fn read_policy_for(&self, path: &str) -> ReadPolicy {
        self.read_policy_prefixes
            .iter()
            .filter(|(prefix, _)| {
                path == prefix
                    || prefix == "/"
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.read_policy, |(_, p)| *p)
    }
}

/// Everything the standalone server needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `tickTime`: the base time unit for session timeouts and expiry.
    pub tick_time_ms: u32,
    /// `dataDir`: snapshots (and txn logs unless `dataLogDir` is set).
    pub data_dir: PathBuf,
    /// `dataLogDir`: txn logs on their own device.
    pub data_log_dir: Option<PathBuf>,
    /// `clientPortAddress`:`clientPort`.
    pub client_addr: SocketAddr,
    /// `minSessionTimeout` / `maxSessionTimeout` (default 2x and 20x tickTime).
    pub min_session_timeout_ms: Option<u32>,
    pub max_session_timeout_ms: Option<u32>,
    /// `maxClientCnxns`: connections per client IP (0 = unlimited).
    pub max_client_cnxns: usize,
    /// `globalOutstandingLimit`: requests in flight before the server stops reading.
    pub global_outstanding_limit: usize,
    /// `4lw.commands.whitelist`: allowed four-letter words (`*` = all).
    pub four_letter_words: Vec<String>,
    /// `jute.maxbuffer`: the largest frame accepted.
    pub jute_max_buffer: usize,
    /// `zookeeper.extendedTypesEnabled`: TTL nodes.
    pub extended_types_enabled: bool,
    /// `forceSync`: fsync the txn log on each commit.
    pub force_sync: bool,
    /// `preAllocSize` in KiB.
    pub prealloc_kb: u64,
    /// `snapCount`.
    pub snap_count: u64,
    /// `autopurge.snapRetainCount` / `autopurge.purgeInterval` (hours, 0 = off).
    pub snap_retain_count: usize,
    pub purge_interval_hours: u64,
    /// `skipACL`.
    pub skip_acl: bool,
    /// `enforceQuota`.
    pub enforce_quota: bool,
    /// `DigestAuthenticationProvider.superDigest`: `super:<base64 sha1>`.
    pub super_digest: Option<String>,
    /// `fsync.warningthresholdms`.
    pub fsync_warn_ms: u64,
    /// `znode.container.checkIntervalMs`: how often empty containers and expired TTL nodes
    /// are looked for.
    pub container_check_interval_ms: u64,
    /// `znode.container.maxNeverUsedIntervalMs`: delete containers that never had a child
    /// after this long (0 = never).
    pub container_never_used_ms: u64,
    /// `sessionExpiry.stallThresholdMs` (zkd): a tick arriving more than this late means
    /// the server itself stalled (paused, starved); it then extends every session instead
    /// of expiring the ones it could not hear meanwhile. 0 turns the detection off.
    pub stall_threshold_ms: u64,
    /// `sessionExpiry.maxPerTick` (zkd): at most this many sessions expire per tick, the
    /// rest the next tick (0 = no cap).
    pub max_expirations_per_tick: usize,
    /// `watchCatchup.retainTxns` (zkd): how many recent txns' changes are remembered so a
    /// reconnecting client's persistent watches get exactly the events they missed (0 =
    /// off: ZooKeeper's behaviour, re-armed with the changes lost).
    pub watch_catchup_retain_txns: usize,
    /// `backup.target` (zkd; `backup.dir` is the same key): where the server ships its
    /// snapshots and committed txns as they are written, for point-in-time restore
    /// (`zkcli restore`): a directory (an existing mount) or `s3://bucket/prefix`.
    /// Unset: no backup.
    pub backup_target: Option<String>,
    /// `backup.s3.endpoint`, `backup.s3.region`, `backup.s3.accessKeyId`,
    /// `backup.s3.secretAccessKey` (zkd): S3 settings over the `AWS_*` environment's.
    pub backup_s3: zk_backup::S3Options,
    /// `readPolicy` (zkd): how reads are served in an ensemble by default: `local` (as
    /// ZooKeeper: from this server's state, possibly behind the leader), `linearizable`
    /// (after a read barrier: the leader confirms with a quorum that it still leads, and
    /// this server applies everything committed until then), or `bounded(ms)` (locally
    /// while this server heard from its leader, or a leader from a quorum, within `ms`;
    /// otherwise as `linearizable`).
    pub read_policy: ReadPolicy,
    /// `readPolicy./path=...` (zkd): the policy for a subtree (longest prefix wins), e.g.
    /// `readPolicy./locks=linearizable` with `readPolicy=local`.
    pub read_policy_prefixes: Vec<(String, ReadPolicy)>,
    /// `backup.intervalMs` (zkd): how often the backup ships what is new; the most a
    /// backup can be behind on a healthy target.
    pub backup_interval_ms: u64,
    /// `clientPort.maxPacket` (zkd): the largest frame the plain client port accepts
    /// (default `jute.maxbuffer`). A bigger one closes the connection, as in ZooKeeper.
    pub max_packet: Option<usize>,
    /// `secureClientPort.maxPacket` (zkd): the same for the TLS client port.
    pub secure_max_packet: Option<usize>,
    /// `guardrails.warnPercent` (zkd): a write leaving a znode's data, or its parent's
    /// children list, above this share of `jute.maxbuffer` is logged and counted (0 = off).
    pub size_warn_percent: u8,
    /// `guardrails.maxChildren` (zkd): creates under a parent with this many children are
    /// refused with QUOTAEXCEEDED (0 = no cap).
    pub max_children: usize,
    /// `admin.enableServer`: serve the AdminServer.
    pub admin_enabled: bool,
    /// `admin.serverAddress`:`admin.serverPort`.
    pub admin_addr: SocketAddr,
    /// `admin.forceHttps`: the AdminServer speaks HTTPS only, with the `ssl.*` key and
    /// trust stores; a client certificate gives the web console an `x509` identity.
    pub admin_https: bool,
    /// `admin.needClientAuth`: with HTTPS, a client certificate is required (else asked
    /// for, optional).
    pub admin_need_client_auth: bool,
    /// The server id (`myid`), the top byte of session ids; 0 for a standalone server.
    pub server_id: u8,
    /// `secureClientPortAddress`:`secureClientPort`: the TLS client port, if any.
    pub secure_client_addr: Option<SocketAddr>,
    /// `client.portUnification`: the plain client port also accepts TLS (told apart by the
    /// first byte), for rolling upgrades.
    pub port_unification: bool,
    /// The `ssl.*` settings (key and trust stores, client auth, protocols, suites).
    pub tls: crate::tls::TlsSettings,
    /// SASL DIGEST-MD5 users, from the JAAS file named by the JVM property
    /// `java.security.auth.login.config` (section `zookeeper.sasl.serverconfig`, `Server`).
    pub sasl_users: Option<crate::sasl::SaslUsers>,
    /// `zookeeper.superUser`: this SASL user is a superuser.
    pub sasl_super_user: Option<String>,
    /// `enforce.auth.enabled` (or the older `sessionRequireClientSASLAuth`): sessions must
    /// authenticate with one of `enforce_auth_schemes` before anything else, or get
    /// SESSIONCLOSEDREQUIRESASLAUTH (-124) and lose the connection.
    pub enforce_auth: bool,
    /// `enforce.auth.schemes`.
    pub enforce_auth_schemes: Vec<String>,
    /// Keys that were read but are not used by this server (reported at startup).
    pub ignored_keys: Vec<String>,
    /// The ensemble's `server.N` lines (empty or one: standalone).
    pub servers: Vec<ServerSpec>,
    /// `initLimit` (ticks): how long a follower may take to connect and sync.
    pub init_limit: u64,
    /// `syncLimit` (ticks): how long a follower may be out of touch with its leader.
    pub sync_limit: u64,
    /// `quorum.auth.enableSasl` with the JAAS sections `QuorumLearner` (this server's
    /// credentials) and `QuorumServer` (the users it accepts): peers prove they know the
    /// password before a link counts.
    pub quorum_auth: Option<zk_peer::QuorumAuth>,
    /// `readonlymode.enabled`: a member cut off from its quorum serves reads to clients that
    /// allow read-only connections (and refuses their writes with NOTREADONLY).
    pub read_only_enabled: bool,
    /// `reconfigEnabled`: dynamic reconfiguration (`reconfig`) is allowed.
    pub reconfig_enabled: bool,
    /// `group.N=id:id:...` lines: hierarchical quorums (a majority of groups, each by a
    /// majority of its weight); empty for a plain majority.
    pub groups: Vec<Vec<u64>>,
    /// `weight.N=w` lines (default 1; 0: never counts, never leads).
    pub weights: BTreeMap<u64, u64>,
    /// `sslQuorum=true` with the `ssl.quorum.*` stores: TLS between members, both sides
    /// presenting certificates.
    pub quorum_tls: Option<crate::tls::TlsSettings>,
    /// Test builds only (feature `testing`; no configuration file sets it): a deliberate
    /// difference from ZooKeeper, for the compatibility oracle's own test.
    /// `"getData.aversion"`: getData answers with the Stat's aversion one too high.
    #[cfg(feature = "testing")]
    pub inject_difference: Option<&'static str>,
}

/// One `server.N=host:quorumPort:electionPort[:participant|:observer][;[addr:]clientPort]`
/// line. zkd carries both Zab and leader election on one gRPC port, the quorum port (the
/// first); the election port is parsed and kept for compatibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    pub client_port: Option<u16>,
    /// The client address of the line (`0.0.0.0` when only a port is given).
    pub client_host: Option<String>,
}

/// `/zookeeper/config` text: the server lines and `version=<hex>`.
pub fn config_text(servers: &[ServerSpec], version: i64) -> String {
    let mut s: String = servers.iter().map(|sv| sv.config_line() + "\n").collect();
    s.push_str(&format!("version={version:x}"));
    s
}

/// Reads `/zookeeper/config` text (`server.N=...` lines and `version=<hex>`): the servers
/// and the version.
pub fn parse_config_text(text: &str) -> Result<(Vec<ServerSpec>, i64), ConfigError> {
    let mut servers = Vec::new();
    let mut version = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').ok_or_else(|| ConfigError {
            key: line.to_owned(),
            problem: "expected key=value".into(),
        })?;
        if k == "version" {
            version = i64::from_str_radix(v.trim(), 16).map_err(|_| ConfigError {
                key: "version".into(),
                problem: format!("{v:?} is not a hex version"),
            })?;
        } else if let Some(id) = k.strip_prefix("server.") {
            let id = id
                .parse::<u64>()
                .ok()
                .filter(|id| (1..=255).contains(id))
                .ok_or_else(|| ConfigError {
                    key: k.to_owned(),
                    problem: "the server id must be a number from 1 to 255".into(),
                })?;
            servers.push(ServerSpec::parse(id, v)?);
        }
    }
    servers.sort_by_key(|s| s.id);
    Ok((servers, version))
}

impl ServerSpec {
    /// Parses the value of a `server.N` key.
    pub fn parse(id: u64, value: &str) -> Result<ServerSpec, ConfigError> {
        let key = format!("server.{id}");
        let bad = |problem: String| ConfigError {
            key: key.clone(),
            problem,
        };
        let (addrs, client) = match value.split_once(';') {
            Some((a, c)) => (a.trim(), Some(c.trim())),
            None => (value.trim(), None),
        };
        let parts: Vec<&str> = addrs.split(':').collect();
        if parts.len() < 3 || parts.len() > 4 {
            return Err(bad(format!(
                "{value:?} is not host:quorumPort:electionPort[:participant|observer]"
            )));
        }
        let port = |p: &str| -> Result<u16, ConfigError> {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(format!("{p:?} is not a port number")))
        };
        let observer = match parts.get(3).map(|r| r.trim().to_ascii_lowercase()) {
            None => false,
            Some(r) if r == "participant" => false,
            Some(r) if r == "observer" => true,
            Some(r) => return Err(bad(format!("unknown role {r:?}"))),
        };
        let client_port = match client {
            None | Some("") => None,
            Some(c) => Some(port(c.rsplit(':').next().unwrap_or(c))?),
        };
        let client_host = match client {
            None | Some("") => None,
            Some(c) => Some(match c.rsplit_once(':') {
                Some((host, _)) => host.trim().to_owned(),
                None => "0.0.0.0".to_owned(),
            }),
        };
        Ok(ServerSpec {
            id,
            host: parts[0].trim().to_owned(),
            quorum_port: port(parts[1])?,
            election_port: port(parts[2])?,
            observer,
            client_port,
            client_host,
        })
    }

    /// The line as ZooKeeper prints it in `/zookeeper/config` and `voting_view`:
    /// `server.N=host:quorumPort:electionPort:role[;clientHost:clientPort]`.
    pub fn config_line(&self) -> String {
        let role = if self.observer {
            "observer"
        } else {
            "participant"
        };
        let client = match (&self.client_host, self.client_port) {
            (Some(h), Some(p)) => format!(";{h}:{p}"),
            _ => String::new(),
        };
        format!(
            "server.{}={}:{}:{}:{role}{client}",
            self.id, self.host, self.quorum_port, self.election_port
        )
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tick_time_ms: 2000,
            data_dir: PathBuf::from("zkd-data"),
            data_log_dir: None,
            client_addr: SocketAddr::from(([0, 0, 0, 0], 2181)),
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            max_client_cnxns: 60,
            global_outstanding_limit: 1000,
            four_letter_words: vec!["srvr".to_owned()],
            jute_max_buffer: zk_proto::JUTE_MAXBUFFER_DEFAULT,
            extended_types_enabled: false,
            force_sync: true,
            prealloc_kb: 65536,
            snap_count: 100_000,
            snap_retain_count: 3,
            purge_interval_hours: 0,
            skip_acl: false,
            enforce_quota: false,
            super_digest: None,
            fsync_warn_ms: 1000,
            container_check_interval_ms: 60_000,
            container_never_used_ms: 0,
            stall_threshold_ms: 2000,
            max_expirations_per_tick: 0,
            watch_catchup_retain_txns: 600_000,
            backup_target: None,
            backup_s3: zk_backup::S3Options::default(),
            backup_interval_ms: 1000,
            read_policy: ReadPolicy::Local,
            read_policy_prefixes: Vec::new(),
            max_packet: None,
            secure_max_packet: None,
            size_warn_percent: 80,
            max_children: 0,
            admin_enabled: true,
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_https: false,
            admin_need_client_auth: false,
            server_id: 0,
            secure_client_addr: None,
            port_unification: false,
            tls: crate::tls::TlsSettings {
                handshake_timeout_ms: 5000,
                ..crate::tls::TlsSettings::default()
            },
            sasl_users: None,
            sasl_super_user: None,
            enforce_auth: false,
            enforce_auth_schemes: Vec::new(),
            ignored_keys: Vec::new(),
            servers: Vec::new(),
            init_limit: 10,
            sync_limit: 5,
            quorum_auth: None,
            read_only_enabled: false,
            reconfig_enabled: false,
            groups: Vec::new(),
            weights: BTreeMap::new(),
            quorum_tls: None,
            #[cfg(feature = "testing")]
            inject_difference: None,
        }
    }
}

/// Keys ZooKeeper accepts that only matter to the JVM or to features this server replaces;
/// they are accepted with one log line each.
const KNOWN_UNUSED: &[&str] = &[
    "electionAlg",
    "serverCnxnFactory",
    "metricsProvider.className",
    "metricsProvider.httpPort",
    "standaloneEnabled",
    "quorumListenOnAllIPs",
    "leaderServes",
    "clientPortListenBacklog",
    "maxCnxns",
    "audit.enable",
    "digest.enabled",
    "snapshot.compression.method",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
    "commitLogCount",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "ssl.hostnameVerification",
    "ssl.clientHostnameVerification",
    "ssl.context.supplier.class",
    "ssl.sslProvider",
    "ssl.ocsp",
    "ssl.crl",
    "ssl.fipsMode",
    "ssl.authProvider",
    "authProvider.1",
    "authProvider.2",
    "authProvider.3",
];

/// Parses Java properties text: `key=value` or `key: value` or `key value`, `#`/`!`
/// comments, surrounding blanks trimmed. (Line continuations are rare in zoo.cfg and not
/// supported.)
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line
            .find(['=', ':'])
            .or_else(|| line.find(char::is_whitespace));
        let (k, v) = match split {
            Some(i) => (line[..i].trim(), line[i + 1..].trim()),
            None => (line, ""),
        };
        out.insert(k.to_owned(), v.to_owned());
    }
    out
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse::<T>().map_err(|_| ConfigError {
        key: key.to_owned(),
        problem: format!("{v:?} is not a valid number"),
    })
}

/// A frame size limit: at least 1 KiB (a handshake must fit), below 2 GiB (jute lengths
/// are signed 32-bit).
fn packet_size(key: &str, v: &str) -> Result<usize, ConfigError> {
    let n: usize = number(key, v)?;
    if !(1024..=i32::MAX as usize).contains(&n) {
        return Err(ConfigError {
            key: key.to_owned(),
            problem: format!("{n} is outside 1024..=2147483647 bytes"),
        });
    }
    Ok(n)
}

fn percent(key: &str, v: &str) -> Result<u8, ConfigError> {
    let n: u8 = number(key, v)?;
    if n > 100 {
        return Err(ConfigError {
            key: key.to_owned(),
            problem: format!("{n} is not a percentage (0 to 100)"),
        });
    }
    Ok(n)
}

fn boolean(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(ConfigError {
            key: key.to_owned(),
            problem: format!("{v:?} is not yes/no/true/false"),
        }),
    }
}

/// Reads one TLS-related key (zoo.cfg name, or a system property without its `zookeeper.`
/// prefix); false when the key is not one of them.
fn apply_tls_key(
    c: &mut Config,
    secure_port: &mut Option<u16>,
    secure_addr: &mut Option<std::net::IpAddr>,
    k: &str,
    v: &str,
) -> Result<bool, ConfigError> {
    use crate::tls::ClientAuth;
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect()
    };
    match k {
        "secureClientPort" => *secure_port = Some(number(k, v)?),
        "secureClientPortAddress" => {
            *secure_addr = Some(v.parse().map_err(|_| ConfigError {
                key: k.to_owned(),
                problem: format!("{v:?} is not an IP address"),
            })?)
        }
        "client.portUnification" => c.port_unification = boolean(k, v)?,
        "ssl.keyStore.location" => store(&mut c.tls.key_store).location = PathBuf::from(v),
        "ssl.keyStore.password" => store(&mut c.tls.key_store).password = Some(v.to_owned()),
        "ssl.keyStore.passwordPath" => {
            store(&mut c.tls.key_store).password = Some(read_password(k, v)?)
        }
        "ssl.keyStore.type" => store(&mut c.tls.key_store).kind = Some(v.to_owned()),
        "ssl.trustStore.location" => store(&mut c.tls.trust_store).location = PathBuf::from(v),
        "ssl.trustStore.password" => store(&mut c.tls.trust_store).password = Some(v.to_owned()),
        "ssl.trustStore.passwordPath" => {
            store(&mut c.tls.trust_store).password = Some(read_password(k, v)?)
        }
        "ssl.trustStore.type" => store(&mut c.tls.trust_store).kind = Some(v.to_owned()),
        "ssl.clientAuth" => {
            c.tls.client_auth = ClientAuth::parse(v).ok_or_else(|| ConfigError {
                key: k.to_owned(),
                problem: format!("{v:?} is not need, want or none"),
            })?
        }
        "ssl.protocol" => c.tls.protocol = Some(v.trim().to_owned()),
        "ssl.enabledProtocols" => c.tls.enabled_protocols = list(v),
        "ssl.ciphersuites" => c.tls.ciphersuites = list(v),
        "ssl.handshakeDetectionTimeoutMillis" => c.tls.handshake_timeout_ms = number(k, v)?,
        "X509AuthenticationProvider.superUser" => c.tls.super_user = Some(v.to_owned()),
        "superUser" => c.sasl_super_user = Some(v.to_owned()),
        "enforce.auth.enabled" => c.enforce_auth = boolean(k, v)?,
        "enforce.auth.schemes" => c.enforce_auth_schemes = list(v),
        "sessionRequireClientSASLAuth" => {
            if boolean(k, v)? {
                c.enforce_auth = true;
                if c.enforce_auth_schemes.is_empty() {
                    c.enforce_auth_schemes = vec!["sasl".into()];
                }
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn store(s: &mut Option<crate::tls::Store>) -> &mut crate::tls::Store {
    s.get_or_insert_with(|| crate::tls::Store {
        location: PathBuf::new(),
        password: None,
        kind: None,
    })
}

/// `ssl.*.passwordPath`: the password is the file's content (trailing newline dropped).
fn read_password(key: &str, path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|e| ConfigError {
            key: key.to_owned(),
            problem: format!("cannot read {path}: {e}"),
        })
}

impl Config {
    /// Builds a configuration from zoo.cfg properties, plus JVM system properties
    /// (`-Dkey=value` from `SERVER_JVMFLAGS`, e.g. `zookeeper.extendedTypesEnabled`,
    /// `jute.maxbuffer`).
    pub fn from_properties(
        props: &BTreeMap<String, String>,
        system: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let mut port: u16 = 2181;
        let mut port_addr: Option<std::net::IpAddr> = None;
        // Precedence: zoo.cfg over JVM system properties over defaults (the command line,
        // which only names the file, is above them all).
        let mut secure_port: Option<u16> = None;
        let mut secure_addr: Option<std::net::IpAddr> = None;
        let mut ssl_quorum = false;
        let mut quorum_scratch = Config::default();
        for (k, v) in system {
            match k.as_str() {
                "zookeeper.extendedTypesEnabled" => c.extended_types_enabled = boolean(k, v)?,
                "jute.maxbuffer" => c.jute_max_buffer = number(k, v)?,
                "zookeeper.snapCount" => c.snap_count = number(k, v)?,
                "zookeeper.skipACL" => c.skip_acl = boolean(k, v)?,
                "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    c.super_digest = Some(v.clone())
                }
                "znode.container.checkIntervalMs" | "zookeeper.znode.container.checkIntervalMs" => {
                    c.container_check_interval_ms = number(k, v)?
                }
                "znode.container.maxNeverUsedIntervalMs"
                | "zookeeper.znode.container.maxNeverUsedIntervalMs" => {
                    c.container_never_used_ms = number(k, v)?
                }
                "zookeeper.admin.enableServer" => c.admin_enabled = boolean(k, v)?,
                "readonlymode.enabled" => c.read_only_enabled = boolean(k, v)?,
                "zookeeper.admin.serverPort" => c.admin_addr.set_port(number(k, v)?),
                "zookeeper.4lw.commands.whitelist" => {
                    c.four_letter_words = v.split(',').map(|w| w.trim().to_owned()).collect()
                }
                // Properties the server reads elsewhere (the JAAS file) or that only the
                // JVM or the Java client use.
                "java.security.auth.login.config" | "zookeeper.sasl.serverconfig" => {}
                other => {
                    let used = match other.strip_prefix("zookeeper.") {
                        Some(key) => {
                            apply_tls_key(&mut c, &mut secure_port, &mut secure_addr, key, v)?
                        }
                        None => false,
                    };
                    // Logged once at startup, never fatal.
                    if !used && (other.starts_with("zookeeper.") || other.starts_with("jute.")) {
                        c.ignored_keys.push(format!("-D{other}"));
                    }
                }
            }
        }
        for (k, v) in props {
            match k.as_str() {
                "tickTime" => c.tick_time_ms = number(k, v)?,
                "dataDir" => c.data_dir = PathBuf::from(v),
                "dataLogDir" => c.data_log_dir = Some(PathBuf::from(v)),
                "clientPort" => port = number(k, v)?,
                "clientPortAddress" => {
                    port_addr = Some(v.parse().map_err(|_| ConfigError {
                        key: k.clone(),
                        problem: format!("{v:?} is not an IP address"),
                    })?)
                }
                "minSessionTimeout" => c.min_session_timeout_ms = Some(number(k, v)?),
                "maxSessionTimeout" => c.max_session_timeout_ms = Some(number(k, v)?),
                "maxClientCnxns" => c.max_client_cnxns = number(k, v)?,
                "sessionExpiry.stallThresholdMs" => c.stall_threshold_ms = number(k, v)?,
                "sessionExpiry.maxPerTick" => c.max_expirations_per_tick = number(k, v)?,
                "watchCatchup.retainTxns" => c.watch_catchup_retain_txns = number(k, v)?,
                "backup.dir" | "backup.target" => c.backup_target = Some(v.clone()),
                "backup.s3.endpoint" => c.backup_s3.endpoint = Some(v.clone()),
                "backup.s3.region" => c.backup_s3.region = Some(v.clone()),
                "backup.s3.accessKeyId" => c.backup_s3.access_key_id = Some(v.clone()),
                "backup.s3.secretAccessKey" => c.backup_s3.secret_access_key = Some(v.clone()),
                "backup.intervalMs" => c.backup_interval_ms = number(k, v)?,
                "readPolicy" => c.read_policy = ReadPolicy::parse(k, v)?,
                _ if k.starts_with("readPolicy./") => {
                    let prefix = k.trim_start_matches("readPolicy.").to_owned();
                    c.read_policy_prefixes
                        .push((prefix, ReadPolicy::parse(k, v)?));
                }
                "clientPort.maxPacket" => c.max_packet = Some(packet_size(k, v)?),
                "secureClientPort.maxPacket" => c.secure_max_packet = Some(packet_size(k, v)?),
                "guardrails.warnPercent" => c.size_warn_percent = percent(k, v)?,
                "guardrails.maxChildren" => c.max_children = number(k, v)?,
                "globalOutstandingLimit" => c.global_outstanding_limit = number(k, v)?,
                "4lw.commands.whitelist" => {
                    c.four_letter_words = v
                        .split(',')
                        .map(|w| w.trim().to_owned())
                        .filter(|w| !w.is_empty())
                        .collect()
                }
                "forceSync" => c.force_sync = boolean(k, v)?,
                "preAllocSize" => c.prealloc_kb = number(k, v)?,
                "snapCount" => c.snap_count = number(k, v)?,
                "autopurge.snapRetainCount" => c.snap_retain_count = number(k, v)?,
                "autopurge.purgeInterval" => c.purge_interval_hours = number(k, v)?,
                "skipACL" => c.skip_acl = boolean(k, v)?,
                "enforceQuota" => c.enforce_quota = boolean(k, v)?,
                "fsync.warningthresholdms" => c.fsync_warn_ms = number(k, v)?,
                "extendedTypesEnabled" => c.extended_types_enabled = boolean(k, v)?,
                "DigestAuthenticationProvider.superDigest" => c.super_digest = Some(v.clone()),
                "admin.enableServer" => c.admin_enabled = boolean(k, v)?,
                "admin.forceHttps" => c.admin_https = boolean(k, v)?,
                "admin.needClientAuth" => c.admin_need_client_auth = boolean(k, v)?,
                "admin.serverPort" => c.admin_addr.set_port(number(k, v)?),
                "admin.serverAddress" => {
                    c.admin_addr.set_ip(v.parse().map_err(|_| ConfigError {
                        key: k.clone(),
                        problem: format!("{v:?} is not an IP address"),
                    })?)
                }
                other if apply_tls_key(&mut c, &mut secure_port, &mut secure_addr, other, v)? => {}
                "initLimit" => c.init_limit = number(k, v)?,
                "readonlymode.enabled" => c.read_only_enabled = boolean(k, v)?,
                "reconfigEnabled" => c.reconfig_enabled = boolean(k, v)?,
                // Read below with the JAAS file.
                "quorum.auth.enableSasl"
                | "quorum.auth.learnerRequireSasl"
                | "quorum.auth.serverRequireSasl"
                | "quorum.auth.learner.saslLoginContext"
                | "quorum.auth.server.saslLoginContext" => {}
                "syncLimit" => c.sync_limit = number(k, v)?,
                "sslQuorum" => ssl_quorum = boolean(k, v)?,
                other if other.starts_with("ssl.quorum.") => {
                    // The same keys as the client port's, under ssl.quorum.
                    let key = format!("ssl.{}", &other["ssl.quorum.".len()..]);
                    let (mut p, mut a) = (None, None);
                    if !apply_tls_key(&mut quorum_scratch, &mut p, &mut a, &key, v)? {
                        c.ignored_keys.push(other.to_owned());
                    }
                }
                other if other.starts_with("group.") => {
                    let ids: Result<Vec<u64>, _> =
                        v.split(':').map(|id| id.trim().parse::<u64>()).collect();
                    c.groups.push(ids.map_err(|_| ConfigError {
                        key: k.clone(),
                        problem: format!("{v:?} is not a list of server ids (1:2:3)"),
                    })?);
                }
                other if other.starts_with("weight.") => {
                    let id = other["weight.".len()..]
                        .parse::<u64>()
                        .map_err(|_| ConfigError {
                            key: k.clone(),
                            problem: "expected weight.<server id>".into(),
                        })?;
                    c.weights.insert(id, number(k, v)?);
                }
                other if other.starts_with("server.") => {
                    let id = other["server.".len()..]
                        .parse::<u64>()
                        .ok()
                        .filter(|id| (1..=255).contains(id))
                        .ok_or_else(|| ConfigError {
                            key: k.clone(),
                            problem: "the server id must be a number from 1 to 255".into(),
                        })?;
                    c.servers.push(ServerSpec::parse(id, v)?);
                }
                // What zkd does anyway (one server line runs standalone; the quorum port
                // listens on every address): the official image writes these on every start.
                "standaloneEnabled" | "quorumListenOnAllIPs" if v.trim() == "true" => {}
                other if KNOWN_UNUSED.contains(&other) => c.ignored_keys.push(other.to_owned()),
                other => c.ignored_keys.push(other.to_owned()),
            }
        }
        c.client_addr = SocketAddr::new(
            port_addr.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            port,
        );
        c.servers.sort_by_key(|s| s.id);
        if ssl_quorum {
            c.quorum_tls = Some(quorum_scratch.tls);
        }
        let mut grouped = std::collections::BTreeSet::new();
        for g in &c.groups {
            for id in g {
                if !c.servers.iter().any(|s| s.id == *id) {
                    return Err(ConfigError {
                        key: "group".into(),
                        problem: format!("server {id} of a group has no server.{id} line"),
                    });
                }
                if !grouped.insert(*id) {
                    return Err(ConfigError {
                        key: "group".into(),
                        problem: format!("server {id} is in two groups"),
                    });
                }
            }
        }
        if c.init_limit == 0 || c.sync_limit == 0 {
            return Err(ConfigError {
                key: if c.init_limit == 0 {
                    "initLimit"
                } else {
                    "syncLimit"
                }
                .into(),
                problem: "must be positive".into(),
            });
        }
        if let Some(p) = secure_port {
            c.secure_client_addr = Some(SocketAddr::new(
                secure_addr.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
                p,
            ));
        }
        let quorum_sasl = match props.get("quorum.auth.enableSasl") {
            Some(v) => boolean("quorum.auth.enableSasl", v)?,
            None => false,
        };
        if quorum_sasl {
            let key = "java.security.auth.login.config";
            let path = system.get(key).ok_or_else(|| ConfigError {
                key: "quorum.auth.enableSasl".into(),
                problem: "needs a JAAS file (-Djava.security.auth.login.config=...)".into(),
            })?;
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                key: key.into(),
                problem: format!("cannot read {path}: {e}"),
            })?;
            let learner = props
                .get("quorum.auth.learner.saslLoginContext")
                .map_or("QuorumLearner", String::as_str);
            let server = props
                .get("quorum.auth.server.saslLoginContext")
                .map_or("QuorumServer", String::as_str);
            let bad = |p: String| ConfigError {
                key: key.into(),
                problem: format!("{path}: {p}"),
            };
            let (user, password) =
                crate::sasl::SaslUsers::login_from_jaas(&text, learner).map_err(bad)?;
            let users = crate::sasl::SaslUsers::from_jaas(&text, server).map_err(bad)?;
            c.quorum_auth = Some(zk_peer::QuorumAuth {
                user,
                password,
                users: users
                    .passwords()
                    .map(|(u, p)| (u.to_owned(), p.to_owned()))
                    .collect(),
            });
        }
        if let Some(path) = system.get("java.security.auth.login.config") {
            let section = system
                .get("zookeeper.sasl.serverconfig")
                .map_or("Server", String::as_str);
            let key = "java.security.auth.login.config";
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                key: key.into(),
                problem: format!("cannot read {path}: {e}"),
            })?;
            match crate::sasl::SaslUsers::from_jaas(&text, section) {
                Ok(users) => c.sasl_users = Some(users),
                // A JAAS file for quorum authentication only: clients have no SASL.
                Err(p) if quorum_sasl && p.starts_with("no section") => {}
                Err(p) => {
                    return Err(ConfigError {
                        key: key.into(),
                        problem: format!("{path}: {p}"),
                    })
                }
            }
        }
        if c.enforce_auth && c.enforce_auth_schemes.is_empty() {
            return Err(ConfigError {
                key: "enforce.auth.schemes".into(),
                problem: "must name at least one scheme when enforce.auth.enabled=true".into(),
            });
        }
        if c.tick_time_ms == 0 {
            return Err(ConfigError {
                key: "tickTime".into(),
                problem: "must be positive".into(),
            });
        }
        Ok(c)
    }

    /// `-Dkey=value` pairs of a `SERVER_JVMFLAGS`-style string.
    pub fn system_properties(jvm_flags: &str) -> BTreeMap<String, String> {
        jvm_flags
            .split_whitespace()
            .filter_map(|f| f.strip_prefix("-D"))
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect()
    }

    /// Negotiation bounds: configured, else 2x and 20x tickTime.
    pub fn session_timeout_bounds(&self) -> (u32, u32) {
        (
            self.min_session_timeout_ms.unwrap_or(2 * self.tick_time_ms),
            self.max_session_timeout_ms
                .unwrap_or(20 * self.tick_time_ms),
        )
    }

    /// Whether a four-letter word may run.
    pub fn four_letter_word_allowed(&self, word: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoo_cfg_sample_parses_with_defaults_and_ignored_keys() {
        let text = "# sample\ntickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/zk\nclientPort=2182\n4lw.commands.whitelist=ruok, srvr\nserver.1=localhost:2888:3888\nmystery.key=1\n";
        let c = Config::from_properties(&parse_properties(text), &BTreeMap::new()).unwrap();
        assert_eq!(c.client_addr.port(), 2182);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/zk"));
        assert!(c.four_letter_word_allowed("ruok") && !c.four_letter_word_allowed("mntr"));
        assert_eq!(c.session_timeout_bounds(), (4000, 40000));
        assert!(c.ignored_keys.contains(&"mystery.key".to_owned()));
        assert!(!c.ignored_keys.contains(&"initLimit".to_owned()));
        assert_eq!((c.init_limit, c.sync_limit), (10, 5));
        assert_eq!(c.servers.len(), 1);
        assert!(!c.is_ensemble(), "one server line: standalone");
    }

    #[test]
    fn quorum_authentication_reads_the_jaas_sections() {
        let dir = std::env::temp_dir().join(format!("zkd-jaas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jaas = dir.join("jaas.conf");
        std::fs::write(
            &jaas,
            "QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required user_a=\"pa\" user_b=\"pb\"; };\nQuorumLearner { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"a\" password=\"pa\"; };\n",
        )
        .unwrap();
        let system: BTreeMap<String, String> = [(
            "java.security.auth.login.config".to_owned(),
            jaas.display().to_string(),
        )]
        .into_iter()
        .collect();
        let c = Config::from_properties(
            &parse_properties("quorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\n"),
            &system,
        )
        .unwrap();
        let auth = c.quorum_auth.unwrap();
        assert_eq!((auth.user.as_str(), auth.password.as_str()), ("a", "pa"));
        assert_eq!(auth.users.len(), 2);
        assert!(c.sasl_users.is_none(), "no Server section: no client SASL");
        assert!(!c.ignored_keys.iter().any(|k| k.starts_with("quorum.auth")));
        // Enabled without a JAAS file: a clear error.
        let e = Config::from_properties(
            &parse_properties("quorum.auth.enableSasl=true\n"),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("JAAS"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ssl_quorum_keys_configure_tls_between_members() {
        let text = "sslQuorum=true\nssl.quorum.keyStore.location=/k.pem\nssl.quorum.trustStore.location=/ca.pem\nssl.quorum.hostnameVerification=false\n";
        let c = Config::from_properties(&parse_properties(text), &BTreeMap::new()).unwrap();
        let t = c.quorum_tls.unwrap();
        assert_eq!(
            t.key_store.unwrap().location,
            std::path::PathBuf::from("/k.pem")
        );
        assert_eq!(
            t.trust_store.unwrap().location,
            std::path::PathBuf::from("/ca.pem")
        );
        assert!(
            c.tls.key_store.is_none(),
            "the client port's settings are apart"
        );
        let c = Config::from_properties(
            &parse_properties("ssl.quorum.keyStore.location=/k.pem\n"),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(c.quorum_tls.is_none(), "only with sslQuorum=true");
    }

    #[test]
    fn groups_and_weights_make_a_hierarchical_quorum() {
        let text = "server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\ngroup.1=1:2\ngroup.2=3\nweight.1=1\nweight.2=1\nweight.3=1\n";
        let c = Config::from_properties(&parse_properties(text), &BTreeMap::new()).unwrap();
        let q = c.quorum();
        let set = |ids: &[u64]| ids.iter().copied().collect();
        // Two of three servers are not enough when they are one group of two: both groups
        // must have a majority of their weight.
        assert!(!q.contains_quorum(&set(&[1, 2])));
        assert!(!q.contains_quorum(&set(&[1, 3])));
        assert!(q.contains_quorum(&set(&[1, 2, 3])));
        let e = Config::from_properties(
            &parse_properties("server.1=a:1:2\nserver.2=b:1:2\ngroup.1=1:9\n"),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("server 9"), "{e}");
    }

    #[test]
    fn server_lines_parse_as_zookeeper_writes_them() {
        let text = "server.2=zk2:2888:3888;2182\nserver.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\nserver.3=zk3:2888:3888:observer\n";
        let c = Config::from_properties(&parse_properties(text), &BTreeMap::new()).unwrap();
        assert!(c.is_ensemble());
        let ids: Vec<u64> = c.servers.iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(c.servers[0].host, "10.0.0.1");
        assert_eq!(c.servers[0].client_port, Some(2181));
        assert_eq!(c.servers[1].client_port, Some(2182));
        assert!(c.servers[2].observer && !c.servers[1].observer);
        assert_eq!(
            (c.servers[2].quorum_port, c.servers[2].election_port),
            (2888, 3888)
        );
        for bad in [
            "server.1=host:2888",
            "server.1=host:x:3888",
            "server.1=host:2888:3888:leader",
            "server.0=host:2888:3888",
            "server.x=host:2888:3888",
        ] {
            let e = Config::from_properties(&parse_properties(bad), &BTreeMap::new()).unwrap_err();
            assert!(e.key.starts_with("server."), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::from_properties(&parse_properties("tickTime=fast"), &BTreeMap::new())
            .unwrap_err();
        assert_eq!(e.key, "tickTime");
        assert!(e.to_string().contains("tickTime"), "{e}");
        let e = Config::from_properties(&parse_properties("forceSync=maybe"), &BTreeMap::new())
            .unwrap_err();
        assert_eq!(e.key, "forceSync");
    }

    #[test]
    fn jvm_flags_are_system_properties() {
        let sys = Config::system_properties(
            "-Xmx1g -Dzookeeper.extendedTypesEnabled=true -Djute.maxbuffer=4194304",
        );
        let c = Config::from_properties(&BTreeMap::new(), &sys).unwrap();
        assert!(c.extended_types_enabled);
        assert_eq!(c.jute_max_buffer, 4_194_304);
    }

    #[test]
    fn guardrail_keys_and_their_bounds() {
        let c = Config::from_properties(&BTreeMap::new(), &BTreeMap::new()).unwrap();
        assert_eq!(c.max_packet_for(false), zk_proto::JUTE_MAXBUFFER_DEFAULT);
        assert_eq!(c.max_packet_for(true), zk_proto::JUTE_MAXBUFFER_DEFAULT);
        assert_eq!((c.size_warn_percent, c.max_children), (80, 0));
        let props = parse_properties(
            "secureClientPort.maxPacket=8388608\n\
             guardrails.warnPercent=50\nguardrails.maxChildren=1000\n",
        );
        let sys = Config::system_properties("-Djute.maxbuffer=2097152");
        let c = Config::from_properties(&props, &sys).unwrap();
        assert_eq!(
            c.max_packet_for(false),
            2_097_152,
            "jute.maxbuffer by default"
        );
        assert_eq!(c.max_packet_for(true), 8_388_608);
        assert_eq!((c.size_warn_percent, c.max_children), (50, 1000));
        for bad in [
            "clientPort.maxPacket=12",
            "clientPort.maxPacket=3000000000",
            "guardrails.warnPercent=150",
        ] {
            let e = Config::from_properties(&parse_properties(bad), &BTreeMap::new()).unwrap_err();
            assert_eq!(Some(e.key.as_str()), bad.split('=').next(), "{e}");
        }
        let t =
            Config::from_toml("max_packet = 4194304\nmax_children = 7\nsize_warn_percent = 90\n")
                .unwrap();
        assert_eq!(
            (t.max_packet_for(false), t.max_packet_for(true)),
            (4_194_304, zk_proto::JUTE_MAXBUFFER_DEFAULT)
        );
        assert_eq!((t.max_children, t.size_warn_percent), (7, 90));
        assert!(Config::from_toml("max_packet = 10\n").is_err());
    }
}

/// zkd's native TOML configuration: the zoo.cfg keys in snake case, units in the names.
/// Unknown keys are reported like unknown zoo.cfg keys.
#[derive(Debug, Default, serde::Deserialize)]
struct TomlConfig {
    tick_time_ms: Option<u32>,
    data_dir: Option<PathBuf>,
    data_log_dir: Option<PathBuf>,
    client_port: Option<u16>,
    client_port_address: Option<std::net::IpAddr>,
    min_session_timeout_ms: Option<u32>,
    max_session_timeout_ms: Option<u32>,
    max_client_cnxns: Option<usize>,
    global_outstanding_limit: Option<usize>,
    four_letter_words: Option<Vec<String>>,
    jute_max_buffer: Option<usize>,
    extended_types_enabled: Option<bool>,
    force_sync: Option<bool>,
    prealloc_kb: Option<u64>,
    snap_count: Option<u64>,
    snap_retain_count: Option<usize>,
    purge_interval_hours: Option<u64>,
    skip_acl: Option<bool>,
    enforce_quota: Option<bool>,
    super_digest: Option<String>,
    fsync_warn_ms: Option<u64>,
    container_check_interval_ms: Option<u64>,
    container_never_used_ms: Option<u64>,
    stall_threshold_ms: Option<u64>,
    max_expirations_per_tick: Option<usize>,
    watch_catchup_retain_txns: Option<usize>,
    backup_dir: Option<String>,
    backup_target: Option<String>,
    backup_interval_ms: Option<u64>,
    backup_s3_endpoint: Option<String>,
    read_policy: Option<String>,
    read_policy_prefixes: Option<BTreeMap<String, String>>,
    backup_s3_region: Option<String>,
    max_packet: Option<usize>,
    secure_max_packet: Option<usize>,
    size_warn_percent: Option<u8>,
    max_children: Option<usize>,
    server_id: Option<u8>,
    admin_enabled: Option<bool>,
    admin_port: Option<u16>,
    admin_address: Option<std::net::IpAddr>,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

impl Config {
    /// `/zookeeper/config` of an ensemble: its server lines and the configuration version
    /// (0 until a reconfiguration).
    pub fn ensemble_config_text(&self, version: i64) -> String {
        config_text(&self.servers, version)
    }

    /// Who decides: a majority of the participants, or hierarchical groups and weights
    /// when `group.N` lines are given.
    pub fn quorum(&self) -> zk_zab::quorum::Quorum {
        if self.groups.is_empty() {
            return zk_zab::quorum::Quorum::majority(
                self.servers.iter().filter(|s| !s.observer).map(|s| s.id),
            );
        }
        zk_zab::quorum::Quorum::Hierarchical {
            groups: self
                .groups
                .iter()
                .map(|g| g.iter().copied().collect())
                .collect(),
            weights: self.weights.clone(),
        }
    }

    /// The largest frame a client port accepts: its own `maxPacket`, else `jute.maxbuffer`.
    pub fn max_packet_for(&self, secure_port: bool) -> usize {
        let own = if secure_port {
            self.secure_max_packet
        } else {
            self.max_packet
        };
        own.unwrap_or(self.jute_max_buffer)
    }

    /// Whether the `server.N` lines make this an ensemble member (more than one server).
    pub fn is_ensemble(&self) -> bool {
        self.servers.len() > 1
    }

    /// An ensemble member's id: `myid` in the data directory, else `ZOO_MY_ID` (as the
    /// official image sets it). It must name one of the `server.N` lines.
    pub fn load_my_id(&mut self, env_my_id: Option<&str>) -> Result<(), ConfigError> {
        if !self.is_ensemble() || self.server_id != 0 {
            return Ok(());
        }
        let path = self.data_dir.join("myid");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(_) => match env_my_id {
                Some(v) => v.to_owned(),
                None => {
                    return Err(ConfigError {
                        key: "myid".into(),
                        problem: format!(
                            "an ensemble member needs its id in {} (or ZOO_MY_ID)",
                            path.display()
                        ),
                    })
                }
            },
        };
        let id = text.trim().parse::<u8>().ok().filter(|id| *id > 0);
        match id {
            Some(id) if self.servers.iter().any(|s| s.id == u64::from(id)) => {
                self.server_id = id;
                Ok(())
            }
            _ => Err(ConfigError {
                key: "myid".into(),
                problem: format!("{:?} does not name a server.N line", text.trim()),
            }),
        }
    }

    /// Sets this member's id from its host name's StatefulSet ordinal, for Kubernetes,
    /// where every pod of a StatefulSet shares one configuration: pod `zk-2` is member
    /// `2 + offset`. A `myid` file already in the data directory must agree, so a volume
    /// that moved to another pod is refused instead of joining under two identities.
    pub fn set_my_id_from_ordinal(
        &mut self,
        hostname: &str,
        offset: u64,
    ) -> Result<(), ConfigError> {
        let id = my_id_from_ordinal(hostname, offset)?;
        if !self.servers.iter().any(|s| s.id == u64::from(id)) {
            return Err(ConfigError {
                key: "myid".into(),
                problem: format!(
                    "{id} (from host name {hostname:?}) does not name a server.N line"
                ),
            });
        }
        let path = self.data_dir.join("myid");
        if let Ok(text) = std::fs::read_to_string(&path) {
            if text.trim() != id.to_string() {
                return Err(ConfigError {
                    key: "myid".into(),
                    problem: format!(
                        "{} says {:?} but host name {hostname:?} means {id}",
                        path.display(),
                        text.trim()
                    ),
                });
            }
        }
        self.server_id = id;
        Ok(())
    }

    /// Reads zkd's native TOML configuration.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let t: TomlConfig = toml::from_str(text).map_err(|e| ConfigError {
            key: e
                .span()
                .and_then(|s| text.get(s))
                .unwrap_or("(file)")
                .trim()
                .to_owned(),
            problem: e.message().to_owned(),
        })?;
        let mut c = Config::default();
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = t.$f { c.$f = v; } )* };
        }
        set!(
            tick_time_ms,
            data_dir,
            max_client_cnxns,
            global_outstanding_limit,
            four_letter_words,
            jute_max_buffer,
            extended_types_enabled,
            force_sync,
            prealloc_kb,
            snap_count,
            snap_retain_count,
            purge_interval_hours,
            skip_acl,
            enforce_quota,
            fsync_warn_ms,
            container_check_interval_ms,
            container_never_used_ms,
            stall_threshold_ms,
            max_expirations_per_tick,
            size_warn_percent,
            max_children,
            watch_catchup_retain_txns,
            backup_interval_ms,
            server_id,
            admin_enabled
        );
        c.backup_target = t.backup_target.clone().or_else(|| t.backup_dir.clone());
        c.backup_s3.endpoint = t.backup_s3_endpoint.clone();
        if let Some(p) = &t.read_policy {
            c.read_policy = ReadPolicy::parse("read_policy", p)?;
        }
        for (prefix, p) in t.read_policy_prefixes.iter().flatten() {
            c.read_policy_prefixes.push((
                prefix.clone(),
                ReadPolicy::parse("read_policy_prefixes", p)?,
            ));
        }
        c.backup_s3.region = t.backup_s3_region.clone();
        c.max_packet = t.max_packet;
        c.secure_max_packet = t.secure_max_packet;
        for (key, v) in [
            ("max_packet", c.max_packet),
            ("secure_max_packet", c.secure_max_packet),
        ] {
            if let Some(v) = v {
                packet_size(key, &v.to_string())?;
            }
        }
        if c.size_warn_percent > 100 {
            return Err(ConfigError {
                key: "size_warn_percent".into(),
                problem: "must be 0 to 100".into(),
            });
        }
        if let Some(p) = t.admin_port {
            c.admin_addr.set_port(p);
        }
        if let Some(a) = t.admin_address {
            c.admin_addr.set_ip(a);
        }
        c.data_log_dir = t.data_log_dir;
        c.min_session_timeout_ms = t.min_session_timeout_ms;
        c.max_session_timeout_ms = t.max_session_timeout_ms;
        c.super_digest = t.super_digest;
        c.client_addr = SocketAddr::new(
            t.client_port_address
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            t.client_port.unwrap_or(2181),
        );
        c.ignored_keys = t.unknown.into_keys().collect();
        if c.tick_time_ms == 0 {
            return Err(ConfigError {
                key: "tick_time_ms".into(),
                problem: "must be positive".into(),
            });
        }
        Ok(c)
    }

    /// Reads a configuration file's text: TOML when the name ends in `.toml` or the text
    /// parses as TOML tables, else zoo.cfg.
    pub fn from_file_text(
        name: &str,
        text: &str,
        system: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        if name.ends_with(".toml") {
            Config::from_toml(text)
        } else {
            Config::from_properties(&parse_properties(text), system)
        }
    }

    /// The zoo.cfg the official Docker image's entrypoint would write from `ZOO_*`
    /// variables (`ZOO_TICK_TIME`, `ZOO_DATA_DIR`, `ZOO_SERVERS`, `ZOO_CFG_EXTRA`, ...), or
    /// `None` when no such variable is set.
    pub fn properties_from_docker_env(
        env: &BTreeMap<String, String>,
    ) -> Option<BTreeMap<String, String>> {
        if !env.keys().any(|k| k.starts_with("ZOO_")) {
            return None;
        }
        let get =
            |k: &str, default: &str| env.get(k).cloned().unwrap_or_else(|| default.to_owned());
        let mut p = BTreeMap::new();
        p.insert("dataDir".into(), get("ZOO_DATA_DIR", "/data"));
        p.insert("dataLogDir".into(), get("ZOO_DATA_LOG_DIR", "/datalog"));
        p.insert("tickTime".into(), get("ZOO_TICK_TIME", "2000"));
        p.insert("initLimit".into(), get("ZOO_INIT_LIMIT", "5"));
        p.insert("syncLimit".into(), get("ZOO_SYNC_LIMIT", "2"));
        p.insert(
            "autopurge.snapRetainCount".into(),
            get("ZOO_AUTOPURGE_SNAPRETAINCOUNT", "3"),
        );
        p.insert(
            "autopurge.purgeInterval".into(),
            get("ZOO_AUTOPURGE_PURGEINTERVAL", "0"),
        );
        p.insert("maxClientCnxns".into(), get("ZOO_MAX_CLIENT_CNXNS", "60"));
        p.insert(
            "standaloneEnabled".into(),
            get("ZOO_STANDALONE_ENABLED", "true"),
        );
        p.insert(
            "admin.enableServer".into(),
            get("ZOO_ADMINSERVER_ENABLED", "true"),
        );
        if let Some(w) = env.get("ZOO_4LW_COMMANDS_WHITELIST") {
            p.insert("4lw.commands.whitelist".into(), w.clone());
        }
        let servers = get("ZOO_SERVERS", "server.1=localhost:2888:3888;2181");
        for s in servers.split_whitespace() {
            if let Some((k, v)) = s.split_once('=') {
                p.insert(k.to_owned(), v.to_owned());
            }
        }
        // The official image serves clients on 2181 (from the server line's client port).
        p.insert("clientPort".into(), "2181".into());
        if let Some(extra) = env.get("ZOO_CFG_EXTRA") {
            for kv in extra.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    p.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        Some(p)
    }
}

/// A member id from a StatefulSet pod's host name (`NAME-ORDINAL`, possibly followed by
/// a domain): the ordinal plus `offset`, since ordinals start at 0 and ids at 1.
pub fn my_id_from_ordinal(hostname: &str, offset: u64) -> Result<u8, ConfigError> {
    let bad = |problem: String| ConfigError {
        key: "myid".into(),
        problem,
    };
    let short = hostname.trim().split('.').next().unwrap_or_default();
    let ordinal = short
        .rsplit_once('-')
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad(format!("host name {hostname:?} does not end in -ORDINAL")))?;
    let id = ordinal
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_add(offset))
        .filter(|id| (1..=255).contains(id))
        .ok_or_else(|| {
            bad(format!(
                "host name {hostname:?} with offset {offset} gives no id in 1..=255"
            ))
        })?;
    u8::try_from(id).map_err(|_| bad(format!("id {id} is out of range")))
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn my_id_comes_from_the_statefulset_ordinal() {
        assert_eq!(my_id_from_ordinal("zk-0", 1).unwrap(), 1);
        assert_eq!(my_id_from_ordinal("zk-2", 1).unwrap(), 3);
        assert_eq!(my_id_from_ordinal("my-zk-ensemble-12", 1).unwrap(), 13);
        assert_eq!(
            my_id_from_ordinal("zk-4.zk-hs.default.svc.cluster.local", 1).unwrap(),
            5
        );
        assert_eq!(my_id_from_ordinal("zk-3", 0).unwrap(), 3);
        assert_eq!(my_id_from_ordinal(" zk-1\n", 1).unwrap(), 2);
        for bad in ["zk", "zk-", "zk-a", "zk-1a", "", "-", "zk-254x"] {
            assert!(my_id_from_ordinal(bad, 1).is_err(), "{bad:?}");
        }
        // Ids are 1..=255: ordinal 0 with offset 0 and ordinal 255 with offset 1 are refused.
        assert!(my_id_from_ordinal("zk-0", 0).is_err());
        assert!(my_id_from_ordinal("zk-255", 1).is_err());
        assert!(my_id_from_ordinal("zk-99999999999999999999", 1).is_err());
        assert_eq!(my_id_from_ordinal("zk-254", 1).unwrap(), 255);
    }

    #[test]
    fn ordinal_id_must_name_a_server_and_agree_with_myid() {
        let dir = std::env::temp_dir().join(format!("zkd-ordinal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "dataDir={}\nserver.1=zk-0.zk-hs:2888:3888;2181\nserver.2=zk-1.zk-hs:2888:3888;2181\nserver.3=zk-2.zk-hs:2888:3888;2181\n",
            dir.display()
        );
        let base = Config::from_properties(&parse_properties(&text), &BTreeMap::new()).unwrap();
        let mut c = base.clone();
        c.set_my_id_from_ordinal("zk-2", 1).unwrap();
        assert_eq!(c.server_id, 3);
        let mut c = base.clone();
        let e = c.set_my_id_from_ordinal("zk-3", 1).unwrap_err();
        assert!(
            e.to_string().contains("does not name a server.N line"),
            "{e}"
        );
        std::fs::write(dir.join("myid"), "1\n").unwrap();
        let mut c = base.clone();
        let e = c.set_my_id_from_ordinal("zk-1", 1).unwrap_err();
        assert!(e.to_string().contains("means 2"), "{e}");
        let mut c = base;
        c.set_my_id_from_ordinal("zk-0", 1).unwrap();
        assert_eq!(c.server_id, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn toml_config_reads_and_reports_unknown_keys() {
        let c = Config::from_toml(
            "tick_time_ms = 1000\ndata_dir = \"/var/lib/zkd\"\nclient_port = 2190\nfour_letter_words = [\"ruok\"]\nmystery = 1\n",
        )
        .unwrap();
        assert_eq!(c.tick_time_ms, 1000);
        assert_eq!(c.client_addr.port(), 2190);
        assert_eq!(c.ignored_keys, vec!["mystery".to_owned()]);
        let e = Config::from_toml("tick_time_ms = \"fast\"\n").unwrap_err();
        assert!(
            e.to_string().contains("tick_time_ms") || e.key.contains("fast"),
            "{e}"
        );
    }

    #[test]
    fn docker_env_becomes_a_zoo_cfg() {
        let env: BTreeMap<String, String> = [
            ("ZOO_TICK_TIME", "3000"),
            ("ZOO_4LW_COMMANDS_WHITELIST", "ruok,mntr"),
            (
                "ZOO_CFG_EXTRA",
                "maxSessionTimeout=60000 fsync.warningthresholdms=50",
            ),
            ("ZOO_DATA_DIR", "/tmp/zkd-docker"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let p = Config::properties_from_docker_env(&env).unwrap();
        let c = Config::from_properties(&p, &BTreeMap::new()).unwrap();
        assert_eq!(c.tick_time_ms, 3000);
        assert!(c.four_letter_word_allowed("mntr"));
        assert_eq!(c.max_session_timeout_ms, Some(60000));
        assert_eq!(c.fsync_warn_ms, 50);
        assert_eq!(c.client_addr.port(), 2181);
        assert!(Config::properties_from_docker_env(&BTreeMap::new()).is_none());
    }

    #[test]
    fn backup_settings_in_zoo_cfg_and_toml() {
        let p = parse_properties("dataDir=/d\nbackup.dir=/mnt/backup\nbackup.intervalMs=250\n");
        let c = Config::from_properties(&p, &BTreeMap::new()).unwrap();
        assert_eq!(c.backup_target.as_deref(), Some("/mnt/backup"));
        assert_eq!(c.backup_interval_ms, 250);
        let c = Config::from_toml("data_dir = \"/d\"\nbackup_dir = \"/b\"\n").unwrap();
        assert_eq!(
            (c.backup_target.as_deref(), c.backup_interval_ms),
            (Some("/b"), 1000)
        );
        let p = parse_properties(
            "dataDir=/d\nbackup.target=s3://b/zk1\nbackup.s3.endpoint=http://127.0.0.1:9000\n",
        );
        let c = Config::from_properties(&p, &BTreeMap::new()).unwrap();
        assert_eq!(c.backup_target.as_deref(), Some("s3://b/zk1"));
        assert_eq!(
            c.backup_s3.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        let bad = parse_properties("dataDir=/d\nbackup.intervalMs=soon\n");
        assert!(Config::from_properties(&bad, &BTreeMap::new()).is_err());
    }

    #[test]
    fn read_policies_parse_and_the_longest_prefix_wins() {
        let p = parse_properties(
            "dataDir=/d\nreadPolicy=bounded(250)\nreadPolicy./locks=linearizable\nreadPolicy./locks/cheap=local\n",
        );
        let c = Config::from_properties(&p, &BTreeMap::new()).unwrap();
        assert_eq!(c.read_policy_for("/app"), ReadPolicy::Bounded(250));
        assert_eq!(c.read_policy_for("/locks"), ReadPolicy::Linearizable);
        assert_eq!(c.read_policy_for("/locks/a/b"), ReadPolicy::Linearizable);
        assert_eq!(c.read_policy_for("/locks/cheap/x"), ReadPolicy::Local);
        assert_eq!(c.read_policy_for("/locksmith"), ReadPolicy::Bounded(250));
        assert_eq!(
            ReadPolicy::parse("k", "bounded:10").unwrap(),
            ReadPolicy::Bounded(10)
        );
        for bad in ["sometimes", "bounded()", "bounded(x)", ""] {
            assert!(ReadPolicy::parse("readPolicy", bad).is_err(), "{bad}");
        }
        let c = Config::from_toml(
            "data_dir = \"/d\"\nread_policy = \"linearizable\"\nread_policy_prefixes = { \"/cache\" = \"local\" }\n",
        )
        .unwrap();
        assert_eq!(c.read_policy_for("/x"), ReadPolicy::Linearizable);
        assert_eq!(c.read_policy_for("/cache/y"), ReadPolicy::Local);
    }
}

//! The connect string every ZooKeeper client takes: `host1:2181,host2:2181/chroot`.

use crate::error::{Error, Result};

/// Hosts to try, in order, and the optional chroot every path is relative to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// `host:port` pairs; a host without a port gets 2181. IPv6 hosts are bracketed.
    pub hosts: Vec<String>,
    /// The chroot, e.g. `/app`, or `None` for the whole tree.
    pub chroot: Option<String>,
}

impl ConnectString {
    /// Parses a connect string as the Java client does (`ConnectStringParser`).
    pub fn parse(s: &str) -> Result<ConnectString> {
        let s = s.trim();
        let (hosts_part, chroot) = match s.find('/') {
            Some(i) => {
                let root = &s[i..];
                zk_proto::path::check(root).map_err(|reason| {
                    Error::BadArguments(format!(
                        "Invalid path string \"{root}\" caused by {reason}"
                    ))
                })?;
                (&s[..i], (root != "/").then(|| root.to_string()))
            }
            None => (s, None),
        };
        let mut hosts = Vec::new();
        for host in hosts_part.split(',') {
            let host = host.trim();
            if host.is_empty() {
                continue;
            }
            let has_port = if let Some(rest) = host.strip_prefix('[') {
                rest.contains("]:")
            } else {
                host.contains(':')
            };
            if has_port {
                let port = host.rsplit(':').next().unwrap_or("");
                if port.parse::<u16>().is_err() {
                    return Err(Error::BadArguments(format!("bad port in {host}")));
                }
                hosts.push(host.to_string());
            } else {
                hosts.push(format!("{host}:2181"));
            }
        }
        if hosts.is_empty() {
            return Err(Error::BadArguments(
                "A HostProvider may not be empty!".into(),
            ));
        }
        Ok(ConnectString { hosts, chroot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ports_and_chroot() {
        let c = ConnectString::parse("a:1,b,[::1]:3/app/x").unwrap();
        assert_eq!(c.hosts, ["a:1", "b:2181", "[::1]:3"]);
        assert_eq!(c.chroot.as_deref(), Some("/app/x"));
        assert_eq!(ConnectString::parse("h/").unwrap().chroot, None);
        assert!(ConnectString::parse("h/bad/").is_err());
        assert!(ConnectString::parse("h:x").is_err());
        assert!(ConnectString::parse("").is_err());
    }
}

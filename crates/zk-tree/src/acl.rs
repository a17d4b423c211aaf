//! ACLs: the schemes ZooKeeper ships (world, auth, digest, ip, x509, sasl, super), the
//! per-operation permission check, ACL fix-up at create/setACL time, and a cache that stores
//! each distinct ACL list once (ZooKeeper's `ReferenceCountedACLCache`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use zk_proto::{perms, Acl, Id};

use crate::error::TreeError;

/// The ACL reference meaning `OPEN_ACL_UNSAFE`, which is never stored in the cache.
pub const OPEN_ACL_REF: i64 = -1;

/// Which authentication schemes this server accepts, beyond `world` (always on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `digest` (user:password, SHA-1).
    pub digest: bool,
    /// `ip` (address or CIDR).
    pub ip: bool,
    /// `x509` (TLS client certificate subject).
    pub x509: bool,
    /// `sasl` (Kerberos/DIGEST-MD5 principal).
    pub sasl: bool,
    /// `skipACL=yes`: every permission check passes.
    pub skip_acl: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            digest: true,
            ip: true,
            x509: true,
            sasl: true,
            skip_acl: false,
        }
    }
}

impl AuthConfig {
    fn scheme_known(&self, scheme: &str) -> bool {
        match scheme {
            "digest" => self.digest,
            "ip" => self.ip,
            "x509" => self.x509,
            "sasl" => self.sasl,
            _ => false,
        }
    }

    /// Whether an identity of this scheme can stand in for `auth` ACLs (an ip cannot).
    fn scheme_is_authenticated(&self, scheme: &str) -> bool {
        matches!(scheme, "digest" | "x509" | "sasl") && self.scheme_known(scheme)
    }
}

/// `digest` identity for a `user:password` credential: `user:base64(sha1("user:password"))`.
pub fn digest_id(credential: &str) -> String {
    let user = credential.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(credential.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Whether `client` (an address) matches an `ip` ACL id: `addr` or `addr/bits`, v4 or v6.
pub fn ip_matches(client: &str, acl_id: &str) -> bool {
    let Ok(client) = client.parse::<IpAddr>() else {
        return false;
    };
    let Some((net, bits)) = parse_ip_acl(acl_id) else {
        return false;
    };
    match (client, net) {
        (IpAddr::V4(c), IpAddr::V4(n)) => prefix_eq(&c.octets(), &n.octets(), bits),
        (IpAddr::V6(c), IpAddr::V6(n)) => prefix_eq(&c.octets(), &n.octets(), bits),
        _ => false,
    }
}

fn parse_ip_acl(id: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (id, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.parse::<u32>().ok().filter(|b| *b <= max)?,
        None => max,
    };
    Some((addr, bits))
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

fn id_valid(config: &AuthConfig, id: &Id) -> bool {
    config.scheme_known(&id.scheme)
        && match id.scheme.as_str() {
            "digest" => id.id.split(':').count() == 2,
            "ip" => parse_ip_acl(&id.id).is_some(),
            _ => true,
        }
}

/// Turns a requested ACL list into the one stored (`PrepRequestProcessor.fixupACL`):
/// duplicates removed, `auth` entries replaced by every authenticated identity of the
/// caller, unknown schemes and malformed ids refused. An empty list is refused.
pub fn fixup_acl(
    config: &AuthConfig,
    path: &str,
    auth: &[Id],
    requested: &[Acl],
) -> Result<Vec<Acl>, TreeError> {
    let invalid = || TreeError::InvalidAcl(path.to_owned());
    if requested.is_empty() {
        return Err(invalid());
    }
    let mut unique: Vec<&Acl> = Vec::with_capacity(requested.len());
    for a in requested {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    let mut out = Vec::with_capacity(unique.len());
    for a in unique {
        let id = &a.id;
        if id.scheme == "world" && id.id == "anyone" {
            out.push(a.clone());
        } else if id.scheme == "auth" {
            let mut any = false;
            for cid in auth {
                if config.scheme_is_authenticated(&cid.scheme) {
                    out.push(Acl {
                        perms: a.perms,
                        id: cid.clone(),
                    });
                    any = true;
                }
            }
            if !any {
                return Err(invalid());
            }
        } else if id_valid(config, id) {
            out.push(a.clone());
        } else {
            return Err(invalid());
        }
    }
    Ok(out)
}

/// Whether identities `auth` hold permission `perm` under `acl` (`ZooKeeperServer.checkACL`).
/// An empty ACL allows everything; a `super` identity passes every check.
pub fn check_acl(config: &AuthConfig, acl: &[Acl], perm: i32, auth: &[Id]) -> bool {
    if config.skip_acl || acl.is_empty() || auth.iter().any(|a| a.scheme == "super") {
        return true;
    }
    acl.iter().any(|a| {
        a.perms & perm != 0
            && ((a.id.scheme == "world" && a.id.id == "anyone")
                || (config.scheme_known(&a.id.scheme)
                    && auth
                        .iter()
                        .any(|cid| cid.scheme == a.id.scheme && id_matches(cid, &a.id))))
    })
}

fn id_matches(client: &Id, acl: &Id) -> bool {
    match acl.scheme.as_str() {
        "ip" => ip_matches(&client.id, &acl.id),
        _ => client.id == acl.id,
    }
}

/// Same as [`check_acl`], as a typed error naming the path.
pub fn require(
    config: &AuthConfig,
    acl: &[Acl],
    perm: i32,
    auth: &[Id],
    path: &str,
) -> Result<(), TreeError> {
    if check_acl(config, acl, perm, auth) {
        Ok(())
    } else {
        Err(TreeError::NoAuth(path.to_owned()))
    }
}

/// getACL without ADMIN shows digest credentials as `user:x`.
pub fn redact_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or_default();
                Acl {
                    perms: a.perms,
                    id: Id {
                        scheme: a.id.scheme.clone(),
                        id: format!("{user}:x"),
                    },
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Whether a permission mask is one ZooKeeper accepts in an ACL.
pub fn perms_valid(p: i32) -> bool {
    p & !perms::ALL == 0
}

/// Stores each distinct ACL list once, referenced by a number from nodes and snapshots.
#[derive(Debug, Default, Clone)]
pub struct AclCache {
    by_ref: BTreeMap<i64, (Arc<[Acl]>, u64)>,
    by_list: HashMap<Arc<[Acl]>, i64>,
    last_ref: i64,
}

impl AclCache {
    /// Heap bytes of the cache (an estimate; see [`crate::memory`]).
    pub fn memory_bytes(&self) -> u64 {
        use crate::memory::{btree_map_bytes, hash_map_bytes, heap_bytes, string_bytes};
        let lists: u64 = self
            .by_ref
            .values()
            .map(|(acl, _)| {
                heap_bytes(16 + std::mem::size_of_val::<[Acl]>(acl))
                    + acl
                        .iter()
                        .map(|a| string_bytes(&a.id.scheme) + string_bytes(&a.id.id))
                        .sum::<u64>()
            })
            .sum();
        btree_map_bytes(&self.by_ref) + hash_map_bytes(&self.by_list) + lists
    }

    /// The reference for `acl`, adding one use.
    pub fn intern(&mut self, acl: &[Acl]) -> i64 {
        if let Some(&r) = self.by_list.get(acl) {
            if let Some(entry) = self.by_ref.get_mut(&r) {
                entry.1 += 1;
            }
            return r;
        }
        self.last_ref += 1;
        let list: Arc<[Acl]> = Arc::from(acl);
        self.by_list.insert(list.clone(), self.last_ref);
        self.by_ref.insert(self.last_ref, (list, 1));
        self.last_ref
    }

    /// Drops one use of `r`, forgetting the list when unused.
    pub fn release(&mut self, r: i64) {
        if let Some(entry) = self.by_ref.get_mut(&r) {
            entry.1 -= 1;
            if entry.1 == 0 {
                if let Some((list, _)) = self.by_ref.remove(&r) {
                    self.by_list.remove(&list);
                }
            }
        }
    }

    /// The list behind a reference; unknown references read as `OPEN_ACL_UNSAFE`, as
    /// ZooKeeper's cache treats -1.
    pub fn get(&self, r: i64) -> Arc<[Acl]> {
        match self.by_ref.get(&r) {
            Some((list, _)) => list.clone(),
            None => Arc::from(zk_proto::well_known::open_acl_unsafe()),
        }
    }

    /// Entries in reference order, for snapshots.
    pub fn entries(&self) -> impl Iterator<Item = (i64, &[Acl])> {
        self.by_ref.iter().map(|(r, (l, _))| (*r, &**l))
    }

    /// Number of distinct lists stored.
    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    /// True when no list is stored.
    pub fn is_empty(&self) -> bool {
        self.by_ref.is_empty()
    }

    /// Restores an entry read from a snapshot, with no uses yet.
    pub fn insert_loaded(&mut self, r: i64, acl: Vec<Acl>) {
        let list: Arc<[Acl]> = Arc::from(acl);
        self.by_list.insert(list.clone(), r);
        self.by_ref.insert(r, (list, 0));
        self.last_ref = self.last_ref.max(r);
    }

    /// Counts one use of a loaded reference.
    pub fn add_use(&mut self, r: i64) {
        if let Some(entry) = self.by_ref.get_mut(&r) {
            entry.1 += 1;
        }
    }

    /// Forgets loaded entries no node uses (`purgeUnused`).
    pub fn purge_unused(&mut self) {
        let unused: Vec<i64> = self
            .by_ref
            .iter()
            .filter(|(_, (_, n))| *n == 0)
            .map(|(r, _)| *r)
            .collect();
        for r in unused {
            if let Some((list, _)) = self.by_ref.remove(&r) {
                self.by_list.remove(&list);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    fn acl(p: i32, scheme: &str, i: &str) -> Acl {
        Acl {
            perms: p,
            id: id(scheme, i),
        }
    }

    // Reference: DigestAuthenticationProvider.generateDigest; `super:test` is the example
    // from the ZooKeeper admin guide.
    #[test]
    fn digest_is_sha1_base64() {
        assert_eq!(
            digest_id("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn ip_acls_match_v4_and_v6_cidr() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(ip_matches("10.1.2.3", "10.0.0.0/8"));
        assert!(!ip_matches("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("10.1.2.3", "10.1.2.0/28"));
        assert!(!ip_matches("10.1.2.30", "10.1.2.0/28"));
        assert!(ip_matches("2001:db8::1", "2001:db8::/32"));
        assert!(!ip_matches("2001:db9::1", "2001:db8::/32"));
        assert!(!ip_matches("127.0.0.1", "::1"));
        assert!(!ip_matches("127.0.0.1", "127.0.0.1/33"));
    }

    #[test]
    fn check_world_digest_ip_super() {
        let cfg = AuthConfig::default();
        let d = digest_id("bob:pw");
        let acl = vec![
            acl(perms::READ, "digest", &d),
            acl(perms::ALL, "ip", "10.0.0.0/8"),
        ];
        assert!(check_acl(&cfg, &acl, perms::READ, &[id("digest", &d)]));
        assert!(!check_acl(&cfg, &acl, perms::WRITE, &[id("digest", &d)]));
        assert!(check_acl(&cfg, &acl, perms::WRITE, &[id("ip", "10.9.9.9")]));
        assert!(!check_acl(
            &cfg,
            &acl,
            perms::WRITE,
            &[id("ip", "127.0.0.1")]
        ));
        assert!(check_acl(&cfg, &acl, perms::ADMIN, &[id("super", "")]));
        assert!(check_acl(&cfg, &[], perms::ADMIN, &[]));
        let world = zk_proto::well_known::read_acl_unsafe();
        assert!(check_acl(&cfg, &world, perms::READ, &[]));
        assert!(!check_acl(&cfg, &world, perms::WRITE, &[]));
        let skip = AuthConfig {
            skip_acl: true,
            ..cfg
        };
        assert!(check_acl(&skip, &acl, perms::WRITE, &[]));
    }

    #[test]
    fn fixup_replaces_auth_and_rejects_bad_ids() {
        let cfg = AuthConfig::default();
        let d = digest_id("bob:pw");
        let auth = [id("ip", "127.0.0.1"), id("digest", &d)];
        let out = fixup_acl(&cfg, "/a", &auth, &[acl(perms::ALL, "auth", "")]).unwrap();
        assert_eq!(out, vec![acl(perms::ALL, "digest", &d)]);
        assert_eq!(
            fixup_acl(&cfg, "/a", &[id("ip", "127.0.0.1")], &[acl(31, "auth", "")]),
            Err(TreeError::InvalidAcl("/a".into()))
        );
        assert!(fixup_acl(&cfg, "/a", &[], &[]).is_err());
        assert!(fixup_acl(&cfg, "/a", &[], &[acl(31, "world", "someone")]).is_err());
        assert!(fixup_acl(&cfg, "/a", &[], &[acl(31, "nosuch", "x")]).is_err());
        assert!(fixup_acl(&cfg, "/a", &[], &[acl(31, "digest", "nocolon")]).is_err());
        assert!(fixup_acl(&cfg, "/a", &[], &[acl(31, "ip", "1.2.3.4/40")]).is_err());
        let dup = [acl(31, "ip", "1.2.3.4"), acl(31, "ip", "1.2.3.4")];
        assert_eq!(fixup_acl(&cfg, "/a", &[], &dup).unwrap().len(), 1);
    }

    #[test]
    fn redaction_hides_digest_hashes() {
        let d = digest_id("bob:pw");
        let r = redact_digests(&[acl(1, "digest", &d), acl(1, "ip", "1.2.3.4")]);
        assert_eq!(r[0].id.id, "bob:x");
        assert_eq!(r[1].id.id, "1.2.3.4");
    }

    #[test]
    fn cache_interns_and_releases() {
        let mut c = AclCache::default();
        let l = vec![acl(1, "ip", "1.2.3.4")];
        let a = c.intern(&l);
        let b = c.intern(&l);
        assert_eq!(a, b);
        assert_eq!(c.len(), 1);
        c.release(a);
        assert_eq!(c.len(), 1);
        c.release(a);
        assert!(c.is_empty());
        assert_eq!(
            &*c.get(OPEN_ACL_REF),
            zk_proto::well_known::open_acl_unsafe().as_slice()
        );
    }
}

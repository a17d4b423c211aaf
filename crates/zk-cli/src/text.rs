//! zkCli's text conventions: how a line splits into words and flags, how a Stat, an ACL, a
//! date and a quota are printed, and how an ACL string is read.

use zk_client::{Acl, Id, Stat};

/// Splits a command line as zkCli does: words, or `"..."` / `'...'` quoted strings (quotes
/// removed; a quote inside a word is part of the word).
pub fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' || c == '\'' {
            chars.next();
            let mut end = None;
            for (i, d) in chars.by_ref() {
                if d == c {
                    end = Some(i);
                    break;
                }
            }
            match end {
                Some(e) => out.push(line[start + 1..e].to_string()),
                // An unclosed quote: Java's pattern then takes the quote char alone.
                None => out.push(line[start..].to_string()),
            }
            continue;
        }
        let mut end = line.len();
        for (i, d) in chars.by_ref() {
            if d.is_whitespace() {
                end = i;
                break;
            }
        }
        out.push(line[start..end].to_string());
    }
    out
}

/// Flags and positional arguments of one command, parsed like Apache commons-cli does for
/// zkCli: flags may come anywhere, `-x` takes the next word when it wants a value.
#[derive(Debug, Default)]
pub struct Parsed {
    pub args: Vec<String>,
    flags: Vec<(char, Option<String>)>,
}

impl Parsed {
    pub fn has(&self, f: char) -> bool {
        self.flags.iter().any(|(c, _)| *c == f)
    }

    pub fn value(&self, f: char) -> Option<&str> {
        self.flags
            .iter()
            .find(|(c, _)| *c == f)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// `spec` lists the flags; a flag followed by `:` takes a value (`"sect:"`).
pub fn parse_flags(words: &[String], spec: &str) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        if w.len() > 1 && w.starts_with('-') && !w[1..].starts_with(|c: char| c.is_ascii_digit()) {
            let name = &w[1..];
            let mut cs = name.chars();
            let (Some(f), None) = (cs.next(), cs.next()) else {
                return Err(format!(
                    "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {w}"
                ));
            };
            let Some(pos) = spec.find(f) else {
                return Err(format!(
                    "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {w}"
                ));
            };
            if spec[pos + f.len_utf8()..].starts_with(':') {
                match it.next() {
                    Some(v) => p.flags.push((f, Some(v.clone()))),
                    None => {
                        return Err(format!(
                            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: {f}"
                        ))
                    }
                }
            } else {
                p.flags.push((f, None));
            }
        } else {
            p.args.push(w.clone());
        }
    }
    Ok(p)
}

/// Java's `Date.toString()` in UTC: `Tue Nov 24 04:22:04 UTC 2026`.
pub fn java_date(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    let (year, month, d) = zk_proto::time::civil_from_days(days);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month as usize).saturating_sub(1) % 12],
        d,
        h,
        m,
        s,
        year
    )
}

/// zkCli's `StatPrinter`.
pub fn stat_text(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\ndataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

/// A Stat as JSON, for `--output json`.
pub fn stat_json(s: &Stat) -> serde_json::Value {
    serde_json::json!({
        "czxid": s.czxid, "mzxid": s.mzxid, "ctime": s.ctime, "mtime": s.mtime,
        "version": s.version, "cversion": s.cversion, "aversion": s.aversion,
        "ephemeralOwner": s.ephemeral_owner, "dataLength": s.data_length,
        "numChildren": s.num_children, "pzxid": s.pzxid,
    })
}

/// `ZKUtil.getPermString`: letters in the order c, d, r, w, a.
pub fn perm_string(perms: i32) -> String {
    use zk_client::perms::{ADMIN, CREATE, DELETE, READ, WRITE};
    [
        (CREATE, 'c'),
        (DELETE, 'd'),
        (READ, 'r'),
        (WRITE, 'w'),
        (ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| perms & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// One ACL entry as getAcl prints it (the jute record's CSV form, then the permissions).
pub fn acl_text(acl: &Acl) -> String {
    format!(
        "'{},'{}\n: {}\n",
        acl.id.scheme,
        acl.id.id,
        perm_string(acl.perms)
    )
}

/// zkCli's `AclParser`: `scheme:id:perms[,...]`; bad entries are reported and skipped.
pub fn parse_acl(s: &str, warn: &mut Vec<String>) -> Vec<Acl> {
    let mut out = Vec::new();
    for a in s.split(',') {
        let (Some(first), Some(last)) = (a.find(':'), a.rfind(':')) else {
            warn.push(format!("{a} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            warn.push(format!("{a} does not have the form scheme:id:perm"));
            continue;
        }
        let mut perms = 0;
        for c in a[last + 1..].chars() {
            use zk_client::perms::{ADMIN, CREATE, DELETE, READ, WRITE};
            perms |= match c.to_ascii_lowercase() {
                'r' => READ,
                'w' => WRITE,
                'c' => CREATE,
                'd' => DELETE,
                'a' => ADMIN,
                other => {
                    warn.push(format!("Unknown perm type: {other}"));
                    0
                }
            };
        }
        out.push(Acl {
            perms,
            id: Id {
                scheme: a[..first].to_string(),
                id: a[first + 1..last].to_string(),
            },
        });
    }
    out
}

/// ZooKeeper's quota record (`StatsTrack`): `count=N,bytes=N` first for old readers, then
/// `=` and the other keys sorted, each as `;key=value`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    pub pairs: Vec<(String, i64)>,
}

impl StatsTrack {
    pub fn parse(s: &str) -> StatsTrack {
        let mut t = StatsTrack::default();
        for kv in s.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut it = kv.split('=');
            let key = it.next().unwrap_or_default();
            let value = it.next().unwrap_or_default();
            let v = if value.is_empty() {
                -1
            } else {
                value.parse().unwrap_or(-1)
            };
            t.set(key, v);
        }
        t
    }

    pub fn get(&self, key: &str) -> i64 {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or(-1, |(_, v)| *v)
    }

    pub fn set(&mut self, key: &str, value: i64) {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(p) => p.1 = value,
            None => self.pairs.push((key.to_string(), value)),
        }
    }
}

impl std::fmt::Display for StatsTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "count={},bytes={}", self.get("count"), self.get("bytes"))?;
        let mut rest: Vec<&(String, i64)> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "count" && k != "bytes")
            .collect();
        if !rest.is_empty() {
            f.write_str("=")?;
            rest.sort();
            for (k, v) in rest {
                write!(f, ";{k}={v}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            tokenize(r#"create /a "b c" 'd'"#),
            ["create", "/a", "b c", "d"]
        );
        assert_eq!(tokenize("create /p/e1 \"\" "), ["create", "/p/e1", ""]);
        assert_eq!(tokenize("  ls   / "), ["ls", "/"]);
    }

    #[test]
    fn flags_anywhere() {
        let w = tokenize("deleteall /p -b 2");
        let p = parse_flags(&w, "b:").unwrap();
        assert_eq!(p.args, ["/p"]);
        assert_eq!(p.value('b'), Some("2"));
        assert!(parse_flags(&tokenize("ls -z /"), "swR").is_err());
        assert_eq!(
            parse_flags(&tokenize("set /x -1"), "sv:").unwrap().args,
            ["/x", "-1"]
        );
    }

    #[test]
    fn dates_like_java() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_795_494_124_000), "Tue Nov 24 04:22:04 UTC 2026");
    }

    #[test]
    fn quota_strings_like_java() {
        let mut q = StatsTrack::default();
        for k in ["count", "bytes", "countHardLimit", "byteHardLimit"] {
            q.set(k, -1);
        }
        q.set("count", 10);
        assert_eq!(
            q.to_string(),
            "count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"
        );
        assert_eq!(StatsTrack::parse(&q.to_string()).to_string(), q.to_string());
        assert_eq!(
            StatsTrack::parse("count=6,bytes=10").to_string(),
            "count=6,bytes=10"
        );
    }

    #[test]
    fn acls() {
        let mut warn = Vec::new();
        let a = parse_acl("digest:alice:ZqgF=:cdrwa,bogus", &mut warn);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].id.id, "alice:ZqgF=");
        assert_eq!(a[0].perms, 31);
        assert_eq!(warn, ["bogus does not have the form scheme:id:perm"]);
        assert_eq!(perm_string(31), "cdrwa");
    }
}

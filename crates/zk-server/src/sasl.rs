//! SASL on the client port (opcode 102), mechanism DIGEST-MD5 (RFC 2831), with the users of
//! a JAAS file's `Server` section (`user_NAME="password"`), as ZooKeeper's
//! `DigestLoginModule` configures them. A successful exchange gives the session the identity
//! `sasl:NAME`. Kerberos (GSSAPI) is refused with a clear error.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// The realm and service ZooKeeper hard-codes for DIGEST-MD5 (`zk-sasl-md5`, `zookeeper`).
pub const REALM: &str = "zk-sasl-md5";
const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";

/// The users a server accepts; passwords never appear in `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SaslUsers {
    users: BTreeMap<String, String>,
}

impl std::fmt::Debug for SaslUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslUsers")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SaslUsers {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Users from a JAAS configuration's `section` (`Server` unless
    /// `zookeeper.sasl.serverconfig` says otherwise).
    pub fn from_jaas(text: &str, section: &str) -> Result<SaslUsers, String> {
        let body = jaas_section(text, section)?;
        if body.iter().any(|t| t.contains("Krb5LoginModule")) {
            return Err("Kerberos (Krb5LoginModule, GSSAPI) is not supported yet; \
                 use DigestLoginModule"
                .into());
        }
        let users = options(&body)
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix("user_").map(|u| (u.to_string(), v)))
            .collect();
        Ok(SaslUsers { users })
    }

    /// The user name and password of a JAAS section (`username="..." password="..."`, as
    /// ZooKeeper's `QuorumLearner` section gives them).
    pub fn login_from_jaas(text: &str, section: &str) -> Result<(String, String), String> {
        let options = jaas_options(text, section)?;
        match (options.get("username"), options.get("password")) {
            (Some(u), Some(p)) => Ok((u.clone(), p.clone())),
            _ => Err(format!(
                "section {section} needs username=\"...\" and password=\"...\""
            )),
        }
    }

    /// The user names and passwords, for quorum authentication.
    pub fn passwords(&self) -> impl Iterator<Item = (&str, &str)> {
        self.users.iter().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    #[cfg(test)]
    fn with(users: &[(&str, &str)]) -> SaslUsers {
        SaslUsers {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        }
    }
}

/// The words of a JAAS section's body (between its braces).
fn jaas_section(text: &str, section: &str) -> Result<Vec<String>, String> {
    let tokens = jaas_tokens(text)?;
    let mut i = 0;
    while i < tokens.len() {
        let name = &tokens[i];
        if tokens.get(i + 1).map(String::as_str) != Some("{") {
            return Err(format!("expected `{{` after {name}"));
        }
        let end = tokens[i + 2..]
            .iter()
            .position(|t| t == "}")
            .map(|p| p + i + 2)
            .ok_or_else(|| format!("section {name} is not closed"))?;
        if name == section {
            return Ok(tokens[i + 2..end].to_vec());
        }
        i = end + 1;
        if tokens.get(i).map(String::as_str) == Some(";") {
            i += 1;
        }
    }
    Err(format!("no section {section} in the JAAS configuration"))
}

/// The `key="value"` options among a section's words.
fn options(body: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut j = 0;
    while j < body.len() {
        if body.get(j + 1).map(String::as_str) == Some("=") {
            out.insert(
                body[j].clone(),
                body.get(j + 2).cloned().unwrap_or_default(),
            );
            j += 3;
        } else {
            j += 1;
        }
    }
    out
}

/// The `key="value"` options of a JAAS section.
fn jaas_options(text: &str, section: &str) -> Result<BTreeMap<String, String>, String> {
    Ok(options(&jaas_section(text, section)?))
}

/// Splits JAAS text into words, `{ } ; =` and quoted strings (quotes removed); comments
/// (`//`, `/* */`) dropped.
fn jaas_tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let b: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if matches!(c, '{' | '}' | ';' | '=') {
            out.push(c.to_string());
            i += 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                s.push(b[i]);
                i += 1;
            }
            if i >= b.len() {
                return Err("unterminated quoted string".into());
            }
            i += 1;
            out.push(s);
        } else {
            let start = i;
            while i < b.len()
                && !b[i].is_whitespace()
                && !matches!(b[i], '{' | '}' | ';' | '=' | '"')
            {
                i += 1;
            }
            out.push(b[start..i].iter().collect());
        }
    }
    Ok(out)
}

/// Why an exchange failed (the client gets AUTHFAILED and the connection is closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SASL DIGEST-MD5: {0}")]
pub struct SaslError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Nothing yet: the first token (empty for DIGEST-MD5) gets the challenge.
    Start,
    /// Challenge sent with this nonce; the client's response is next.
    Challenged { nonce: String },
    /// Authenticated as this user.
    Done { user: String },
}

/// One connection's DIGEST-MD5 exchange, as a pure state machine.
#[derive(Debug)]
pub struct DigestMd5 {
    step: Step,
    nonce: String,
}

impl DigestMd5 {
    /// `nonce`: fresh randomness from the caller (the exchange itself does no I/O).
    pub fn new(nonce: String) -> DigestMd5 {
        DigestMd5 {
            step: Step::Start,
            nonce,
        }
    }

    /// The user, once authenticated.
    pub fn authorized(&self) -> Option<&str> {
        match &self.step {
            Step::Done { user } => Some(user),
            _ => None,
        }
    }

    /// Takes the client's token and returns the server's.
    pub fn step(&mut self, users: &SaslUsers, token: &[u8]) -> Result<Vec<u8>, SaslError> {
        match std::mem::replace(&mut self.step, Step::Start) {
            Step::Start => {
                let nonce = self.nonce.clone();
                let challenge = format!(
                    "realm=\"{REALM}\",nonce=\"{nonce}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess"
                );
                self.step = Step::Challenged { nonce };
                Ok(challenge.into_bytes())
            }
            Step::Challenged { nonce } => {
                let (user, rspauth) = verify(users, &nonce, token)?;
                self.step = Step::Done { user };
                Ok(format!("rspauth={rspauth}").into_bytes())
            }
            done @ Step::Done { .. } => {
                // A client may send a last empty token; nothing more to say.
                self.step = done;
                Ok(Vec::new())
            }
        }
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `key=value,key="quoted value",...` (RFC 2831 directives).
fn directives(text: &str) -> Result<BTreeMap<String, String>, SaslError> {
    let mut out = BTreeMap::new();
    let b: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_whitespace() || b[i] == ',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != '=' {
            i += 1;
        }
        if i >= b.len() {
            return Err(SaslError(format!("malformed directive in {text:?}")));
        }
        let key: String = b[start..i].iter().collect::<String>().trim().to_lowercase();
        i += 1;
        let mut value = String::new();
        if b.get(i) == Some(&'"') {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
            if i >= b.len() {
                return Err(SaslError("unterminated quoted value".into()));
            }
            i += 1;
        } else {
            while i < b.len() && b[i] != ',' {
                value.push(b[i]);
                i += 1;
            }
            value = value.trim().to_string();
        }
        if out.insert(key.clone(), value).is_some() {
            return Err(SaslError(format!("directive {key} given twice")));
        }
    }
    Ok(out)
}

/// Checks the client's digest-response; returns the user and the `rspauth` value.
fn verify(users: &SaslUsers, nonce: &str, token: &[u8]) -> Result<(String, String), SaslError> {
    let text = std::str::from_utf8(token).map_err(|_| SaslError("response is not text".into()))?;
    let d = directives(text)?;
    let get = |k: &str| {
        d.get(k)
            .map(String::as_str)
            .ok_or_else(|| SaslError(format!("missing {k}")))
    };
    let username = get("username")?;
    let realm = d.get("realm").map_or(REALM, String::as_str);
    if get("nonce")? != nonce {
        return Err(SaslError("nonce mismatch".into()));
    }
    let cnonce = get("cnonce")?;
    let nc = get("nc")?;
    if nc != "00000001" {
        return Err(SaslError(format!("unexpected nonce count {nc}")));
    }
    let qop = d.get("qop").map_or("auth", String::as_str);
    if qop != "auth" {
        return Err(SaslError(format!("qop {qop} is not supported (auth is)")));
    }
    let uri = get("digest-uri")?;
    if uri != DIGEST_URI {
        return Err(SaslError(format!("digest-uri {uri} is not {DIGEST_URI}")));
    }
    let response = get("response")?;
    let Some(password) = users.users.get(username) else {
        return Err(SaslError(format!("unknown user {username}")));
    };
    let authzid = d.get("authzid");
    let ha1 = {
        let mut a1 = Md5::digest(format!("{username}:{realm}:{password}").as_bytes()).to_vec();
        a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
        if let Some(z) = authzid {
            a1.extend_from_slice(format!(":{z}").as_bytes());
        }
        hex(&Md5::digest(&a1))
    };
    let kd = |a2: &str| {
        let ha2 = hex(&Md5::digest(a2.as_bytes()));
        hex(&Md5::digest(
            format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes(),
        ))
    };
    if kd(&format!("AUTHENTICATE:{uri}")) != response.to_ascii_lowercase() {
        return Err(SaslError(format!("wrong password for {username}")));
    }
    Ok((username.to_string(), kd(&format!(":{uri}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAAS: &str = r#"
        // ZooKeeper's server section
        Server {
            org.apache.zookeeper.server.auth.DigestLoginModule required
            user_super="adminsecret"
            user_bob="bob\"secret";
        };
        /* the client side, ignored by the server */
        Client {
            org.apache.zookeeper.server.auth.DigestLoginModule required
            username="bob" password="x";
        };
    "#;

    #[test]
    fn jaas_server_section() {
        let u = SaslUsers::from_jaas(JAAS, "Server").unwrap();
        assert_eq!(u.names().collect::<Vec<_>>(), ["bob", "super"]);
        assert_eq!(u.users["bob"], "bob\"secret");
        assert!(!format!("{u:?}").contains("adminsecret"));
        assert!(SaslUsers::from_jaas(JAAS, "Nope").is_err());
        let krb = "Server { com.sun.security.auth.module.Krb5LoginModule required; };";
        assert!(SaslUsers::from_jaas(krb, "Server")
            .unwrap_err()
            .contains("Kerberos"));
    }

    /// The client side of RFC 2831, to drive the server.
    fn client_response(challenge: &str, user: &str, password: &str) -> String {
        let c = directives(challenge).unwrap();
        let (nonce, cnonce, nc, qop) = (&c["nonce"], "OA6MHXh6VqTrRk", "00000001", "auth");
        let mut a1 = Md5::digest(format!("{user}:{REALM}:{password}").as_bytes()).to_vec();
        a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
        let ha1 = hex(&Md5::digest(&a1));
        let ha2 = hex(&Md5::digest(
            format!("AUTHENTICATE:{DIGEST_URI}").as_bytes(),
        ));
        let resp = hex(&Md5::digest(
            format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes(),
        ));
        format!(
            "charset=utf-8,username=\"{user}\",realm=\"{REALM}\",nonce=\"{nonce}\",nc={nc},cnonce=\"{cnonce}\",digest-uri=\"{DIGEST_URI}\",maxbuf=65536,response={resp},qop={qop}"
        )
    }

    #[test]
    fn exchange_succeeds_and_fails_like_rfc_2831() {
        let users = SaslUsers::with(&[("bob", "secret")]);
        let mut s = DigestMd5::new("abc123".into());
        let challenge = String::from_utf8(s.step(&users, b"").unwrap()).unwrap();
        assert!(challenge.contains("nonce=\"abc123\""));
        let answer = s
            .step(
                &users,
                client_response(&challenge, "bob", "secret").as_bytes(),
            )
            .unwrap();
        assert!(String::from_utf8(answer).unwrap().starts_with("rspauth="));
        assert_eq!(s.authorized(), Some("bob"));
        assert_eq!(s.step(&users, b"").unwrap(), Vec::<u8>::new());

        let mut s = DigestMd5::new("n2".into());
        let challenge = String::from_utf8(s.step(&users, b"").unwrap()).unwrap();
        let e = s
            .step(
                &users,
                client_response(&challenge, "bob", "wrong").as_bytes(),
            )
            .unwrap_err();
        assert!(e.0.contains("wrong password"));
        assert_eq!(s.authorized(), None);

        for bad in [&b"garbage"[..], b"username=\"bob", b"\xff\xfe", b""] {
            let mut s = DigestMd5::new("n3".into());
            s.step(&users, b"").unwrap();
            assert!(s.step(&users, bad).is_err(), "{bad:?}");
        }
    }
}

//! Znode path rules, as ZooKeeper's `PathUtils.validatePath` applies them on both sides of
//! the wire: servers refuse bad paths with BADARGUMENTS, clients refuse to send them.
//!
//! Characters are judged as Java judges them, per UTF-16 code unit: every character outside
//! the BMP is made of surrogates (U+D800..DFFF) and is therefore rejected, like the
//! private-use area and U+FFF0..FFFF (U+FFFD, the replacement for undecodable bytes, too).

/// Checks a full znode path; the error is ZooKeeper's reason, word for word.
pub fn check(path: &str) -> Result<(), &'static str> {
    let bytes = path.as_bytes();
    if bytes.is_empty() {
        return Err("Path length must be > 0");
    }
    if bytes[0] != b'/' {
        return Err("Path must start with / character");
    }
    if bytes.len() == 1 {
        return Ok(());
    }
    if bytes[bytes.len() - 1] == b'/' {
        return Err("Path must not end with / character");
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err("empty node name specified"),
            "." | ".." => return Err("relative paths not allowed"),
            _ => {}
        }
    }
    for c in path.chars() {
        let u = c as u32;
        if u == 0 {
            return Err("null character not allowed");
        }
        if (0x01..=0x1f).contains(&u)
            || (0x7f..=0x9f).contains(&u)
            || (0xd800..=0xf8ff).contains(&u)
            || (0xfff0..=0xffff).contains(&u)
            || u > 0xffff
        {
            return Err("invalid character");
        }
    }
    Ok(())
}

/// Checks the path of a create: a sequential create is judged as if its counter were already
/// appended, so `/queue/` is a valid sequential path.
pub fn check_create(path: &str, sequential: bool) -> Result<(), &'static str> {
    if sequential {
        check(&format!("{path}1"))
    } else {
        check(path)
    }
}

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

/// The message the Java client's `PathUtils.validatePath` throws for a bad path (which
/// zkCli prints), or `None` for a good one. Interior faults name the UTF-16 index where
/// Java's scan stopped: `Invalid path string "/a//b" caused by empty node name specified @3`.
pub fn java_message(path: &str) -> Option<String> {
    // The common case, a good path, needs no UTF-16 copy: `check` agrees on what is good.
    if check(path).is_ok() {
        return None;
    }
    let units: Vec<u16> = path.encode_utf16().collect();
    if units.is_empty() {
        return Some("Path length must be > 0".into());
    }
    if units[0] != u16::from(b'/') {
        return Some("Path must start with / character".into());
    }
    if units.len() == 1 {
        return None;
    }
    if units[units.len() - 1] == u16::from(b'/') {
        return Some("Path must not end with / character".into());
    }
    let (slash, dot) = (u16::from(b'/'), u16::from(b'.'));
    let at = |i: usize| units.get(i).copied();
    let mut last = slash;
    for i in 1..units.len() {
        let c = units[i];
        let reason = if c == 0 {
            Some("null character not allowed")
        } else if c == slash && last == slash {
            Some("empty node name specified")
        } else if c == dot
            && ((last == dot && at(i.wrapping_sub(2)) == Some(slash)) || last == slash)
            && (i + 1 == units.len() || at(i + 1) == Some(slash))
        {
            Some("relative paths not allowed")
        } else if (0x0001..=0x001f).contains(&c)
            || (0x007f..=0x009f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || (0xfff0..=0xffff).contains(&c)
        {
            Some("invalid character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Some(format!(
                "Invalid path string \"{path}\" caused by {reason} @{i}"
            ));
        }
        last = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_messages_agree_with_check() {
        for p in ["/", "/a", "/a/b", "/a..b", "/.a"] {
            assert_eq!(java_message(p), None, "{p}");
            assert!(check(p).is_ok());
        }
        assert_eq!(
            java_message("/a//b").as_deref(),
            Some("Invalid path string \"/a//b\" caused by empty node name specified @3")
        );
        assert_eq!(
            java_message("/a/./b").as_deref(),
            Some("Invalid path string \"/a/./b\" caused by relative paths not allowed @3")
        );
        assert_eq!(
            java_message("/a/").as_deref(),
            Some("Path must not end with / character")
        );
        for p in ["", "a", "/a/", "//", "/..", "/a\0", "/\u{1F600}"] {
            assert!(java_message(p).is_some(), "{p:?}");
            assert!(check(p).is_err(), "{p:?}");
        }
    }
}

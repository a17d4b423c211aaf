//! Znode path rules, as ZooKeeper's `PathUtils.validatePath` applies them.
//!
//! Characters are judged as Java judges them, per UTF-16 code unit: every character outside
//! the BMP is made of surrogates (U+D800..DFFF) and is therefore rejected, like the
//! private-use area and U+FFF0..FFFF (U+FFFD, the replacement for undecodable bytes, too).

use crate::error::TreeError;

/// Checks a full znode path. Returns [`TreeError::BadArguments`] with ZooKeeper's reason.
pub fn validate_path(path: &str) -> Result<(), TreeError> {
    validate(path).map_err(|reason| TreeError::BadArguments {
        path: path.to_owned(),
        reason,
    })
}

/// Checks the path of a create request: a sequential create is checked as if its suffix
/// were already appended, so `/queue/` is a valid sequential path.
pub fn validate_create_path(path: &str, sequential: bool) -> Result<(), TreeError> {
    if sequential {
        validate(&format!("{path}1")).map_err(|reason| TreeError::BadArguments {
            path: path.to_owned(),
            reason,
        })
    } else {
        validate_path(path)
    }
}

fn validate(path: &str) -> Result<(), &'static str> {
    zk_proto::path::check(path)
}

/// The parent of a valid path other than `/`: `/a/b` -> `/a`, `/a` -> `/`.
pub fn parent(path: &str) -> &str {
    match last_slash(path) {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last segment of a valid path: `/a/b` -> `b`; `/` -> ``.
pub fn name(path: &str) -> &str {
    match last_slash(path) {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Where the last '/' is. A byte loop: paths are short, and `str::rfind` with a char
/// costs a call and a searcher per path (measurable in a million-znode snapshot load).
/// Slicing there is safe: '/' is ASCII, never inside a multi-byte character.
fn last_slash(path: &str) -> Option<usize> {
    path.bytes().rposition(|b| b == b'/')
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// The suffix a sequential create appends: the parent's create counter as `%010d`, signed
/// (it goes negative after 2^31 - 1, as in ZooKeeper).
pub fn sequence_suffix(counter: i32) -> String {
    format!("{counter:010}")
}

/// True when `path` is `prefix` or lies under it.
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for p in [
            "/", "/a", "/a/b", "/a.b", "/a/.b", "/a/..b", "/é", "/a/b..c",
        ] {
            assert!(validate_path(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn invalid_paths() {
        for p in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/../b",
            "/a\0",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/\u{1F600}",
            "/\u{e000}",
            "/\u{fffd}",
            "/\u{ffff}",
        ] {
            assert!(validate_path(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn sequential_paths_may_end_with_slash() {
        assert!(validate_create_path("/q/", true).is_ok());
        assert!(validate_create_path("/q/", false).is_err());
        assert!(validate_create_path("/", true).is_ok());
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }

    #[test]
    fn sequence_suffix_is_signed_and_padded() {
        assert_eq!(sequence_suffix(1), "0000000001");
        assert_eq!(sequence_suffix(i32::MAX), "2147483647");
        assert_eq!(sequence_suffix(i32::MIN), "-2147483648");
        assert_eq!(sequence_suffix(-5), "-000000005");
    }

    #[test]
    fn under() {
        assert!(is_under("/a/b", "/a"));
        assert!(is_under("/a", "/a"));
        assert!(!is_under("/ab", "/a"));
        assert!(is_under("/x", "/"));
    }
}

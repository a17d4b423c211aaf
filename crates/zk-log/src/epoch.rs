//! The `acceptedEpoch` and `currentEpoch` files of a quorum member: a decimal number and a
//! newline, replaced atomically (temp file, fsync, rename, fsync of the directory) so a
//! crash leaves either the old or the new value, never a torn one.

use std::path::Path;

use crate::error::{LogError, Result};
use crate::storage::Storage;

/// The file Zab persists the last epoch it accepted a NEWEPOCH for.
pub const ACCEPTED_EPOCH: &str = "acceptedEpoch";
/// The file Zab persists the epoch it last synchronised with.
pub const CURRENT_EPOCH: &str = "currentEpoch";

/// Reads an epoch file; `None` if it does not exist.
pub fn read_epoch(storage: &dyn Storage, dir: &Path, name: &str) -> Result<Option<i64>> {
    let path = dir.join(name);
    if !storage.exists(&path) {
        return Ok(None);
    }
    let bytes = storage.read(&path).map_err(LogError::io(path.clone()))?;
    let text = String::from_utf8_lossy(&bytes);
    text.trim()
        .parse::<i64>()
        .map(Some)
        .map_err(|_| LogError::BadEpoch {
            path,
            contents: text.into_owned(),
        })
}

/// Replaces an epoch file atomically and durably.
pub fn write_epoch(storage: &dyn Storage, dir: &Path, name: &str, epoch: i64) -> Result<()> {
    storage
        .create_dir_all(dir)
        .map_err(LogError::io(dir.to_path_buf()))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = storage.create(&tmp).map_err(LogError::io(tmp.clone()))?;
    f.write_at(0, format!("{epoch}\n").as_bytes())
        .map_err(LogError::io(tmp.clone()))?;
    f.sync().map_err(LogError::io(tmp.clone()))?;
    crate::failpoint::hit("epoch.before_rename");
    storage
        .rename(&tmp, &path)
        .map_err(LogError::io(path.clone()))?;
    crate::failpoint::hit("epoch.after_rename");
    storage
        .sync_dir(dir)
        .map_err(LogError::io(dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn write_read_and_survive_crashes() {
        let s = SimStorage::new();
        let d = Path::new("/d");
        assert_eq!(read_epoch(&s, d, CURRENT_EPOCH).unwrap(), None);
        write_epoch(&s, d, CURRENT_EPOCH, 5).unwrap();
        assert_eq!(read_epoch(&s, d, CURRENT_EPOCH).unwrap(), Some(5));
        assert_eq!(s.read(&d.join(CURRENT_EPOCH)).unwrap(), b"5\n");
        assert_eq!(read_epoch(&s.crash(), d, CURRENT_EPOCH).unwrap(), Some(5));
        // Every crash point of a second write leaves 5 or 6, never garbage.
        let before = s.history_len();
        write_epoch(&s, d, CURRENT_EPOCH, 6).unwrap();
        assert!(s.history_len() > before);
        let c = s.crash_with(|_, _, _| true, |_, _| Some(0));
        let v = read_epoch(&c, d, CURRENT_EPOCH).unwrap();
        assert!(v == Some(5) || v == Some(6), "{v:?}");
    }

    #[test]
    fn garbage_is_an_error() {
        let s = SimStorage::new();
        let d = Path::new("/d");
        let mut f = s.create(&d.join(ACCEPTED_EPOCH)).unwrap();
        f.write_at(0, b"x1").unwrap();
        assert!(matches!(
            read_epoch(&s, d, ACCEPTED_EPOCH),
            Err(LogError::BadEpoch { .. })
        ));
    }
}

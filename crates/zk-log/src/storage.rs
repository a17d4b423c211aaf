//! The storage seam: every file operation zk-log performs goes through [`Storage`], so tests
//! can run the same code on [`SimStorage`], which remembers what was synced, loses unsynced
//! writes on a simulated crash, tears writes and injects EIO / ENOSPC.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Directory and file operations, blocking.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for writing at any offset.
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Reads a file up to the end of its last data region, leaving out a tail the file
    /// system holds as a hole (it reads as zeros): a preallocated txn log is mostly such
    /// a tail, 64 MB of it. Where holes cannot be told, the whole file.
    fn read_data(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read(path)
    }
    /// Names of the entries of a directory (not recursive), in sorted order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether a path exists.
    fn exists(&self, path: &Path) -> bool;
}

/// An open file.
pub trait StorageFile: Send + std::fmt::Debug {
    /// Writes all of `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Sets the length (truncate or extend with zeros).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes the written data durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// The current length in bytes.
    fn size(&self) -> io::Result<u64>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsStorage;

#[derive(Debug)]
struct FsFile(File);

impl StorageFile for FsFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

/// Files at least this big are read by several threads at once.
const READ_IN_PARTS_MIN: usize = 16 << 20;

/// Reads a whole file; a big one (a snapshot of a million znodes is 190 MB, a txn log is
/// preallocated to 64 MB) in parts on two threads or more. Most of such a read is the
/// kernel faulting in and zeroing the fresh buffer's pages, then copying from the page
/// cache, and both go as fast again on a second core: this is on the path of every
/// restart.
fn read_in_parts(path: &Path, data_only: bool) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let size = f.metadata()?.len();
    let end = if data_only { data_end(&f, size) } else { size };
    let len = usize::try_from(end).unwrap_or(usize::MAX);
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if len < READ_IN_PARTS_MIN {
        if end == size {
            return fs::read(path);
        }
        threads = 1;
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; len];
    let part = len.div_ceil(threads);
    let read = std::thread::scope(|s| {
        let readers: Vec<_> = buf
            .chunks_mut(part)
            .enumerate()
            .map(|(i, chunk)| {
                let f = &f;
                s.spawn(move || f.read_exact_at(chunk, (i * part) as u64))
            })
            .collect();
        readers.into_iter().try_for_each(|r| {
            r.join()
                .unwrap_or_else(|_| Err(io::Error::other("a file reader thread panicked")))
        })
    });
    // A file that changed size while it was read: read it again, whole, in one go.
    let grew = f.metadata().map_or(true, |m| m.len() != size)
        || f.read_at(&mut [0u8; 1], size).map_or(true, |n| n > 0);
    match read {
        Ok(()) if !grew => Ok(buf),
        Ok(()) => fs::read(path),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => fs::read(path),
        Err(e) => Err(e),
    }
}

/// Where `f`'s data ends (`SEEK_DATA` / `SEEK_HOLE`): what follows is holes. `size`
/// when the file system cannot say, or the file has too many data regions to walk.
fn data_end(f: &File, size: u64) -> u64 {
    use nix::errno::Errno;
    use nix::unistd::{lseek, Whence};
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let Ok(size_off) = i64::try_from(size) else {
        return size;
    };
    let mut end = 0;
    for _ in 0..4096 {
        match lseek(fd, end, Whence::SeekData) {
            // Data from `data` on: it runs to the next hole (at worst the end of file).
            Ok(data) => match lseek(fd, data, Whence::SeekHole) {
                Ok(hole) if hole > data => end = hole,
                _ => return size,
            },
            // No data at or after `end`: only holes are left.
            Err(Errno::ENXIO) => return u64::try_from(end).unwrap_or(size),
            Err(_) => return size,
        }
        if end >= size_off {
            return size;
        }
    }
    size
}

impl Storage for FsStorage {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(FsFile(f)))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(FsFile(f)))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_in_parts(path, false)
    }
    fn read_data(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_in_parts(path, true)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// A file operation not yet made durable, as [`SimStorage`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    /// What a reader sees now.
    current: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Operations since the last sync, in order.
    pending: Vec<PendingOp>,
}

fn apply(buf: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[start..end].copy_from_slice(data);
        }
        PendingOp::SetLen(len) => buf.resize(*len as usize, 0),
    }
}

/// Failures to inject into the next operations of a [`SimStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next write fails with EIO.
    WriteEio,
    /// The next write fails with ENOSPC.
    WriteNoSpace,
    /// The next sync fails with EIO.
    SyncEio,
}

#[derive(Default)]
struct SimState {
    /// Files by path, as the namespace is now.
    files: BTreeMap<PathBuf, Arc<Mutex<SimFile>>>,
    /// The namespace as of the last directory sync: what a crash returns to.
    durable_names: BTreeMap<PathBuf, Arc<Mutex<SimFile>>>,
    faults: Vec<Fault>,
    /// Every write and sync in order: (path, op or None for a sync).
    history: Vec<(PathBuf, Option<PendingOp>)>,
    /// Called after every operation, to let tests crash at each point.
    probe: Option<Probe>,
}

/// A test hook run after every storage operation.
pub type Probe = Arc<dyn Fn(&SimStorage) + Send + Sync>;

/// In-memory storage that models durability: data written but not synced, and directory
/// entries not synced, may be lost by [`SimStorage::crash`].
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<SimState>>,
}

#[derive(Debug)]
struct SimHandle {
    path: PathBuf,
    file: Arc<Mutex<SimFile>>,
    storage: SimStorage,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", p.display()),
    )
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl SimStorage {
    /// Runs `probe` after every operation from now on (crash-point enumeration).
    pub fn set_probe(&self, probe: Option<Probe>) {
        lock(&self.state).probe = probe;
    }

    fn fire_probe(&self) {
        let probe = lock(&self.state).probe.clone();
        if let Some(p) = probe {
            p(self);
        }
    }

    /// Fresh, empty storage.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    /// Queues a fault for the next matching operation.
    pub fn inject(&self, fault: Fault) {
        lock(&self.state).faults.push(fault);
    }

    fn take_fault(&self, wanted: &[Fault]) -> Option<Fault> {
        let mut s = lock(&self.state);
        let i = s.faults.iter().position(|f| wanted.contains(f))?;
        Some(s.faults.remove(i))
    }

    /// Every unsynced operation, per file, in order.
    pub fn pending(&self) -> Vec<(PathBuf, Vec<PendingOp>)> {
        let s = lock(&self.state);
        s.files
            .iter()
            .map(|(p, f)| (p.clone(), lock(f).pending.clone()))
            .filter(|(_, ops)| !ops.is_empty())
            .collect()
    }

    /// Number of writes and syncs performed so far.
    pub fn history_len(&self) -> usize {
        lock(&self.state).history.len()
    }

    /// Simulates a crash: the namespace returns to its last synced state, and each file
    /// keeps its synced data plus the unsynced operations `keep(path, index, op)` selects;
    /// `tear(path)` may cut the last kept write to a prefix of the given length.
    pub fn crash_with(
        &self,
        mut keep: impl FnMut(&Path, usize, &PendingOp) -> bool,
        mut tear: impl FnMut(&Path, &PendingOp) -> Option<usize>,
    ) -> SimStorage {
        let s = lock(&self.state);
        let mut files = BTreeMap::new();
        for (p, f) in &s.durable_names {
            let f = lock(f);
            let mut data = f.durable.clone();
            let kept: Vec<&PendingOp> = f
                .pending
                .iter()
                .enumerate()
                .filter(|(i, op)| keep(p, *i, op))
                .map(|(_, op)| op)
                .collect();
            for (i, op) in kept.iter().enumerate() {
                if i + 1 == kept.len() {
                    if let (PendingOp::Write { offset, data: d }, Some(n)) = (op, tear(p, op)) {
                        let torn = PendingOp::Write {
                            offset: *offset,
                            data: d[..n.min(d.len())].to_vec(),
                        };
                        apply(&mut data, &torn);
                        continue;
                    }
                }
                apply(&mut data, op);
            }
            files.insert(
                p.clone(),
                Arc::new(Mutex::new(SimFile {
                    current: data.clone(),
                    durable: data,
                    pending: Vec::new(),
                })),
            );
        }
        SimStorage {
            state: Arc::new(Mutex::new(SimState {
                durable_names: files.clone(),
                files,
                faults: Vec::new(),
                history: Vec::new(),
                probe: None,
            })),
        }
    }

    /// A crash that loses every unsynced write and directory change.
    pub fn crash(&self) -> SimStorage {
        self.crash_with(|_, _, _| false, |_, _| None)
    }

    /// The current contents of a file (tests).
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = lock(&self.state);
        s.files.get(path).map(|f| lock(f).current.clone())
    }
}

impl StorageFile for SimHandle {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        match self
            .storage
            .take_fault(&[Fault::WriteEio, Fault::WriteNoSpace])
        {
            Some(Fault::WriteEio) => return Err(io::Error::other("injected EIO")),
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "injected ENOSPC",
                ))
            }
            None => {}
        }
        let op = PendingOp::Write {
            offset,
            data: data.to_vec(),
        };
        let mut f = lock(&self.file);
        apply(&mut f.current, &op);
        f.pending.push(op.clone());
        drop(f);
        lock(&self.storage.state)
            .history
            .push((self.path.clone(), Some(op)));
        self.storage.fire_probe();
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let op = PendingOp::SetLen(len);
        let mut f = lock(&self.file);
        apply(&mut f.current, &op);
        f.pending.push(op);
        drop(f);
        self.storage.fire_probe();
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        if self.storage.take_fault(&[Fault::SyncEio]).is_some() {
            return Err(io::Error::other("injected EIO on sync"));
        }
        let mut f = lock(&self.file);
        f.durable = f.current.clone();
        f.pending.clear();
        drop(f);
        lock(&self.storage.state)
            .history
            .push((self.path.clone(), None));
        self.storage.fire_probe();
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(lock(&self.file).current.len() as u64)
    }
}

impl Storage for SimStorage {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = Arc::new(Mutex::new(SimFile::default()));
        lock(&self.state)
            .files
            .insert(path.to_path_buf(), file.clone());
        Ok(Box::new(SimHandle {
            path: path.to_path_buf(),
            file,
            storage: self.clone(),
        }))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = lock(&self.state)
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimHandle {
            path: path.to_path_buf(),
            file,
            storage: self.clone(),
        }))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.contents(path).ok_or_else(|| not_found(path))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = lock(&self.state);
        Ok(s.files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        let f = s.files.remove(from).ok_or_else(|| not_found(from))?;
        s.files.insert(to.to_path_buf(), f);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        lock(&self.state)
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        let mut names: BTreeMap<PathBuf, Arc<Mutex<SimFile>>> = s
            .durable_names
            .iter()
            .filter(|(p, _)| !in_dir(p))
            .map(|(p, f)| (p.clone(), f.clone()))
            .collect();
        for (p, f) in &s.files {
            if in_dir(p) {
                names.insert(p.clone(), f.clone());
            }
        }
        s.durable_names = names;
        drop(s);
        self.fire_probe();
        Ok(())
    }
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool {
        let s = lock(&self.state);
        s.files.contains_key(path) || s.files.keys().any(|p| p.starts_with(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_data_and_names_are_lost_in_a_crash() {
        let s = SimStorage::new();
        let dir = Path::new("/d");
        let a = dir.join("a");
        let mut f = s.create(&a).unwrap();
        f.write_at(0, b"hello").unwrap();
        assert!(s.crash().read(&a).is_err(), "name not synced yet");
        s.sync_dir(dir).unwrap();
        assert_eq!(s.crash().read(&a).unwrap(), b"");
        f.sync().unwrap();
        f.write_at(5, b" world").unwrap();
        assert_eq!(s.read(&a).unwrap(), b"hello world");
        assert_eq!(s.crash().read(&a).unwrap(), b"hello");
        let torn = s.crash_with(|_, _, _| true, |_, _| Some(3));
        assert_eq!(torn.read(&a).unwrap(), b"hello wo");
    }

    #[test]
    fn a_big_file_read_in_parts_comes_back_whole() {
        let dir = std::env::temp_dir().join(format!("zk-log-read-parts-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        // Not a multiple of the part size, and every byte says where it is.
        let len = READ_IN_PARTS_MIN * 2 + 12_345;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &data).unwrap();
        let got = FsStorage.read(&path).unwrap();
        assert!(got == data, "{} bytes back, want {}", got.len(), data.len());
        let small = dir.join("small");
        fs::write(&small, b"abc").unwrap();
        assert_eq!(FsStorage.read(&small).unwrap(), b"abc");
        assert!(FsStorage.read(&dir.join("missing")).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A preallocated file read without its hole tail: what is left out reads as zeros,
    /// data past a hole in the middle is kept, and a file of holes only reads as empty.
    #[test]
    fn reading_the_data_leaves_out_only_a_tail_of_holes() {
        let dir = std::env::temp_dir().join(format!("zk-log-read-data-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let check = |name: &str, writes: &[(u64, &[u8])], size: u64| {
            let path = dir.join(name);
            let f = File::create(&path).unwrap();
            f.set_len(size).unwrap();
            for (at, bytes) in writes {
                f.write_all_at(bytes, *at).unwrap();
            }
            let whole = FsStorage.read(&path).unwrap();
            let data = FsStorage.read_data(&path).unwrap();
            assert_eq!(whole.len() as u64, size, "{name}");
            assert!(data.len() <= whole.len(), "{name}");
            assert!(whole[..data.len()] == data[..], "{name}: a prefix");
            assert!(
                whole[data.len()..].iter().all(|b| *b == 0),
                "{name}: zeros left out"
            );
            let last = writes
                .iter()
                .map(|(at, b)| at + b.len() as u64)
                .max()
                .unwrap_or(0);
            assert!(data.len() as u64 >= last, "{name}: every write kept");
            data.len() as u64
        };
        let header = [7u8; 16];
        let record = [9u8; 5000];
        let kept = check("log", &[(0, &header), (16, &record)], 64 << 20);
        // A file system that cannot tell holes keeps all 64 MB; ext4 and tmpfs keep blocks.
        println!("a preallocated 64 MB log with 5016 bytes written reads {kept} bytes");
        check("middle", &[(0, &header), (40 << 20, &record)], 64 << 20);
        check("big", &[(0, &[1u8; 20 << 20])], 64 << 20);
        check("no holes", &[(0, &record)], 5000);
        check("holes only", &[], 1 << 20);
        check("empty", &[], 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn faults_fire_once() {
        let s = SimStorage::new();
        let mut f = s.create(Path::new("/x")).unwrap();
        s.inject(Fault::WriteNoSpace);
        let e = f.write_at(0, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        f.write_at(0, b"x").unwrap();
        s.inject(Fault::SyncEio);
        assert!(f.sync().is_err());
        f.sync().unwrap();
    }
}

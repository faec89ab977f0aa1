//! The in-memory store's memory handed on across a graceful restart: a
//! file of the index's digests, written at a clean stop and read at the
//! next start.
//!
//! The file is also how a start tells a clean stop from a crash. A start
//! that reads it replaces it at once with a *running* marker (written to a
//! temporary name, synced, renamed); a clean stop replaces the marker with
//! the full snapshot. So at a start:
//!
//! | the file | what the start knows | the fence |
//! |---|---|---|
//! | absent, and the marker could be written | a first start | none |
//! | a snapshot, marker written | the memory is complete | the old store's |
//! | a running marker | a process crashed: its memory is lost | from this start |
//! | unreadable, truncated, corrupt, foreign, too large | nothing | from this start |
//! | anything, the marker not written | no later start could tell | none: the start fails |
//!
//! # The running marker's ceiling
//!
//! A crash loses what the process accepted, and a request from a client
//! whose clock runs ahead carries a timestamp after the next start: a
//! fence from the start alone would let its replay through. So the marker
//! also holds a *ceiling*, the latest timestamp the running process may
//! accept, raised (the marker written again, synced, before the request
//! is reserved) whenever a request brings a later one, and kept 2 s ahead
//! of the layer's clock once a second by the sweeping thread. A start after
//! a crash fences through the ceiling, so nothing the crashed process
//! accepted is accepted again, whatever its clients' clocks or a step of
//! this host's clock back meanwhile; the cost is the ceiling's lead (about
//! 2 s, or how far ahead the furthest client was) of
//! `issued_before_restart` after a crash. A ceiling that cannot be raised
//! (a full disk) refuses the request as unavailable (503).
//!
//! One process at a time: the start takes an exclusive lock on a file
//! beside the snapshot (its name with `.lock` appended, never removed), held
//! for as long as the store lives; a second process's start fails.
//!
//! # Format (version 2, little-endian)
//!
//! `ARMORPSK` `RPLY`, the version (u32), the state (u8: 1 running, 2
//! snapshot) and three zero bytes, the second it was written (u64), when
//! the memory began (u64, `u64::MAX` for a store with its fence off), the
//! ceiling (u64, 0: none yet), the scale's base (u64), the digester's two keys (u64 each); the entries
//! (a count, then each digest u64 and expiry u32: 12 bytes an entry, 24 a
//! request with its nonce); the keys' shares (a count, then each key's
//! digest u64, its bucket count u32, and each bucket's end and entries,
//! u32 each); then a SHA-512/256 of all that came before (32 bytes).
//!
//! It holds no secret of a client's: digests, never nonces, signatures or
//! keys' secrets. The digester's keys are in it (the digests mean nothing
//! without them): whoever reads the file could craft a request that
//! collides with a held one, which refuses that request as a replay and
//! accepts nothing. It is created readable by its owner only.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest as _, Sha512_256};

use super::digest::Digester;
use super::index::{Fence, Index};

const MAGIC: &[u8; 12] = b"ARMORPSKRPLY";
const VERSION: u32 = 2;
const RUNNING: u8 = 1;
const SNAPSHOT: u8 = 2;
const FENCE_OFF: u64 = u64::MAX;
/// More buckets than a key can hold (the longest lifetime, a 24 h window
/// plus a 24 h skew allowance, in 16 s buckets is 10,801): a count above
/// it is a corrupt file, not an allocation.
const MAX_BUCKETS: u32 = 11_000;
/// An entry's longest lifetime: a 24 h window and a 24 h skew allowance,
/// and a minute for the seconds' rounding.
const LONGEST_LIFETIME: u64 = 2 * 86_400 + 60;

/// What a start found in the snapshot file: whether the store's memory is
/// complete, and so whether requests signed before the start are refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum Memory {
    /// No file: a first start. Nothing is refused.
    FirstStart,
    /// A snapshot a clean stop wrote: its live entries are held again, and
    /// nothing is refused that the stopped store would have served.
    Complete {
        /// Entries read back.
        entries: u64,
    },
    /// A running marker: the process that read the file last did not stop
    /// cleanly, and what it accepted is lost. Requests signed in the
    /// second of this start or before are refused (401
    /// `issued_before_restart`).
    Crashed,
    /// The file, or the marker this start must leave, could not be read or
    /// trusted: fenced as after a crash.
    Untrusted(SnapshotError),
}

impl Memory {
    /// Whether requests signed before this start are refused.
    pub fn fenced(&self) -> bool {
        matches!(self, Self::Crashed | Self::Untrusted(_))
    }
}

/// A snapshot written: what it holds and what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Saved {
    /// Live entries written.
    pub entries: u64,
    /// Keys whose shares were written.
    pub keys: u64,
    /// The file's size.
    pub bytes: u64,
    /// How long writing and syncing took.
    pub took: Duration,
}

/// A snapshot that could not be written or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading, writing, syncing or renaming failed.
    #[error("snapshot {path}: {action}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not one of ours, of another version, cut short, or its
    /// checksum does not match what it holds.
    #[error("snapshot {path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: &'static str,
    },
    /// The file holds more entries than this store's memory limit.
    #[error("snapshot {path}: its entries do not fit in this store's memory limit")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Another store (of this process or another) holds the file's lock:
    /// two stores on one file would each take the other's crash for a
    /// clean stop.
    #[error("snapshot {path}: in use by another replay store (its .lock file is held)")]
    InUse {
        /// The file.
        path: PathBuf,
    },
}

impl SnapshotError {
    fn io<'p>(path: &'p Path, action: &'static str) -> impl FnOnce(io::Error) -> Self + 'p {
        move |source| Self::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }

    fn invalid(path: &Path, problem: &'static str) -> Self {
        Self::Invalid {
            path: path.to_owned(),
            problem,
        }
    }
}

/// Reads the file at `path` into a new index and leaves a running marker
/// in its place; the index's memory begins now when the file tells of no
/// complete memory, and after a crash no earlier than the crashed run's
/// ceiling. An error when the file is locked by another store, or no
/// marker can be left (no later start could then tell a crash of this
/// process: the store must not run).
pub(crate) fn restore(
    path: &Path,
    capacity: u64,
    per_key_limit: u64,
) -> Result<(Index, Memory, Lease), SnapshotError> {
    let lock = lock(path)?;
    let mut seen = 0;
    let (index, memory, ceiling) = match read(path, capacity, per_key_limit, &mut seen) {
        Ok(Some(Found::Snapshot {
            index,
            entries,
            ceiling,
        })) => (*index, Memory::Complete { entries }, ceiling),
        Ok(Some(Found::Running { ceiling })) => (
            fresh(capacity, per_key_limit).fenced_through(ceiling),
            Memory::Crashed,
            ceiling,
        ),
        Ok(None) => (
            Index::new(capacity, per_key_limit, Fence::Off),
            Memory::FirstStart,
            0,
        ),
        Err(error) => {
            // A file of ours found wrong (over the memory limit, cut short,
            // flipped): its ceiling, if it is one a run could have reached,
            // fences too. Believing a wrong one only refuses more.
            let ceiling = if seen <= super::index::unix_seconds().saturating_add(LONGEST_LIFETIME) {
                seen
            } else {
                0
            };
            (
                fresh(capacity, per_key_limit).fenced_through(ceiling),
                Memory::Untrusted(error),
                ceiling,
            )
        }
    };
    let (_, _, began) = index.identity();
    // What the earlier run accepted, if its memory is lost with this one's,
    // was signed no later than its ceiling: the marker keeps it.
    write_marker(path, began, ceiling)?;
    let lease = Lease {
        path: path.to_owned(),
        began,
        ceiling: AtomicU64::new(ceiling),
        writing: Mutex::new(false),
        _lock: lock,
    };
    Ok((index, memory, lease))
}

/// Takes the exclusive lock of the file beside `path`.
fn lock(path: &Path) -> Result<File, SnapshotError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options
        .open(PathBuf::from(name))
        .map_err(SnapshotError::io(path, "cannot open its lock file"))?;
    // A store of this process just dropped may still be held for one turn
    // by the sweeping thread: it is waited for, briefly.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(SnapshotError::InUse {
                    path: path.to_owned(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(SnapshotError::Io {
                    path: path.to_owned(),
                    action: "cannot lock its lock file",
                    source,
                });
            }
        }
    }
}

/// The running marker's promise: no request signed after the ceiling is
/// accepted before the marker says so (see the module docs).
pub(crate) struct Lease {
    path: PathBuf,
    began: Option<u64>,
    ceiling: AtomicU64,
    /// Held while the marker or the snapshot is written; `true` once the
    /// snapshot is (the marker must not replace it then).
    writing: Mutex<bool>,
    /// The lock on the file beside the snapshot, released when the store
    /// is dropped.
    _lock: File,
}

impl Lease {
    /// How far ahead of the layer's clock the sweeping thread keeps the
    /// ceiling, so that a client in step never waits for the marker.
    pub(crate) const AHEAD: u64 = 2;

    /// Whether a request signed at `timestamp` may be accepted as the
    /// marker stands.
    pub(crate) fn covers(&self, timestamp: u64) -> bool {
        timestamp <= self.ceiling.load(Ordering::Acquire)
    }

    /// Raises the ceiling to at least `to`: the marker is written and
    /// synced first.
    pub(crate) fn raise(&self, to: u64) -> Result<(), SnapshotError> {
        let saved = self.writing.lock();
        if *saved || self.covers(to) {
            // After the snapshot, the store takes no request anyway.
            return Ok(());
        }
        write_marker(&self.path, self.began, to)?;
        self.ceiling.store(to, Ordering::Release);
        Ok(())
    }
}

/// An index whose memory begins now.
fn fresh(capacity: u64, per_key_limit: u64) -> Index {
    Index::new(capacity, per_key_limit, Fence::FromStart)
}

/// Closes `index` and writes its live entries and shares to `path`; the
/// `lease`'s marker is never written again.
pub(crate) fn save(
    index: &Index,
    lease: Option<&Lease>,
    path: &Path,
) -> Result<Saved, SnapshotError> {
    let started = Instant::now();
    index.close();
    let mut saved = lease.map(|lease| lease.writing.lock());
    let ceiling = lease.map_or(0, |lease| lease.ceiling.load(Ordering::Acquire));
    let (digester, base, began) = index.identity();
    let mut entries = Vec::new();
    index.for_each_entry(|digest, until| entries.push((digest, until)));
    let mut shares = Vec::new();
    index.for_each_share(|key, buckets| shares.push((key, buckets.to_vec())));
    let header = Header {
        state: SNAPSHOT,
        // The entries' times are on the layer's clock: so is this.
        written: index.horizon().max(super::index::unix_seconds()),
        began,
        ceiling,
        base: base.unwrap_or(0),
        digester,
    };
    let bytes = write_atomically(path, |out| {
        header.write(out)?;
        out.put(&(entries.len() as u64).to_le_bytes())?;
        for &(digest, until) in &entries {
            out.put(&digest.to_le_bytes())?;
            out.put(&until.to_le_bytes())?;
        }
        out.put(&(shares.len() as u64).to_le_bytes())?;
        for (key, buckets) in &shares {
            out.put(&key.to_le_bytes())?;
            out.put(&(buckets.len() as u32).to_le_bytes())?;
            for &(end, count) in buckets {
                out.put(&end.to_le_bytes())?;
                out.put(&count.to_le_bytes())?;
            }
        }
        Ok(())
    })?;
    if let Some(saved) = saved.as_deref_mut() {
        *saved = true;
    }
    Ok(Saved {
        entries: entries.len() as u64,
        keys: shares.len() as u64,
        bytes,
        took: started.elapsed(),
    })
}

struct Header {
    state: u8,
    /// When, on the layer's clock as far as the index knows it.
    written: u64,
    began: Option<u64>,
    ceiling: u64,
    base: u64,
    digester: Digester,
}

impl Header {
    fn write(&self, out: &mut Hashed<impl Write>) -> io::Result<()> {
        out.put(MAGIC)?;
        out.put(&VERSION.to_le_bytes())?;
        out.put(&[self.state, 0, 0, 0])?;
        out.put(&self.written.to_le_bytes())?;
        out.put(&self.began.unwrap_or(FENCE_OFF).to_le_bytes())?;
        out.put(&self.ceiling.to_le_bytes())?;
        out.put(&self.base.to_le_bytes())?;
        let (k0, k1) = self.digester.keys();
        out.put(&k0.to_le_bytes())?;
        out.put(&k1.to_le_bytes())
    }
}

fn write_marker(path: &Path, began: Option<u64>, ceiling: u64) -> Result<(), SnapshotError> {
    let header = Header {
        state: RUNNING,
        written: super::index::unix_seconds(),
        began,
        ceiling,
        base: 0,
        digester: Digester::from_keys((0, 0)),
    };
    write_atomically(path, |out| {
        header.write(out)?;
        out.put(&0u64.to_le_bytes())?;
        out.put(&0u64.to_le_bytes())
    })
    .map(|_| ())
}

/// A writer that hashes what it writes.
struct Hashed<W> {
    inner: W,
    hash: Sha512_256,
    written: u64,
}

impl<W: Write> Hashed<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

/// Writes to a temporary file beside `path`, appends the checksum, syncs,
/// renames it over `path` and syncs the directory. Returns the size.
fn write_atomically(
    path: &Path,
    body: impl FnOnce(&mut Hashed<BufWriter<File>>) -> io::Result<()>,
) -> Result<u64, SnapshotError> {
    let mut temporary = path.as_os_str().to_owned();
    // Unique to this write: two processes of one pid (in two containers)
    // never share a temporary file.
    let unique = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), path);
    temporary.push(format!(".{}.{unique:016x}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = (|| {
        let file = create_private(&temporary).map_err(SnapshotError::io(path, "cannot create"))?;
        let mut out = Hashed {
            inner: BufWriter::with_capacity(1 << 20, file),
            hash: Sha512_256::new(),
            written: 0,
        };
        body(&mut out).map_err(SnapshotError::io(path, "cannot write"))?;
        let checksum = out.hash.clone().finalize();
        out.inner
            .write_all(&checksum)
            .map_err(SnapshotError::io(path, "cannot write"))?;
        let size = out.written + checksum.len() as u64;
        let file = out
            .inner
            .into_inner()
            .map_err(|error| SnapshotError::io(path, "cannot write")(error.into_error()))?;
        file.sync_all()
            .map_err(SnapshotError::io(path, "cannot sync"))?;
        fs::rename(&temporary, path)
            .map_err(SnapshotError::io(path, "cannot rename into place"))?;
        sync_directory(path).map_err(SnapshotError::io(path, "cannot sync its directory"))?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

fn sync_directory(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(directory)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

enum Found {
    Running {
        ceiling: u64,
    },
    Snapshot {
        index: Box<Index>,
        entries: u64,
        ceiling: u64,
    },
}

/// A reader that hashes what it reads; a short read is a truncated file.
struct Reader<'p, R> {
    inner: R,
    hash: Sha512_256,
    path: &'p Path,
}

impl<R: io::Read> Reader<'_, R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut bytes = [0u8; N];
        self.inner.read_exact(&mut bytes).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                SnapshotError::invalid(self.path, "cut short (truncated)")
            } else {
                SnapshotError::io(self.path, "cannot read")(error)
            }
        })?;
        self.hash.update(bytes);
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        self.bytes().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        self.bytes().map(u64::from_le_bytes)
    }

    /// Checks the checksum, and that nothing follows it.
    fn finish(mut self) -> Result<(), SnapshotError> {
        let expected = self.hash.clone().finalize();
        let mut held = [0u8; 32];
        self.inner
            .read_exact(&mut held)
            .map_err(|_| SnapshotError::invalid(self.path, "cut short (truncated)"))?;
        if held[..] != expected[..] {
            return Err(SnapshotError::invalid(
                self.path,
                "its checksum does not match (corrupt)",
            ));
        }
        let mut rest = [0u8; 1];
        match self.inner.read(&mut rest) {
            Ok(0) => Ok(()),
            _ => Err(SnapshotError::invalid(
                self.path,
                "bytes follow its checksum",
            )),
        }
    }
}

/// The file at `path`: `None` when there is none.
/// `ceiling` is set as soon as the header's is read, so that a file found
/// wrong later still tells how far a crashed run may have accepted.
fn read(
    path: &Path,
    capacity: u64,
    per_key_limit: u64,
    ceiling_seen: &mut u64,
) -> Result<Option<Found>, SnapshotError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(SnapshotError::io(path, "cannot open")(error)),
    };
    let mut input = Reader {
        inner: BufReader::with_capacity(1 << 20, file),
        hash: Sha512_256::new(),
        path,
    };
    if &input.bytes::<12>()? != MAGIC {
        return Err(SnapshotError::invalid(
            path,
            "not an armor-psk replay snapshot",
        ));
    }
    if input.u32()? != VERSION {
        return Err(SnapshotError::invalid(
            path,
            "written by another version of the format",
        ));
    }
    let [state, ..] = input.bytes::<4>()?;
    let written = input.u64()?;
    let began = input.u64()?;
    let ceiling = input.u64()?;
    *ceiling_seen = ceiling;
    let base = input.u64()?;
    let digester = Digester::from_keys((input.u64()?, input.u64()?));
    let fence = match began {
        FENCE_OFF => Fence::Off,
        began => Fence::Since(began),
    };
    let index = Index::restoring(capacity, per_key_limit, fence, digester, base);
    let entries = input.u64()?;
    if entries > capacity {
        return Err(SnapshotError::TooLarge {
            path: path.to_owned(),
        });
    }
    index.make_room_for(entries);
    // No entry outlives the longest lifetime past the file's writing.
    let latest = written
        .checked_sub(base)
        .and_then(|since| u32::try_from(since.saturating_add(LONGEST_LIFETIME)).ok());
    for _ in 0..entries {
        let digest = input.u64()?;
        let until = input.u32()?;
        if latest.is_none_or(|latest| until > latest) {
            return Err(SnapshotError::invalid(
                path,
                "an entry outlives any window (or its scale is wrong)",
            ));
        }
        if !index.restore_entry(digest, until) {
            return Err(SnapshotError::TooLarge {
                path: path.to_owned(),
            });
        }
    }
    let keys = input.u64()?;
    let mut buckets = Vec::new();
    for _ in 0..keys {
        let key = input.u64()?;
        let count = input.u32()?;
        if count > MAX_BUCKETS {
            return Err(SnapshotError::invalid(path, "a key holds too many buckets"));
        }
        buckets.clear();
        for _ in 0..count {
            buckets.push((input.u32()?, input.u32()?));
        }
        index.restore_share(key, &buckets);
    }
    input.finish()?;
    match state {
        RUNNING => Ok(Some(Found::Running { ceiling })),
        SNAPSHOT => Ok(Some(Found::Snapshot {
            index: Box::new(index),
            entries,
            ceiling,
        })),
        _ => Err(SnapshotError::invalid(path, "of an unknown state")),
    }
}

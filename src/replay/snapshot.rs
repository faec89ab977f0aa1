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
//! | anything, the marker not written | no later start could tell | from this start |
//!
//! # Format (version 1, little-endian)
//!
//! `ARMORPSK` `RPLY`, the version (u32), the state (u8: 1 running, 2
//! snapshot) and three zero bytes, the second it was written (u64), when
//! the memory began (u64, `u64::MAX` for a store with its fence off), the
//! scale's base (u64), the digester's two keys (u64 each); the entries
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha512_256};

use super::digest::Digester;
use super::index::{Fence, Index};

const MAGIC: &[u8; 12] = b"ARMORPSKRPLY";
const VERSION: u32 = 1;
const RUNNING: u8 = 1;
const SNAPSHOT: u8 = 2;
const FENCE_OFF: u64 = u64::MAX;
/// More buckets than a key can hold (the longest lifetime, a 24 h window
/// plus a 24 h skew allowance, in 16 s buckets is 10,801): a count above
/// it is a corrupt file, not an allocation.
const MAX_BUCKETS: u32 = 11_000;

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
/// complete memory. An error only when no marker could be left and the
/// old file could not be removed either.
pub(crate) fn restore(
    path: &Path,
    capacity: u64,
    per_key_limit: u64,
) -> Result<(Index, Memory), SnapshotError> {
    let read = read(path, capacity, per_key_limit);
    let (index, memory) = match read {
        Ok(Some(Found::Snapshot { index, entries })) => (*index, Memory::Complete { entries }),
        Ok(Some(Found::Running)) => (fresh(capacity, per_key_limit), Memory::Crashed),
        Ok(None) => (
            Index::new(capacity, per_key_limit, Fence::Off),
            Memory::FirstStart,
        ),
        Err(error) => (fresh(capacity, per_key_limit), Memory::Untrusted(error)),
    };
    let (_, _, began) = index.identity();
    match write_marker(path, began) {
        Ok(()) => Ok((index, memory)),
        Err(error) => {
            // No later start could tell a crash of this process: if the
            // old file stays, it must not be trusted, so it goes; this
            // start is fenced.
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(gone) if gone.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(SnapshotError::Io {
                        path: path.to_owned(),
                        action: "cannot replace or remove it (a crash would then go unseen)",
                        source,
                    });
                }
            }
            let memory = match memory {
                Memory::Untrusted(first) => Memory::Untrusted(first),
                _ => Memory::Untrusted(error),
            };
            Ok((fresh(capacity, per_key_limit), memory))
        }
    }
}

/// An index whose memory begins now.
fn fresh(capacity: u64, per_key_limit: u64) -> Index {
    Index::new(capacity, per_key_limit, Fence::FromStart)
}

/// Closes `index` and writes its live entries and shares to `path`.
pub(crate) fn save(index: &Index, path: &Path) -> Result<Saved, SnapshotError> {
    let started = Instant::now();
    index.close();
    let (digester, base, began) = index.identity();
    let mut entries = Vec::new();
    index.for_each_entry(|digest, until| entries.push((digest, until)));
    let mut shares = Vec::new();
    index.for_each_share(|key, buckets| shares.push((key, buckets.to_vec())));
    let header = Header {
        state: SNAPSHOT,
        began,
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
    Ok(Saved {
        entries: entries.len() as u64,
        keys: shares.len() as u64,
        bytes,
        took: started.elapsed(),
    })
}

struct Header {
    state: u8,
    began: Option<u64>,
    base: u64,
    digester: Digester,
}

impl Header {
    fn write(&self, out: &mut Hashed<impl Write>) -> io::Result<()> {
        out.put(MAGIC)?;
        out.put(&VERSION.to_le_bytes())?;
        out.put(&[self.state, 0, 0, 0])?;
        out.put(&super::index::unix_seconds().to_le_bytes())?;
        out.put(&self.began.unwrap_or(FENCE_OFF).to_le_bytes())?;
        out.put(&self.base.to_le_bytes())?;
        let (k0, k1) = self.digester.keys();
        out.put(&k0.to_le_bytes())?;
        out.put(&k1.to_le_bytes())
    }
}

fn write_marker(path: &Path, began: Option<u64>) -> Result<(), SnapshotError> {
    let header = Header {
        state: RUNNING,
        began,
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
    temporary.push(format!(".{}.tmp", std::process::id()));
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
    Running,
    Snapshot { index: Box<Index>, entries: u64 },
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
fn read(path: &Path, capacity: u64, per_key_limit: u64) -> Result<Option<Found>, SnapshotError> {
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
    let _written = input.u64()?;
    let began = input.u64()?;
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
    for _ in 0..entries {
        let digest = input.u64()?;
        let until = input.u32()?;
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
        RUNNING => Ok(Some(Found::Running)),
        SNAPSHOT => Ok(Some(Found::Snapshot {
            index: Box::new(index),
            entries,
        })),
        _ => Err(SnapshotError::invalid(path, "of an unknown state")),
    }
}

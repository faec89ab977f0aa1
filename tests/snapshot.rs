//! The in-memory store's snapshot file as a library user meets it: what a
//! crash fences (through the running marker's ceiling, so a client whose
//! clock runs ahead, or this host's clock stepped back, cannot get a lost
//! request accepted again), one store per file, and a start or a run that
//! cannot write the marker. On the system clock: the fence of a store made
//! now is what is tested.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use armor_psk::{
    protocol::Signature,
    replay::{
        Memory, MemoryReplayStore, ReplayRequest, ReplayStore, ReplayStoreError, Reservation,
        SnapshotError,
    },
};

const LIFETIME: Duration = Duration::from_secs(361);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("armor-psk-snapshot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn restore(path: &Path) -> (MemoryReplayStore, Memory) {
    MemoryReplayStore::builder()
        .memory_limit(16 << 20)
        .restore(path)
        .expect("the store starts")
}

fn signature(n: u64) -> Signature {
    let mut bytes = [0u8; 64];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    Signature::from_bytes(bytes)
}

/// Request `n`, signed at `timestamp`, reserved when the layer's clock
/// reads `now`.
fn reserve(
    store: &MemoryReplayStore,
    n: u64,
    timestamp: u64,
    now: u64,
) -> Result<Reservation, ReplayStoreError> {
    let signature = signature(n);
    let nonce = format!("{n:032x}");
    let request =
        ReplayRequest::new("key", &signature, timestamp, now, LIFETIME).with_nonce(&nonce);
    futures_util::FutureExt::now_or_never(store.reserve(&request))
        .expect("the memory store answers at once")
}

/// A client 30 s ahead is served, the process is killed (the store dropped
/// unsaved), and the next start sees the crash: the request, signed after
/// that start, is still refused, and a fresh one past the ceiling served.
/// (A fence from the start alone accepted it again.)
#[test]
fn a_crash_fences_what_a_client_ahead_had_accepted() {
    let path = scratch("ahead").join("replay.snapshot");
    let (store, memory) = restore(&path);
    assert!(matches!(memory, Memory::FirstStart));
    let accepted = now();
    assert_eq!(
        reserve(&store, 1, accepted + 30, accepted).unwrap(),
        Reservation::Reserved
    );
    drop(store);

    let (store, memory) = restore(&path);
    assert!(matches!(memory, Memory::Crashed), "{memory:?}");
    let replayed = reserve(&store, 1, accepted + 30, now()).unwrap();
    assert!(
        matches!(replayed, Reservation::IssuedBeforeRestart { .. }),
        "the replay after the crash: {replayed:?}"
    );
    // The ceiling was the request's timestamp plus 2 s: later is served.
    assert_eq!(
        reserve(&store, 2, accepted + 33, now()).unwrap(),
        Reservation::Reserved
    );
}

/// A crash, then a start whose clock is a minute behind (a reboot before
/// NTP): what the crashed run accepted is still refused.
#[test]
fn a_crash_then_a_clock_behind_still_fences_what_was_accepted() {
    let path = scratch("behind").join("replay.snapshot");
    let (store, _) = restore(&path);
    let accepted = now();
    assert_eq!(
        reserve(&store, 1, accepted, accepted).unwrap(),
        Reservation::Reserved
    );
    drop(store);

    let (store, memory) = restore(&path);
    assert!(memory.fenced());
    let behind = now() - 60;
    let replayed = reserve(&store, 1, accepted, behind).unwrap();
    assert!(
        matches!(replayed, Reservation::IssuedBeforeRestart { .. }),
        "the replay on a clock 60 s behind: {replayed:?}"
    );
}

/// A crash of a run that itself started after a crash: the first run's
/// ceiling is carried on, and a second crash still fences it.
#[test]
fn two_crashes_in_a_row_keep_the_first_runs_ceiling() {
    let path = scratch("twice").join("replay.snapshot");
    let (store, _) = restore(&path);
    let accepted = now();
    assert_eq!(
        reserve(&store, 1, accepted + 60, accepted).unwrap(),
        Reservation::Reserved
    );
    drop(store);
    let (store, _) = restore(&path);
    drop(store); // crashed again before any request
    let (store, memory) = restore(&path);
    assert!(matches!(memory, Memory::Crashed));
    assert!(matches!(
        reserve(&store, 1, accepted + 60, now()).unwrap(),
        Reservation::IssuedBeforeRestart { .. }
    ));
}

/// A graceful stop hands the memory on: the replay is a replay, the
/// ceiling costs nobody anything, and a client ahead is served.
#[test]
fn a_clean_stop_refuses_only_replays() {
    let path = scratch("clean").join("replay.snapshot");
    let (store, _) = restore(&path);
    let accepted = now();
    assert_eq!(
        reserve(&store, 1, accepted + 30, accepted).unwrap(),
        Reservation::Reserved
    );
    store.save(&path).expect("saved");
    drop(store);
    let (store, memory) = restore(&path);
    assert!(
        matches!(memory, Memory::Complete { entries: 2 }),
        "{memory:?}"
    );
    assert_eq!(
        reserve(&store, 1, accepted + 30, now()).unwrap(),
        Reservation::Replayed
    );
    assert_eq!(
        reserve(&store, 2, accepted - 100, now()).unwrap(),
        Reservation::Reserved
    );
}

/// Two stores on one file would each take the other's crash for a clean
/// stop: the second is refused while the first lives, then served.
#[test]
fn one_store_at_a_time_on_a_snapshot_file() {
    let path = scratch("locked").join("replay.snapshot");
    let (store, _) = restore(&path);
    let second = MemoryReplayStore::builder().restore(&path);
    assert!(
        matches!(second, Err(SnapshotError::InUse { .. })),
        "{second:?}"
    );
    drop(store);
    let (_store, memory) = restore(&path);
    assert!(matches!(memory, Memory::Crashed));
}

/// A snapshot path that cannot take the marker (here a directory that is
/// not empty): the start fails with the reason, and leaves what is there.
#[test]
fn a_start_that_cannot_leave_its_marker_fails() {
    let path = scratch("unwritable").join("replay.snapshot");
    std::fs::create_dir_all(path.join("inside")).unwrap();
    let started = MemoryReplayStore::builder().restore(&path);
    let error = started.expect_err("no marker, no start");
    assert!(matches!(error, SnapshotError::Io { .. }), "{error:?}");
    assert!(path.join("inside").is_dir());
}

/// A ceiling that cannot be raised while running (the file's place taken
/// by a directory): a request signed past it is refused as unavailable,
/// one within it is served.
#[test]
fn a_ceiling_that_cannot_be_raised_refuses_later_requests() {
    let path = scratch("stuck").join("replay.snapshot");
    let (store, _) = restore(&path);
    let start = now();
    assert_eq!(
        reserve(&store, 1, start, start).unwrap(),
        Reservation::Reserved
    );
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir_all(path.join("inside")).unwrap();
    let refused = reserve(&store, 2, start + 100, start);
    assert!(
        matches!(refused, Err(ReplayStoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(
        reserve(&store, 3, start + 1, start).unwrap(),
        Reservation::Reserved
    );
}

/// A clean stop's snapshot that no longer fits (the memory limit was
/// lowered) is not trusted, but its ceiling still fences: a client ahead
/// served before the stop is not served again.
#[test]
fn a_snapshot_too_large_to_trust_still_fences_through_its_ceiling() {
    let path = scratch("shrunk").join("replay.snapshot");
    let (store, _) = restore(&path);
    let accepted = now();
    for n in 0..100 {
        assert_eq!(
            reserve(&store, n, accepted + 30, accepted).unwrap(),
            Reservation::Reserved
        );
    }
    store.save(&path).unwrap();
    drop(store);
    let (store, memory) = MemoryReplayStore::builder()
        .capacity(10)
        .restore(&path)
        .unwrap();
    assert!(matches!(memory, Memory::Untrusted(_)), "{memory:?}");
    assert!(matches!(
        reserve(&store, 1, accepted + 30, now()).unwrap(),
        Reservation::IssuedBeforeRestart { .. }
    ));
}

/// A request signed further ahead of the store's confirmed clock than an
/// entry's lifetime (the layer's clock stepped forward a day, not yet
/// confirmed): the marker cannot promise that far, so it is refused as
/// unavailable rather than accepted unfenced; the clock back, served.
#[test]
fn a_request_beyond_the_confirmed_clock_is_refused_not_accepted_unfenced() {
    let path = scratch("glitch").join("replay.snapshot");
    let (store, _) = restore(&path);
    let start = now();
    assert_eq!(
        reserve(&store, 1, start, start).unwrap(),
        Reservation::Reserved
    );
    let day = 86_400;
    let refused = reserve(&store, 2, start + day, start + day);
    assert!(
        matches!(refused, Err(ReplayStoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(
        reserve(&store, 3, start + 1, start + 1).unwrap(),
        Reservation::Reserved
    );
}

/// A store's settings are its builder's, given before it holds anything:
/// a per-key limit set before `restore` holds on the restored store, whose
/// memory is the file's, and which keeps the file's lock. (A setting on a
/// store in use once built a fresh store, entries, lock and ceiling gone;
/// the store has no setter now: `MemoryReplayStore`'s `compile_fail`
/// doctest.)
#[test]
fn a_restored_store_takes_its_settings_from_the_builder_and_keeps_its_memory() {
    let path = scratch("limit").join("replay.snapshot");
    let builder = MemoryReplayStore::builder()
        .memory_limit(16 << 20)
        .per_key_limit(4);
    let (store, _) = builder.clone().restore(&path).unwrap();
    let accepted = now();
    assert_eq!(
        reserve(&store, 1, accepted, accepted).unwrap(),
        Reservation::Reserved
    );
    store.save(&path).unwrap();
    drop(store);

    let (store, memory) = builder.restore(&path).unwrap();
    assert!(matches!(memory, Memory::Complete { .. }), "{memory:?}");
    assert_eq!(store.per_key_limit(), 4);
    let clone = store.clone();
    assert_eq!(
        reserve(&clone, 1, accepted, accepted).unwrap(),
        Reservation::Replayed,
        "the file's memory, shared by every clone"
    );
    assert_eq!(
        reserve(&store, 2, accepted, accepted).unwrap(),
        Reservation::Reserved
    );
    assert!(
        matches!(
            reserve(&store, 3, accepted, accepted),
            Err(ReplayStoreError::KeyQuotaExceeded { .. })
        ),
        "the builder's per-key limit: four entries, two requests with their nonces, one of them the file's"
    );
    assert!(matches!(
        MemoryReplayStore::builder().restore(&path),
        Err(SnapshotError::InUse { .. })
    ));
}

/// The sweeping thread keeps the ceiling 2 s ahead of the clock: a run
/// that served requests for a few seconds, then crashed, fences the
/// seconds up to its last one plus 2, even for requests it never saw (a
/// nonce reused under a new signature, signed after the crash).
#[test]
fn the_ceiling_keeps_ahead_of_a_running_store() {
    let path = scratch("ahead-kept").join("replay.snapshot");
    // A run after a clean stop, as after a crash.
    let (store, _) = restore(&path);
    store.save(&path).unwrap();
    drop(store);
    let (store, memory) = restore(&path);
    assert!(matches!(memory, Memory::Complete { .. }));
    let start = now();
    for n in 0..30 {
        let at = now();
        assert_eq!(reserve(&store, n, at, at).unwrap(), Reservation::Reserved);
        std::thread::sleep(Duration::from_millis(100));
    }
    let crashed = now();
    drop(store);
    let (store, _) = restore(&path);
    assert!(
        store
            .fenced_through()
            .is_some_and(|through| through > crashed),
        "fenced through {:?}, crashed at {crashed}, started at {start}",
        store.fenced_through()
    );
}

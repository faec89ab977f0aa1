//! What happened, and the check of the three promises over it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use super::deploy::Domain;
use super::keys::{HANDOVER_MS, Slot};

/// Milliseconds since the Unix epoch, by the harness's (true) clock.
pub type Millis = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request sent once, as a client does.
    Honest,
    /// The same bytes as request `of`, sent again.
    Replay { of: u64 },
    /// A new signature with the nonce of request `of` (same key).
    NonceReuse { of: u64 },
    /// A new request signed with a revoked key, or with a secret past its
    /// rotation's overlap: whoever kept it after it was taken back.
    Stale,
}

impl Request {
    /// The id its path carries (`/chaos/ID`): a replay's is its original's.
    pub fn path_id(&self) -> u64 {
        match self.kind {
            Kind::Replay { of } => of,
            _ => self.id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub id: u64,
    pub kind: Kind,
    /// The key's slot in the key book (`k{slot}` in the report).
    pub key: usize,
    /// The secret version it was signed with.
    pub version: u32,
    pub nonce: String,
    /// The signed timestamp (the client's clock).
    pub timestamp: u64,
    pub instance: &'static str,
    pub domain: Domain,
    pub body_bytes: usize,
    pub keep_alive: bool,
    pub sent: Millis,
    pub done: Millis,
    /// `None`: no answer (the connection failed or timed out).
    pub status: Option<u16>,
    /// The refusal's `error` code, or the transport error.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// The deployment's start: a fresh Redis, as after a restart.
    Start,
    /// `kill -9`, restarted at once (within the second, most times).
    KillRestart,
    /// `kill -9`, restarted after a pause.
    KillPauseRestart,
    /// SIGTERM (drain, snapshot), restarted.
    TermRestart,
    /// Redis `kill -9` and started again, without persistence.
    RedisRestart,
    /// Redis SIGSTOP, then SIGCONT.
    RedisPause,
    /// An instance's wall clock stepped ±30 s, and back later.
    ClockStep,
    /// An instance's wall clock a day ahead for a moment.
    ClockGlitch,
    /// A key added to PostgreSQL (before a revocation, so that the honest
    /// clients keep as many keys).
    KeyAdd,
    /// A key revoked in PostgreSQL.
    KeyRevoke,
    /// A key's secret rotated in PostgreSQL, the old one kept for an
    /// overlap of a few seconds.
    KeyRotate,
    /// The instances' database connections silent (a relay that holds
    /// every byte), and speaking again.
    DatabaseSilent,
}

impl FaultKind {
    pub const ALL: [Self; 12] = [
        Self::Start,
        Self::KillRestart,
        Self::KillPauseRestart,
        Self::TermRestart,
        Self::RedisRestart,
        Self::RedisPause,
        Self::ClockStep,
        Self::ClockGlitch,
        Self::KeyAdd,
        Self::KeyRevoke,
        Self::KeyRotate,
        Self::DatabaseSilent,
    ];

    /// The faults the nemesis draws from (the others come with one).
    pub fn drawn(keys_in_database: bool, clock: bool) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|kind| !matches!(kind, Self::Start | Self::KeyAdd))
            .filter(|kind| clock || !matches!(kind, Self::ClockStep | Self::ClockGlitch))
            .filter(|kind| {
                keys_in_database
                    || !matches!(
                        kind,
                        Self::KeyRevoke | Self::KeyRotate | Self::DatabaseSilent
                    )
            })
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Start => "deployment start (a fresh Redis)",
            Self::KillRestart => "kill -9, restart at once",
            Self::KillPauseRestart => "kill -9, restart later",
            Self::TermRestart => "SIGTERM, restart",
            Self::RedisRestart => "Redis restart (no persistence)",
            Self::RedisPause => "Redis paused (SIGSTOP)",
            Self::ClockStep => "clock step ±30 s",
            Self::ClockGlitch => "clock glitch +1 day",
            Self::KeyAdd => "key added (PostgreSQL)",
            Self::KeyRevoke => "key revoked (PostgreSQL)",
            Self::KeyRotate => "key rotated (PostgreSQL)",
            Self::DatabaseSilent => "database connections silent",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    /// The instance, "redis", "database", or the key (`k{slot}`).
    pub target: String,
    /// The key's slot, for a key's change.
    pub key: Option<usize>,
    pub detail: String,
    pub start: Millis,
    pub end: Millis,
}

impl Fault {
    /// Whether it loses replay memory of `domain` (a fence is then due).
    fn loses_memory_of(&self, domain: Domain, instance_domain: impl Fn(&str) -> Domain) -> bool {
        match self.kind {
            FaultKind::RedisRestart | FaultKind::Start => domain == Domain::Redis,
            FaultKind::KillRestart | FaultKind::KillPauseRestart => {
                domain == Domain::Memory && instance_domain(&self.target) == Domain::Memory
            }
            _ => false,
        }
    }
}

/// How long after a memory-losing fault ends honest requests may be
/// refused as issued before the restart, in timestamp seconds: the
/// crashed run's ceiling (2 s ahead) and the clients' spread (3 s ahead),
/// and a second of rounding; for Redis its start plus 3 s, and the
/// watcher's fence past the latest timestamp reserved.
pub const FENCE_SPAN: u64 = 6;
/// How long after a Redis fault ends a 503 is allowed (reconnects).
pub const RECOVERY_MS: u64 = 5_000;
/// How long after the database speaks again every instance has seen the
/// changes made meanwhile: docs/keys.md's "at most about 4 s once the database
/// answers", and a second of slack.
pub const DATABASE_CATCH_UP_MS: u64 = 5_000;
/// How far a stepped clock moves (a secret's validity is read on the
/// server's clock: one 30 s behind keeps an old secret 30 s longer).
pub const CLOCK_STEP_MS: u64 = 30_000;

pub struct History {
    pub requests: Vec<Request>,
    pub faults: Vec<Fault>,
    /// Per instance, the ids its logs show accepted.
    pub accepted: HashMap<&'static str, Vec<u64>>,
    pub domains: HashMap<&'static str, Domain>,
    /// The key book at the end: when each key was added, rotated, revoked.
    pub keys: Vec<Slot>,
}

pub struct Violation {
    /// The promise broken: 1 (accepted twice), 2 (a key taken back still
    /// working), 3 (an honest request refused without cause); 0 for a
    /// history the servers' logs contradict.
    pub promise: u8,
    pub what: String,
    pub request: u64,
}

/// Why an honest request was refused.
pub enum Cause<'a> {
    Fault(&'a Fault),
    /// An attacker's copy of it, sent while it was in flight, came first
    /// (and was served, or held its entries until it was refused).
    ReplayWonRace,
}

impl Cause<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Fault(fault) => fault.kind.name(),
            Self::ReplayWonRace => "a copy sent while it was in flight came first",
        }
    }
}

impl History {
    pub fn check(&self) -> Vec<Violation> {
        let mut violations = Vec::new();
        let by_id: HashMap<u64, &Request> = self.requests.iter().map(|r| (r.id, r)).collect();
        // 1. Nothing accepted twice within a domain: by path id (the same
        //    bytes) or by nonce (the original and its nonce reuses).
        let mut accepted: HashMap<(Domain, u64), Vec<&'static str>> = HashMap::new();
        for (&instance, ids) in &self.accepted {
            for &id in ids {
                let group = match by_id.get(&id).map(|r| r.kind) {
                    Some(Kind::NonceReuse { of }) => of,
                    _ => id,
                };
                accepted
                    .entry((self.domains[instance], group))
                    .or_default()
                    .push(instance);
            }
        }
        let mut twice: Vec<_> = accepted
            .iter()
            .filter(|(_, instances)| instances.len() > 1)
            .filter(|((domain, id), _)| !self.reused_after_memory_loss(*domain, *id, &by_id))
            .collect();
        twice.sort_by_key(|((_, id), _)| *id);
        for ((domain, id), instances) in twice {
            violations.push(Violation {
                promise: 1,
                what: format!(
                    "request {id} accepted {} times in the {domain:?} domain (by {})",
                    instances.len(),
                    instances.join(", ")
                ),
                request: *id,
            });
        }
        // 2. No key accepted once taken back, later than the stated bound.
        for request in self.requests.iter().filter(|r| r.status == Some(200)) {
            if let Some((what, bound)) = self.taken_back(request)
                && request.sent > bound
            {
                violations.push(Violation {
                    promise: 2,
                    what: format!(
                        "request {} with key k{} v{} accepted by {}: sent {} ms past the bound after {what}",
                        request.id,
                        request.key,
                        request.version,
                        request.instance,
                        request.sent - bound,
                    ),
                    request: request.id,
                });
            }
        }
        // The servers' logs are the history checked above: every 200 a
        // client saw must be in them.
        let logged: HashSet<(&str, u64)> = self
            .accepted
            .iter()
            .flat_map(|(instance, ids)| ids.iter().map(move |id| (*instance, *id)))
            .collect();
        for request in self.requests.iter().filter(|r| r.status == Some(200)) {
            if !logged.contains(&(request.instance, request.path_id())) {
                violations.push(Violation {
                    promise: 0,
                    what: format!(
                        "request {} answered 200 by {}, which logged no acceptance of /chaos/{}",
                        request.id,
                        request.instance,
                        request.path_id()
                    ),
                    request: request.id,
                });
            }
        }
        // 3. Every refusal of an honest request explained.
        for request in self.requests.iter().filter(|r| r.kind == Kind::Honest) {
            if request.status == Some(200) {
                continue;
            }
            if self.explain(request).is_none() {
                violations.push(Violation {
                    promise: 3,
                    what: format!(
                        "honest request {} to {} refused without a cause the docs allow: {} {}",
                        request.id,
                        request.instance,
                        request.status.map_or("no answer".into(), |s| s.to_string()),
                        request.reason
                    ),
                    request: request.id,
                });
            }
        }
        violations
    }

    /// Whether the acceptances of `id`'s nonce are its own once and
    /// otherwise only nonce reuses signed after a fault that lost the
    /// domain's memory: the fence refuses by timestamp, and a new signature
    /// under an old nonce (only the key holder can make one) signed after
    /// the fence is not a captured request (SECURITY.md).
    fn reused_after_memory_loss(
        &self,
        domain: Domain,
        id: u64,
        by_id: &HashMap<u64, &Request>,
    ) -> bool {
        let domain_of = |name: &str| self.domains.get(name).copied().unwrap_or(Domain::Redis);
        if !by_id.contains_key(&id) {
            return false;
        }
        let mut seen = HashSet::new();
        for (&instance, ids) in &self.accepted {
            if self.domains[instance] != domain {
                continue;
            }
            for &accepted in ids {
                let member = accepted == id
                    || matches!(by_id.get(&accepted).map(|r| r.kind), Some(Kind::NonceReuse { of }) if of == id);
                if member && !seen.insert(accepted) {
                    // The same bytes accepted twice: never allowed.
                    return false;
                }
            }
        }
        // The first acceptance of the nonce is free; each later one needs
        // a fault that lost the domain's memory after the one before, and
        // a signature made after that fault.
        let mut members: Vec<&Request> = seen
            .iter()
            .filter_map(|id| by_id.get(id).copied())
            .collect();
        members.sort_by_key(|r| r.sent);
        members.windows(2).all(|pair| {
            let (before, reuse) = (pair[0], pair[1]);
            self.faults.iter().any(|fault| {
                fault.loses_memory_of(domain, domain_of)
                    && (domain == Domain::Redis || fault.target == reuse.instance)
                    && fault.start >= before.sent
                    && reuse.sent >= fault.start
                    && fault.start <= reuse.timestamp * 1000 + 999
            })
        })
    }

    /// Nonce reuses accepted after a memory loss (allowed, counted).
    pub fn reuses_after_memory_loss(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| matches!(r.kind, Kind::NonceReuse { .. }) && r.status == Some(200))
            .count()
    }

    /// When every instance has seen a change of the keys committed at
    /// `at`: within [`HANDOVER_MS`] while the database speaks; once it
    /// speaks again plus [`DATABASE_CATCH_UP_MS`] when a silence began
    /// before the change was seen (silences chain).
    pub fn seen_by(&self, at: Millis) -> Millis {
        let mut silences: Vec<&Fault> = self
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::DatabaseSilent)
            .collect();
        silences.sort_by_key(|f| f.start);
        let mut until = at + HANDOVER_MS;
        for silence in silences {
            if silence.start <= until {
                until = until.max(silence.end + DATABASE_CATCH_UP_MS);
            }
        }
        until
    }

    /// When the key or the secret `request` was signed with was taken
    /// back (revoked, or past its overlap), if it was.
    fn taken_back_at(&self, request: &Request) -> Option<Millis> {
        let slot = self.keys.get(request.key)?;
        let expired = slot
            .secrets
            .iter()
            .find(|s| s.version == request.version)
            .and_then(|s| s.expires);
        match (slot.revoked, expired) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What took back the key or secret `request` was signed with, and the
    /// latest a request sent with it may still be accepted: the stated
    /// bound after a revocation; after a rotation, the overlap's end or
    /// the bound after the rotation, whichever is later, plus a clock step
    /// back of its instance (validity is read on the server's clock).
    fn taken_back(&self, request: &Request) -> Option<(String, Millis)> {
        let slot = self.keys.get(request.key)?;
        let mut bounds = Vec::new();
        if let Some(revoked) = slot.revoked {
            bounds.push(("its key's revocation".to_owned(), self.seen_by(revoked)));
        }
        let secret = slot.secrets.iter().find(|s| s.version == request.version)?;
        if let Some(expires) = secret.expires {
            // The rotation that made version + 1 bounded this one.
            let rotated = self
                .faults
                .iter()
                .filter(|f| f.kind == FaultKind::KeyRotate && f.key == Some(request.key))
                .nth(request.version.saturating_sub(1) as usize)
                .map_or(expires, |f| f.end);
            // Its instance's clock behind while it served this request.
            let stepped_back = self.faults.iter().any(|f| {
                f.kind == FaultKind::ClockStep
                    && f.target == request.instance
                    && f.detail.starts_with('-')
                    && f.start <= request.done
                    && request.sent <= f.end + 1_000
            });
            let bound = (expires + 999).max(self.seen_by(rotated))
                + if stepped_back { CLOCK_STEP_MS } else { 0 };
            bounds.push((format!("the end of v{}'s overlap", request.version), bound));
        }
        bounds.into_iter().min_by_key(|(_, bound)| *bound)
    }

    /// What explains an honest request's refusal, if anything does.
    pub fn explain(&self, request: &Request) -> Option<Cause<'_>> {
        if request.status == Some(401) && request.reason == "replayed_request" {
            // Only one copy may hold the entries; the one holding them
            // can still be refused afterwards (a fence), and then neither
            // is served.
            // A replay takes its entries; a nonce reuse, its nonce.
            let raced = self.requests.iter().any(|r| {
                matches!(r.kind, Kind::Replay { of } | Kind::NonceReuse { of } if of == request.id)
                    && r.domain == request.domain
                    && r.sent <= request.done
                    && (r.status == Some(200) || r.done >= request.sent)
            });
            if raced {
                return Some(Cause::ReplayWonRace);
            }
        }
        self.explaining_fault(request).map(Cause::Fault)
    }

    /// The fault that explains an honest request's refusal, if any.
    fn explaining_fault(&self, request: &Request) -> Option<&Fault> {
        let domain_of = |name: &str| self.domains.get(name).copied().unwrap_or(Domain::Redis);
        let overlaps = |fault: &Fault, before: u64, after: u64| {
            fault.start <= request.done + before && request.sent <= fault.end + after
        };
        let on_instance = |fault: &Fault| fault.target == request.instance;
        let on_redis = |fault: &Fault| {
            fault.target == "redis"
                && request.domain == Domain::Redis
                && matches!(fault.kind, FaultKind::RedisRestart | FaultKind::RedisPause)
        };
        self.faults.iter().find(|fault| {
            match (request.status, request.reason.as_str()) {
                // No answer: the instance went down under it, or Redis
                // stalled it past the client's timeout.
                (None, _) => {
                    (on_instance(fault)
                        && matches!(
                            fault.kind,
                            FaultKind::KillRestart
                                | FaultKind::KillPauseRestart
                                | FaultKind::TermRestart
                        )
                        && overlaps(fault, 200, 1_000))
                        || (on_redis(fault) && overlaps(fault, 0, RECOVERY_MS))
                }
                (Some(401), "issued_before_restart") => {
                    fault.loses_memory_of(request.domain, domain_of)
                        && (request.domain == Domain::Redis || on_instance(fault))
                        && fault.start <= request.done
                        && request.timestamp <= fault.end / 1000 + FENCE_SPAN
                }
                (Some(503), "replay_store_unavailable") => {
                    on_redis(fault)
                        && matches!(fault.kind, FaultKind::RedisRestart | FaultKind::RedisPause)
                        && overlaps(fault, 0, RECOVERY_MS)
                }
                (Some(401), "timestamp_out_of_window") => {
                    on_instance(fault)
                        && fault.kind == FaultKind::ClockGlitch
                        && overlaps(fault, 0, 1_000)
                }
                // A change of its key not seen yet: the key revoked while
                // the client held it, a key or secret handed out before
                // every instance saw it (its database silent); or the old
                // secret in its overlap, on a clock stepped ahead.
                (Some(401), "invalid_signature") => {
                    let expires = self.keys.get(request.key).and_then(|slot| {
                        slot.secrets
                            .iter()
                            .find(|s| s.version == request.version)
                            .and_then(|s| s.expires)
                    });
                    (fault.key == Some(request.key)
                        && match fault.kind {
                            FaultKind::KeyRevoke => {
                                fault.start <= request.done && request.sent <= fault.end + 100
                            }
                            FaultKind::KeyAdd | FaultKind::KeyRotate => {
                                fault.end <= request.sent && request.sent <= self.seen_by(fault.end)
                            }
                            _ => false,
                        })
                        || (on_instance(fault)
                            && fault.kind == FaultKind::ClockStep
                            && !fault.detail.starts_with('-')
                            && overlaps(fault, 0, 1_000)
                            && expires.is_some_and(|at| request.done + CLOCK_STEP_MS + 1_000 >= at))
                }
                (Some(503), "key_store_unavailable") => {
                    fault.kind == FaultKind::DatabaseSilent && overlaps(fault, 0, RECOVERY_MS)
                }
                _ => false,
            }
        })
    }

    /// The table a person reads at a glance.
    pub fn report(&self, violations: &[Violation], seed: u64, seconds: u64) -> String {
        let mut out = String::new();
        let honest: Vec<_> = self
            .requests
            .iter()
            .filter(|r| r.kind == Kind::Honest)
            .collect();
        let attacks: Vec<_> = self
            .requests
            .iter()
            .filter(|r| !matches!(r.kind, Kind::Honest | Kind::Stale))
            .collect();
        let stale: Vec<_> = self
            .requests
            .iter()
            .filter(|r| r.kind == Kind::Stale)
            .collect();
        let served = honest.iter().filter(|r| r.status == Some(200)).count();
        let _ = writeln!(out, "chaos: seed {seed}, {seconds} s");
        let keys = if self.keys.iter().any(|k| k.added > 0) {
            "keys in PostgreSQL through a relay"
        } else {
            "keys in the environment"
        };
        let _ = writeln!(
            out,
            "deployment: A, B on one Redis; C in memory with a snapshot file; {keys}"
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| requests | count |");
        let _ = writeln!(out, "|---|---:|");
        let _ = writeln!(out, "| honest | {} |", honest.len());
        let _ = writeln!(out, "| honest served (200) | {served} |");
        let _ = writeln!(
            out,
            "| attacks (replays, nonce reuses) | {} |",
            attacks.len()
        );
        let attack_accepted = attacks.iter().filter(|r| r.status == Some(200)).count();
        let _ = writeln!(
            out,
            "| attacks answered 200 (original not accepted in that domain, or a nonce reused after a memory loss) | {attack_accepted} |"
        );
        let _ = writeln!(
            out,
            "| of which nonce reuses (a new signature, signed after the fence) | {} |",
            self.reuses_after_memory_loss()
        );
        let stale_served: Vec<_> = stale.iter().filter(|r| r.status == Some(200)).collect();
        let latest = stale_served
            .iter()
            .filter_map(|r| Some(r.sent as i64 - self.taken_back_at(r)? as i64))
            .max();
        let _ = writeln!(
            out,
            "| revoked keys and expired secrets tried (new signatures) | {} |",
            stale.len()
        );
        let _ = writeln!(
            out,
            "| of which accepted (within the bound, or a violation below) | {}{} |",
            stale_served.len(),
            latest.map_or(String::new(), |ms| format!(
                ", the latest sent {ms} ms after the change committed"
            ))
        );
        let _ = writeln!(out);
        let mut faults: BTreeMap<FaultKind, usize> = BTreeMap::new();
        for fault in &self.faults {
            *faults.entry(fault.kind).or_default() += 1;
        }
        let _ = writeln!(out, "| fault | count |");
        let _ = writeln!(out, "|---|---:|");
        for kind in FaultKind::ALL {
            let _ = writeln!(
                out,
                "| {} | {} |",
                kind.name(),
                faults.get(&kind).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(out);
        let mut refusals: BTreeMap<(String, String), usize> = BTreeMap::new();
        for request in honest.iter().filter(|r| r.status != Some(200)) {
            let status = request
                .status
                .map_or("no answer".to_owned(), |s| s.to_string());
            let reason = if request.status.is_none() {
                "transport".to_owned()
            } else {
                request.reason.clone()
            };
            let cause = self
                .explain(request)
                .map_or("UNEXPLAINED", |cause| cause.name());
            *refusals
                .entry((format!("{status} {reason}"), cause.to_owned()))
                .or_default() += 1;
        }
        let _ = writeln!(out, "| honest refusal | explained by | count |");
        let _ = writeln!(out, "|---|---|---:|");
        for ((refusal, cause), count) in &refusals {
            let _ = writeln!(out, "| {refusal} | {cause} | {count} |");
        }
        let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
        for request in &attacks {
            let key = match request.status {
                Some(200) => "200".to_owned(),
                Some(status) => format!("{status} {}", request.reason),
                None => "no answer".to_owned(),
            };
            *by_reason.entry(key).or_default() += 1;
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "| attack answered | count |");
        let _ = writeln!(out, "|---|---:|");
        for (answer, count) in &by_reason {
            let _ = writeln!(out, "| {answer} | {count} |");
        }
        let _ = writeln!(out);
        let span = self.measured_fence_span();
        let _ = writeln!(
            out,
            "longest fence seen after a memory-losing fault: {span} s of timestamps past its end (allowed {FENCE_SPAN})"
        );
        let _ = writeln!(out, "violations: {}", violations.len());
        for (promise, what) in [
            (1, "accepted twice"),
            (2, "a revoked key or expired secret accepted past the bound"),
            (
                3,
                "an honest request refused without a cause the docs allow",
            ),
            (0, "a 200 the servers did not log"),
        ] {
            let count = violations.iter().filter(|v| v.promise == promise).count();
            if count > 0 {
                let _ = writeln!(out, "  {what}: {count}");
            }
        }
        let by_id: HashMap<u64, &Request> = self.requests.iter().map(|r| (r.id, r)).collect();
        // The first few of each kind.
        let shown = [0, 1, 2, 3].into_iter().flat_map(|promise| {
            violations
                .iter()
                .filter(move |v| v.promise == promise)
                .take(8)
        });
        for violation in shown {
            let _ = writeln!(out, "- {}", violation.what);
            if let Some(request) = by_id.get(&violation.request) {
                let _ = writeln!(
                    out,
                    "  request {}: key k{} ts {} to {} sent {} ms",
                    request.id, request.key, request.timestamp, request.instance, request.sent
                );
                for fault in self
                    .faults
                    .iter()
                    .filter(|f| f.end + 5_000 >= request.sent && f.start <= request.done + 5_000)
                {
                    let _ = writeln!(
                        out,
                        "  fault around it: {} on {} ({}) {}..{} ms",
                        fault.kind.name(),
                        fault.target,
                        fault.detail,
                        fault.start,
                        fault.end
                    );
                }
            }
        }
        out
    }

    /// The most timestamp seconds past a memory-losing fault's end that an
    /// honest request was refused as issued before the restart.
    fn measured_fence_span(&self) -> i64 {
        let mut longest = 0;
        for request in &self.requests {
            if request.kind != Kind::Honest || request.reason != "issued_before_restart" {
                continue;
            }
            if let Some(Cause::Fault(fault)) = self.explain(request) {
                longest = longest.max(request.timestamp as i64 - (fault.end / 1000) as i64);
            }
        }
        longest
    }

    /// Every event, one JSON object a line.
    pub fn json_lines(&self) -> String {
        let mut out = String::new();
        for fault in &self.faults {
            let line = serde_json::json!({
                "event": "fault", "kind": format!("{:?}", fault.kind), "target": fault.target,
                "detail": fault.detail, "start_ms": fault.start, "end_ms": fault.end,
            });
            let _ = writeln!(out, "{line}");
        }
        let accepted: HashSet<(&str, u64)> = self
            .accepted
            .iter()
            .flat_map(|(instance, ids)| ids.iter().map(move |id| (*instance, *id)))
            .collect();
        for r in &self.requests {
            let (kind, of) = match r.kind {
                Kind::Honest => ("honest", None),
                Kind::Replay { of } => ("replay", Some(of)),
                Kind::NonceReuse { of } => ("nonce_reuse", Some(of)),
                Kind::Stale => ("stale", None),
            };
            let line = serde_json::json!({
                "event": "request", "id": r.id, "kind": kind, "of": of, "key": format!("k{}", r.key),
                "key_id": self.keys.get(r.key).map(|k| k.id.as_str()), "version": r.version,
                "nonce": r.nonce, "timestamp": r.timestamp, "instance": r.instance,
                "body_bytes": r.body_bytes, "keep_alive": r.keep_alive,
                "sent_ms": r.sent, "done_ms": r.done, "status": r.status, "reason": r.reason,
                "logged_accepted": accepted.contains(&(r.instance, r.path_id())),
            });
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

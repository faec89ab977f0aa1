//! What happened, and the check of the three promises over it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use super::deploy::Domain;

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
    pub key: String,
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
}

impl FaultKind {
    pub const ALL: [Self; 8] = [
        Self::Start,
        Self::KillRestart,
        Self::KillPauseRestart,
        Self::TermRestart,
        Self::RedisRestart,
        Self::RedisPause,
        Self::ClockStep,
        Self::ClockGlitch,
    ];

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
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    /// The instance, or "redis".
    pub target: &'static str,
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
                domain == Domain::Memory && instance_domain(self.target) == Domain::Memory
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

pub struct History {
    pub requests: Vec<Request>,
    pub faults: Vec<Fault>,
    /// Per instance, the ids its logs show accepted.
    pub accepted: HashMap<&'static str, Vec<u64>>,
    pub domains: HashMap<&'static str, Domain>,
}

pub struct Violation {
    pub what: String,
    pub request: u64,
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
                what: format!(
                    "request {id} accepted {} times in the {domain:?} domain (by {})",
                    instances.len(),
                    instances.join(", ")
                ),
                request: *id,
            });
        }
        // 3. Every refusal of an honest request explained.
        for request in self.requests.iter().filter(|r| r.kind == Kind::Honest) {
            if request.status == Some(200) {
                continue;
            }
            if self.explain(request).is_none() {
                violations.push(Violation {
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
        let Some(original) = by_id.get(&id) else {
            return false;
        };
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
        seen.iter()
            .filter(|&&accepted| accepted != id)
            .all(|reuse| {
                let reuse = by_id[reuse];
                self.faults.iter().any(|fault| {
                    fault.loses_memory_of(domain, domain_of)
                        && (domain == Domain::Redis || fault.target == original.instance)
                        && fault.start >= original.sent
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

    /// The fault that explains an honest request's refusal, if any.
    pub fn explain(&self, request: &Request) -> Option<&Fault> {
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
            .filter(|r| r.kind != Kind::Honest)
            .collect();
        let served = honest.iter().filter(|r| r.status == Some(200)).count();
        let _ = writeln!(out, "chaos: seed {seed}, {seconds} s");
        let _ = writeln!(
            out,
            "deployment: A, B on one Redis; C in memory with a snapshot file"
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
                .map_or("UNEXPLAINED".to_owned(), |fault| {
                    fault.kind.name().to_owned()
                });
            *refusals
                .entry((format!("{status} {reason}"), cause))
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
        let by_id: HashMap<u64, &Request> = self.requests.iter().map(|r| (r.id, r)).collect();
        for violation in violations.iter().take(20) {
            let _ = writeln!(out, "- {}", violation.what);
            if let Some(request) = by_id.get(&violation.request) {
                let _ = writeln!(
                    out,
                    "  request {}: key {} ts {} to {} sent {} ms",
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
            if let Some(fault) = self.explain(request) {
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
            };
            let line = serde_json::json!({
                "event": "request", "id": r.id, "kind": kind, "of": of, "key": r.key,
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

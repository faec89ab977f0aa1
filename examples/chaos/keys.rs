//! The keys the clients sign with: fixed (in the instances' environment),
//! or in PostgreSQL, where the nemesis adds, rotates and revokes them while
//! the run goes on (through the crate's own administration, on a direct
//! connection: the instances reach the database through a relay that can
//! go silent).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use rand::rngs::StdRng;

use armor_psk::{
    Signer,
    keys::postgres::{Kek, PostgresKeyStore, Sealing},
};

use super::history::Millis;

/// How long after a key or a secret is handed out the honest clients wait
/// before they sign with it (the stated bound for every instance to see a
/// change, with the database reachable).
pub const HANDOVER_MS: Millis = 1_000;

/// One secret of a key.
#[derive(Clone)]
pub struct Secret {
    pub version: u32,
    pub signer: Arc<Signer>,
    /// When the honest clients may start signing with it.
    pub usable_from: Millis,
    /// When it stops verifying (its `not_after`, in ms), after a rotation.
    pub expires: Option<Millis>,
}

/// One key and what happened to it.
#[derive(Clone)]
pub struct Slot {
    pub id: String,
    pub secrets: Vec<Secret>,
    /// When its addition committed.
    pub added: Millis,
    /// When its revocation committed.
    pub revoked: Option<Millis>,
}

/// What a client signs with.
pub struct Pick {
    pub slot: usize,
    pub version: u32,
    pub signer: Arc<Signer>,
}

pub struct Keys {
    slots: Mutex<Vec<Slot>>,
    admin: Option<Admin>,
}

struct Admin {
    runtime: tokio::runtime::Runtime,
    store: PostgresKeyStore,
}

impl Keys {
    /// `count` fixed keys: `k0=secret,…` for the instances' environment.
    pub fn fixed(count: usize, rng: &mut StdRng) -> (Self, String) {
        let mut slots = Vec::new();
        let mut spec = Vec::new();
        for k in 0..count {
            let id = format!("k{k}");
            let secret = format!("secret-{k}-{}", rng.random::<u64>());
            spec.push(format!("{id}={secret}"));
            slots.push(Slot {
                secrets: vec![Secret {
                    version: 1,
                    signer: Arc::new(Signer::new(id.as_str(), secret.as_str()).expect("a key")),
                    usable_from: 0,
                    expires: None,
                }],
                id,
                added: 0,
                revoked: None,
            });
        }
        let keys = Self {
            slots: Mutex::new(slots),
            admin: None,
        };
        (keys, spec.join(","))
    }

    /// `count` keys added to the database at `url` (migrated first), sealed
    /// under a KEK made for the run: the KEK's base64 for the instances.
    pub fn in_postgres(url: &str, count: usize) -> Result<(Self, String), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let (kek, kek_base64) = Kek::generate().map_err(|e| e.to_string())?;
        let store = runtime
            .block_on(async {
                let store = PostgresKeyStore::connect(url, Sealing::Kek(kek)).await?;
                store.migrate().await?;
                Ok::<_, armor_psk::keys::postgres::PostgresStoreError>(store)
            })
            .map_err(|e| format!("the chaos database: {e}"))?;
        let keys = Self {
            slots: Mutex::new(Vec::new()),
            admin: Some(Admin { runtime, store }),
        };
        for _ in 0..count {
            keys.add()?;
        }
        Ok((keys, kek_base64))
    }

    pub fn in_database(&self) -> bool {
        self.admin.is_some()
    }

    pub fn slot(&self, slot: usize) -> Slot {
        self.slots.lock()[slot].clone()
    }

    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    /// A key an honest client may sign with now, with its newest usable
    /// secret.
    pub fn honest(&self, rng: &mut StdRng, now: Millis) -> Option<Pick> {
        let slots = self.slots.lock();
        let usable: Vec<usize> = (0..slots.len())
            .filter(|&s| slots[s].revoked.is_none() && slots[s].added + HANDOVER_MS <= now)
            .collect();
        let slot = *usable.get(rng.random_range(0..usable.len().max(1)))?;
        let secret = slots[slot]
            .secrets
            .iter()
            .rev()
            .find(|secret| secret.usable_from <= now)?;
        Some(Pick {
            slot,
            version: secret.version,
            signer: Arc::clone(&secret.signer),
        })
    }

    /// A secret no one may sign with any more: a revoked key's, or one
    /// past its rotation's overlap.
    pub fn stale(&self, rng: &mut StdRng, now: Millis) -> Option<Pick> {
        let slots = self.slots.lock();
        let stale: Vec<(usize, &Secret)> = slots
            .iter()
            .enumerate()
            .flat_map(|(s, slot)| {
                slot.secrets.iter().filter_map(move |secret| {
                    let gone = slot.revoked.is_some_and(|at| at <= now)
                        || secret.expires.is_some_and(|at| at <= now);
                    gone.then_some((s, secret))
                })
            })
            .collect();
        let (slot, secret) = *stale.get(rng.random_range(0..stale.len().max(1)))?;
        Some(Pick {
            slot,
            version: secret.version,
            signer: Arc::clone(&secret.signer),
        })
    }

    /// Adds a key; its slot. The honest clients sign with it
    /// [`HANDOVER_MS`] after its addition committed.
    pub fn add(&self) -> Result<usize, String> {
        let admin = self.admin.as_ref().ok_or("fixed keys")?;
        let new = admin
            .runtime
            .block_on(admin.store.add_key("chaos", None))
            .map_err(|e| format!("add a key: {e}"))?;
        let signer =
            Signer::new(new.key_id.as_str(), new.secret.as_str()).map_err(|e| e.to_string())?;
        let mut slots = self.slots.lock();
        slots.push(Slot {
            id: new.key_id,
            secrets: vec![Secret {
                version: 1,
                signer: Arc::new(signer),
                usable_from: 0,
                expires: None,
            }],
            added: super::now_ms(),
            revoked: None,
        });
        Ok(slots.len() - 1)
    }

    /// A key that is neither revoked nor the last `keep` of them.
    pub fn victim(&self, rng: &mut StdRng, keep: usize) -> Option<usize> {
        let slots = self.slots.lock();
        let active: Vec<usize> = (0..slots.len())
            .filter(|&s| slots[s].revoked.is_none())
            .collect();
        if active.len() <= keep {
            return None;
        }
        Some(active[rng.random_range(0..active.len())])
    }

    /// Revokes the key in `slot`; `committed` is called with the time its
    /// revocation committed (the clients stop using it from then).
    pub fn revoke(&self, slot: usize, committed: impl FnOnce() -> Millis) -> Result<(), String> {
        let admin = self.admin.as_ref().ok_or("fixed keys")?;
        let id = self.slots.lock()[slot].id.clone();
        let revoked = admin
            .runtime
            .block_on(admin.store.revoke(&id))
            .map_err(|e| format!("revoke: {e}"))?;
        if !revoked {
            return Err(format!("revoke: key {id} was not active"));
        }
        self.slots.lock()[slot].revoked = Some(committed());
        Ok(())
    }

    /// Rotates the key in `slot`: the old secret verifies for `overlap`
    /// more, the new one is handed to the clients after [`HANDOVER_MS`].
    /// Its new version.
    pub fn rotate(&self, slot: usize, overlap: Duration, now_ms: Millis) -> Result<u32, String> {
        let admin = self.admin.as_ref().ok_or("fixed keys")?;
        let id = self.slots.lock()[slot].id.clone();
        let now = now_ms / 1000;
        let (version, secret) = admin
            .runtime
            .block_on(admin.store.rotate(&id, overlap, now))
            .map_err(|e| format!("rotate: {e}"))?;
        let signer = Signer::new(id.as_str(), secret.as_str()).map_err(|e| e.to_string())?;
        let committed = super::now_ms();
        let mut slots = self.slots.lock();
        let slot = &mut slots[slot];
        // Every secret older than the new one stops at now + overlap (the
        // store's own arithmetic, in whole seconds).
        let until = (now + overlap.as_secs()) * 1000;
        for old in &mut slot.secrets {
            old.expires = Some(old.expires.map_or(until, |at| at.min(until)));
        }
        slot.secrets.push(Secret {
            version,
            signer: Arc::new(signer),
            usable_from: committed + HANDOVER_MS,
            expires: None,
        });
        Ok(version)
    }
}

//! The nonces the mock has seen accepted, to name a client that reuses one
//! (`nonce_reused` in the journal), bounded.

/// The most recent accepted (key id, nonce) pairs, bounded.
#[derive(Default)]
pub(crate) struct SeenNonces {
    set: std::collections::HashSet<(String, String)>,
    order: std::collections::VecDeque<(String, String)>,
}

impl SeenNonces {
    const LIMIT: usize = 100_000;

    pub(crate) fn contains(&self, key_id: &str, nonce: &str) -> bool {
        self.set.contains(&(key_id.to_owned(), nonce.to_owned()))
    }

    pub(crate) fn insert(&mut self, key_id: &str, nonce: &str) {
        let pair = (key_id.to_owned(), nonce.to_owned());
        if self.set.insert(pair.clone()) {
            self.order.push_back(pair);
            if self.order.len() > Self::LIMIT
                && let Some(oldest) = self.order.pop_front()
            {
                self.set.remove(&oldest);
            }
        }
    }
}

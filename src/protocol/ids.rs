//! The key id and the nonce of one request, held once and shared.

use std::fmt;
use std::sync::Arc;

/// The longest key id and nonce the header grammar lets through, joined
/// (`MAX_KEY_ID_LEN + MAX_NONCE_LEN`); longer ones are joined on the heap.
const MAX_JOINED: usize = 256 + 128;

/// The key id and the nonce a request claims, in one shared allocation:
/// the [`Credentials`](crate::protocol::Credentials) parsed from the header, the
/// [`Identity`](crate::Identity) of an accepted request and the
/// [`Rejection`](crate::Rejection) of a refused one hold the same `Arc`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Ids {
    /// The key id followed by the nonce.
    text: Arc<str>,
    key_id_len: usize,
}

impl Ids {
    pub(crate) fn new(key_id: &str, nonce: &str) -> Self {
        // Joined on the stack, then copied once into the `Arc` (a `String`
        // first would be a second allocation).
        let mut joined = [0u8; MAX_JOINED];
        let text = match joined.get_mut(..key_id.len() + nonce.len()) {
            Some(buffer) => {
                let (front, back) = buffer.split_at_mut(key_id.len());
                front.copy_from_slice(key_id.as_bytes());
                back.copy_from_slice(nonce.as_bytes());
                Arc::from(std::str::from_utf8(buffer).expect("two `str`s joined are UTF-8"))
            }
            None => Arc::from([key_id, nonce].concat()),
        };
        Self {
            text,
            key_id_len: key_id.len(),
        }
    }

    pub(crate) fn key_id(&self) -> &str {
        &self.text[..self.key_id_len]
    }

    pub(crate) fn nonce(&self) -> &str {
        &self.text[self.key_id_len..]
    }
}

impl fmt::Debug for Ids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ids")
            .field("key_id", &self.key_id())
            .field("nonce", &self.nonce())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::header::{MAX_KEY_ID_LEN, MAX_NONCE_LEN};

    #[test]
    fn joins_on_the_stack_up_to_the_grammar_limits_and_on_the_heap_beyond() {
        assert_eq!(MAX_JOINED, MAX_KEY_ID_LEN + MAX_NONCE_LEN);
        for (key_id, nonce) in [
            ("k".repeat(MAX_KEY_ID_LEN), "n".repeat(MAX_NONCE_LEN)),
            ("k".repeat(MAX_KEY_ID_LEN + 1), "n".repeat(MAX_NONCE_LEN)),
            ("ключ".to_owned(), "n-1".to_owned()),
        ] {
            let ids = Ids::new(&key_id, &nonce);
            assert_eq!((ids.key_id(), ids.nonce()), (&*key_id, &*nonce));
        }
    }
}

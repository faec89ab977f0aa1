//! `pattern`s compiled once, within bounds: a document's regular
//! expression is ECMA-262, and the ones the `regex` crate cannot read
//! (look-arounds, back-references) are not checked, never an error. Linear
//! time matching (no backtracking), a size limit on each compiled pattern,
//! and a bounded cache.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Patterns kept compiled; past this the cache starts again.
const CACHED: usize = 1_024;
/// The most memory one compiled pattern may take.
const SIZE_LIMIT: usize = 1 << 20;

type Cache = Mutex<HashMap<String, Option<regex::Regex>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

/// Whether `text` matches `pattern` (anywhere, as JSON Schema reads it);
/// `None` when the pattern cannot be checked.
pub(crate) fn matches(pattern: &str, text: &str) -> Option<bool> {
    let compiled = {
        let mut cache = cache()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(compiled) = cache.get(pattern) {
            compiled.clone()
        } else {
            if cache.len() >= CACHED {
                cache.clear();
            }
            let compiled = regex::RegexBuilder::new(pattern)
                .size_limit(SIZE_LIMIT)
                .dfa_size_limit(SIZE_LIMIT)
                .build()
                .ok();
            cache.insert(pattern.to_owned(), compiled.clone());
            compiled
        }
    };
    compiled.map(|regex| regex.is_match(text))
}

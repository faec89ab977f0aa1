//! The 64 groups the entries' keys fall in, each sharing a hash slot with
//! its epoch key (the restart fence per group).

/// How many groups the entries' keys fall in: each group's keys share a
/// Redis Cluster hash slot with the group's epoch key, so that a node that
/// loses its data loses the epoch of every entry it held.
pub(super) const GROUPS: u8 = 64;

/// The group of an entry: FNV-1a of its bytes, the same on every
/// instance (who can choose a group gains nothing: it only places a key).
pub(super) fn group_of(entry: &[u8]) -> u8 {
    let hash = entry.iter().fold(0x811c_9dc5u32, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    (hash % u32::from(GROUPS)) as u8
}

pub(super) fn group_name(group: u8) -> [u8; 5] {
    [b'{', b'g', b'0' + group / 10, b'0' + group % 10, b'}']
}

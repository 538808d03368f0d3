//! The weighted split, as arithmetic: the exact split's counter rule and the sticky split's
//! buckets. Pure functions of their arguments, shared by the routing decision and by
//! mirroring's exact sampling.

use xxhash_rust::xxh3::Xxh3;

use crate::route::matcher::StickyKey;

/// How weighted traffic is split, compiled.
pub(crate) enum Split {
    Exact,
    Sticky { key: StickyKey, salt: Vec<u8> },
}

/// Buckets of the sticky split: a weight is honoured to 1/10 000.
pub const STICKY_BUCKETS: u64 = 10_000;

/// The exact split: decision `k` goes to the canary iff ⌊(k+1)·w/T⌋ − ⌊k·w/T⌋ = 1. The pattern
/// repeats every T decisions, so `k` is reduced modulo T first and nothing can overflow.
pub fn exact_is_canary(k: u64, weight: u32, total: u32) -> bool {
    if total == 0 {
        return false;
    }
    let (w, t) = (u64::from(weight.min(total)), u64::from(total));
    let k = k % t;
    (k + 1) * w / t - k * w / t == 1
}

/// The sticky bucket of a key: xxh3-64 (seed 0) of salt ‖ key, modulo 10 000.
pub fn sticky_bucket(salt: &[u8], key: &[u8]) -> u64 {
    let mut h = Xxh3::with_seed(0);
    h.update(salt);
    h.update(key);
    h.digest() % STICKY_BUCKETS
}

/// The sticky split: canary iff bucket · T < w · 10 000, so raising w only adds buckets.
pub fn sticky_is_canary(bucket: u64, weight: u32, total: u32) -> bool {
    bucket * u64::from(total) < u64::from(weight) * STICKY_BUCKETS
}

/// The sticky salt: route name and canary revision, separated so that no two pairs collide.
pub fn sticky_salt(route: &str, canary_revision: &str) -> Vec<u8> {
    let mut salt = Vec::with_capacity(route.len() + canary_revision.len() + 2);
    salt.extend_from_slice(route.as_bytes());
    salt.push(0);
    salt.extend_from_slice(canary_revision.as_bytes());
    salt.push(0);
    salt
}

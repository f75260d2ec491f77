//! Deterministic identifiers (hashes, UUIDs, commit hashes) and the seed's calendar and timestamps.

/// A deterministic 64-bit hash (FNV-1a, then a splitmix finaliser so neighbouring seeds look unrelated).
pub(super) fn hash64(seed: &str, salt: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

pub(super) fn hex(seed: &str, len: usize) -> String {
    let mut out = String::new();
    let mut salt = 0;
    while out.len() < len {
        out.push_str(&format!("{:016x}", hash64(seed, salt)));
        salt += 1;
    }
    out.truncate(len);
    out
}

/// A 40-character commit hash.
pub(super) fn sha(seed: &str) -> String {
    hex(seed, 40)
}

/// A braced UUID, as Bitbucket writes them.
pub(super) fn uuid(seed: &str) -> String {
    let h = hex(seed, 32);
    format!(
        "{{{}-{}-4{}-a{}-{}}}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

/// A UUID as it appears inside a URL.
pub(super) fn enc(uuid: &str) -> String {
    uuid.replace('{', "%7B").replace('}', "%7D")
}

/// Seed times are written in minutes on a calendar of their own (day 0 = the first day of the seed's
/// history); [`START`] on it is when the sim starts.
pub(super) type Minutes = u64;

/// A time in the data: Unix milliseconds. [`Data::seed`] turns the seed's [`Minutes`] into these.
pub(super) type Time = u64;

pub(super) const fn at(day: u64, hour: u64, minute: u64) -> Minutes {
    day * 1440 + hour * 60 + minute
}

/// When the sim starts, on the seed's calendar; every seeded time is before it.
pub(super) const START: Minutes = at(82, 12, 0);

/// The Unix time of a seed time, for a sim started at `now_ms`. Seconds and milliseconds vary with the
/// minute (real data is not on round minutes) but stay within it, so the seed's order holds.
pub(super) fn seed_time(minutes: Minutes, now_ms: Time) -> Time {
    let jitter = (minutes * 13 + 7) % 60 * 1000 + (minutes * 7919 + 104_729) % 1000;
    let ago = (i128::from(START) - i128::from(minutes)) * 60_000 - i128::from(jitter);
    u64::try_from((i128::from(now_ms) - ago).max(0)).unwrap_or(0)
}

/// A Bitbucket timestamp: UTC with microseconds.
pub(super) fn ts(ms: Time) -> String {
    let micros = (ms % 1000) * 1000 + (ms.wrapping_mul(7919) + 104_729) % 1000;
    let seconds = chrono::DateTime::from_timestamp(i64::try_from(ms / 1000).unwrap_or(0), 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S");
    format!("{seconds}.{micros:06}+00:00")
}

//! Where a key sits on the hash ring.

/// Size of the hash ring: positions are `0..RING`.
pub const RING: u64 = 1 << 32;

/// The ring position of `key`: the upper 32 bits of FNV-1a 64 of its bytes, passed through the
/// SplitMix64 finalizer so that keys differing only in their last bytes (`user1`, `user2`) land far
/// apart.
///
/// ```
/// use shardcast_shardmap::{ring_position, RING};
/// let p = ring_position("customer-42");
/// assert!(u64::from(p) < RING);
/// assert_eq!(p, ring_position("customer-42"));
/// ```
pub fn ring_position(key: &str) -> u32 {
    ring_position_of_bytes(key.as_bytes())
}

/// [`ring_position`] of raw bytes.
pub fn ring_position_of_bytes(bytes: &[u8]) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (mix(hash) >> 32) as u32
}

/// SplitMix64's finalizer: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_keys_spread_over_the_ring() {
        // 4096 keys `k0..k4095` over 16 equal ranges: each range should get close to 256.
        let mut counts = [0u32; 16];
        for i in 0..4096 {
            counts[(ring_position(&format!("k{i}")) >> 28) as usize] += 1;
        }
        for count in counts {
            assert!((180..=330).contains(&count), "uneven spread: {counts:?}");
        }
    }
}

//! Session passwords, derived from the session id exactly as ZooKeeper derives them, so a
//! client can reconnect to any server (ours or a real ZooKeeper sharing the data) and have
//! its password checked without the password ever being stored or replicated.
//!
//! ZooKeeper seeds `java.util.Random` with `sessionId ^ 0xB3415C00` and takes 16
//! `nextBytes`; [`JavaRandom`] is a bit-exact port of the parts of `java.util.Random` that
//! needs (the 48-bit linear congruential generator of Knuth, TAOCP 3.2.1).

/// The length of a session password (`byte[16]` in ZooKeeper).
pub const PASSWORD_LEN: usize = 16;

/// ZooKeeper's fixed "super secret" mixed into the seed (`ZooKeeperServer.superSecret`).
const SUPER_SECRET: i64 = 0xB341_5C00;

/// The password of `session_id`: deterministic, so every server computes the same one.
pub fn password(session_id: i64) -> [u8; PASSWORD_LEN] {
    let mut out = [0u8; PASSWORD_LEN];
    JavaRandom::new(session_id ^ SUPER_SECRET).next_bytes(&mut out);
    out
}

/// Whether `passwd` is `session_id`'s password. Like ZooKeeper's `checkPasswd`, session
/// id 0 (the "new session" marker of a `ConnectRequest`) never matches, and a password of
/// any other length is simply wrong.
pub fn check_password(session_id: i64, passwd: &[u8]) -> bool {
    session_id != 0 && passwd == password(session_id).as_slice()
}

/// `java.util.Random`'s generator, bit for bit: same seed scrambling, same 48-bit LCG, same
/// `nextInt` and `nextBytes`. Only what session passwords need is ported.
#[derive(Debug, Clone)]
pub struct JavaRandom {
    /// The 48-bit state (`Random.seed`), always below 2^48.
    seed: u64,
}

impl JavaRandom {
    /// The LCG multiplier (`0x5DEECE66DL`), also XORed into the seed by the constructor.
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    /// The LCG increment (`0xBL`).
    const ADDEND: u64 = 0xB;
    /// The state is 48 bits wide.
    const MASK: u64 = (1 << 48) - 1;

    /// `new Random(seed)`: only the low 48 bits of the seed matter, scrambled with the
    /// multiplier so that small seeds do not start with small states.
    pub fn new(seed: i64) -> JavaRandom {
        JavaRandom {
            seed: (seed as u64 ^ Self::MULTIPLIER) & Self::MASK,
        }
    }

    /// `Random.next(bits)`: advances the state and returns its top `bits` bits (1..=32),
    /// as Java's `int` (so 32 bits can come out negative).
    fn next(&mut self, bits: u32) -> i32 {
        debug_assert!((1..=32).contains(&bits));
        self.seed = self
            .seed
            .wrapping_mul(Self::MULTIPLIER)
            .wrapping_add(Self::ADDEND)
            & Self::MASK;
        (self.seed >> (48 - bits)) as u32 as i32
    }

    /// `Random.nextInt()`: 32 pseudo-random bits.
    pub fn next_int(&mut self) -> i32 {
        self.next(32)
    }

    /// `Random.nextBytes(bytes)`: one `nextInt` per 4 bytes, low byte first; a tail shorter
    /// than 4 still consumes a whole `nextInt` and uses its low bytes.
    pub fn next_bytes(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(4) {
            let rnd = self.next_int().to_le_bytes();
            chunk.copy_from_slice(&rnd[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Java's bytes are signed; the expected values below were printed by JDK 17 as
    /// `java.util.Arrays.toString(byte[])`, so convert them the same way.
    fn signed(b: &[u8]) -> Vec<i8> {
        b.iter().map(|&x| x as i8).collect()
    }

    // Reference: java.util.Random (JDK 17), `new Random(42)`: nextInt() twice printed
    // -1170105035 and 234785527; nextBytes(new byte[5]) printed [53, -99, 65, -70, -9].
    #[test]
    fn java_random_matches_jdk() {
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_int(), -1_170_105_035);
        assert_eq!(r.next_int(), 234_785_527);
        let mut b = [0u8; 5];
        JavaRandom::new(42).next_bytes(&mut b);
        assert_eq!(signed(&b), [53, -99, 65, -70, -9]);
    }

    // Reference: ZooKeeperServer.generatePasswd. Expected values printed by JDK 17:
    // `new java.util.Random(id ^ 0xB3415C00L).nextBytes(new byte[16])`.
    #[test]
    fn password_matches_zookeeper() {
        assert_eq!(
            signed(&password(0x1234)),
            [60, 24, -85, -32, 91, 14, 97, -126, 116, 29, 98, 93, 18, 124, 21, -80]
        );
        assert_eq!(
            password(0x1234),
            [
                0x3c, 0x18, 0xab, 0xe0, 0x5b, 0x0e, 0x61, 0x82, 0x74, 0x1d, 0x62, 0x5d, 0x12, 0x7c,
                0x15, 0xb0
            ]
        );
        // A realistic id: server 1, issued at elapsed time 1_700_000_000_000 ms.
        assert_eq!(
            signed(&password(0x0100_018b_cfe5_6800)),
            [-117, 8, 70, -83, 36, -119, -5, 49, 40, -124, -85, -89, 109, 22, 78, 104]
        );
        // A negative id (server id >= 128).
        assert_eq!(
            signed(&password(0xff00_0000_0000_0001_u64 as i64)),
            [5, 76, -57, 74, 55, 50, 125, -78, 21, -25, 2, -30, 12, 115, -16, 5]
        );
    }

    // java.util.Random keeps only 48 bits of its seed, so ids equal in their low 48 bits
    // share a password (Java printed the same bytes for both); the top byte is the server id,
    // and the low bits differ between sessions of one server.
    #[test]
    fn only_the_low_48_bits_seed_the_password() {
        assert_eq!(
            password(0xff00_0000_0000_0001_u64 as i64),
            password(i64::MIN + 1)
        );
        assert_ne!(password(0x1234), password(0x1235));
    }

    #[test]
    fn check_password_accepts_only_the_exact_bytes() {
        let id = 0x0100_018b_cfe5_6800;
        let good = password(id);
        assert!(check_password(id, &good));
        assert!(!check_password(id + 1, &good));

        let mut wrong_byte = good;
        wrong_byte[7] ^= 1;
        assert!(!check_password(id, &wrong_byte));

        assert!(!check_password(id, &good[..15]));
        let mut longer = good.to_vec();
        longer.push(0);
        assert!(!check_password(id, &longer));
        assert!(!check_password(id, &[]));
    }

    #[test]
    fn session_zero_never_matches() {
        assert!(!check_password(0, &password(0)));
    }
}

//! Adler-32, the checksum of ZooKeeper's txn records and snapshot seals
//! (`java.util.zip.Adler32`).

const MOD: u32 = 65_521;
/// Largest run of bytes before the sums must be reduced to avoid overflow.
const NMAX: usize = 5552;

/// A running Adler-32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        for chunk in data.chunks(NMAX) {
            for &x in chunk {
                self.a += u32::from(x);
                self.b += self.a;
            }
            self.a %= MOD;
            self.b %= MOD;
        }
    }

    /// The checksum so far.
    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }
}

/// Adler-32 of one buffer.
pub fn adler32(data: &[u8]) -> u32 {
    let mut a = Adler32::default();
    a.update(data);
    a.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let big = vec![0xffu8; 100_000];
        let mut a = Adler32::default();
        a.update(&big[..7]);
        a.update(&big[7..]);
        assert_eq!(a.value(), adler32(&big));
    }
}

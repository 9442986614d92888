//! A small, fast, reproducible random generator for the randomised tests (xorshift64*): a
//! fixed seed makes every failure reproduce.

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Masking keys for a test's client endpoint from a fixed seed: the same bytes on every run.
/// Real clients take theirs from the OS ([`crate::client::os_mask_keys`]).
pub(crate) fn mask_keys(seed: u64) -> crate::protocol::outbound::MaskKeys {
    let mut rng = Rng(seed);
    crate::protocol::outbound::MaskKeys::new(move || (rng.next() as u32).to_be_bytes())
}

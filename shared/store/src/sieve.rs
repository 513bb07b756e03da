//! Which addresses a first sync may claim more than once.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

/// Bits of the filter: 4 MB, about 1% false positives at 3.5 M addresses
/// (a million users).
const BITS: usize = 1 << 25;
/// Hashes per address.
const HASHES: u64 = 4;
/// Past this many flagged addresses, naming them costs more than finding
/// the repeated ones among all the claims.
const MAX_FLAGGED: usize = 1 << 20;

/// A Bloom filter over the addresses a first sync claims: an address seen
/// before is flagged, as are a few that were not (false positives), never
/// one seen twice that is not. Its owners are then worked out for the
/// flagged addresses only, not by grouping every claim of the account.
#[derive(Default)]
pub(crate) struct AddressSieve {
    bits: Vec<u64>,
    flagged: usize,
}

impl AddressSieve {
    /// Notes `address`; true when it may have been noted before, and
    /// always once [`Self::overflowed`].
    pub(crate) fn seen_before(&mut self, address: &str) -> bool {
        if self.overflowed() {
            return true;
        }
        if self.bits.is_empty() {
            self.bits = vec![0; BITS / 64];
        }
        let mut hasher = SipHasher13::new_with_keys(0x6469_7273, 0x796e_6321);
        hasher.write(address.as_bytes());
        let h = hasher.finish();
        let (h1, h2) = (h & 0xffff_ffff, (h >> 32) | 1);
        let mut seen = true;
        for i in 0..HASHES {
            let bit = (h1.wrapping_add(i.wrapping_mul(h2)) as usize) % BITS;
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            seen &= self.bits[word] & mask != 0;
            self.bits[word] |= mask;
        }
        if seen {
            self.flagged += 1;
        }
        seen
    }

    /// Too many flagged to be worth naming them.
    pub(crate) fn overflowed(&self) -> bool {
        self.flagged > MAX_FLAGGED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_seen_twice_is_always_flagged_and_few_others_are() {
        let mut sieve = AddressSieve::default();
        let n = 200_000;
        let flagged = (0..n)
            .filter(|i| sieve.seen_before(&format!("user{i}@example.com")))
            .count();
        assert!(flagged < n / 1000, "{flagged} false positives of {n}");
        for i in (0..n).step_by(997) {
            assert!(sieve.seen_before(&format!("user{i}@example.com")));
        }
        assert!(!sieve.overflowed());
    }

    #[test]
    fn past_its_bound_everything_is_flagged() {
        let mut sieve = AddressSieve {
            flagged: MAX_FLAGGED + 1,
            ..Default::default()
        };
        assert!(sieve.overflowed());
        assert!(sieve.seen_before("never@example.com"));
    }
}

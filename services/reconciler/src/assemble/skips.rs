//! Which staged entries the second planning pass leaves out.

use std::ops::Range;

/// Where each staged entry is (in staged order, parts of large groups
/// included) and which of them the second planning pass leaves out: the
/// first pass finds both out.
#[derive(Default, Clone)]
pub(crate) struct Skips {
    /// Bit `n`: the `n`-th staged entry is left out.
    bits: Vec<u64>,
    /// The position of each batch's first entry, by sequence, then the
    /// number of entries.
    starts: Vec<u64>,
    /// Set when the batches could not all be placed: nothing is left out.
    unplaced: bool,
}

impl Skips {
    pub(crate) fn leave_out(&mut self, positions: Range<u64>) {
        for n in positions {
            let (word, bit) = ((n / 64) as usize, n % 64);
            if self.bits.len() <= word {
                self.bits.resize(word + 1, 0);
            }
            self.bits[word] |= 1 << bit;
        }
    }

    pub(crate) fn left_out(&self, n: u64) -> bool {
        !self.unplaced
            && self
                .bits
                .get((n / 64) as usize)
                .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    /// The second pass reads every entry.
    pub(crate) fn read_all(&mut self) {
        self.bits = Vec::new();
    }

    pub(crate) fn broken(&mut self) {
        self.unplaced = true;
    }

    /// Where batch `sequence`'s entries start. The first pass places the
    /// batches, which come in sequence order from 0 (were one missing,
    /// nothing would be left out); `None` for a batch it did not place.
    pub(crate) fn batch(&mut self, sequence: u32, entries: usize, first_pass: bool) -> Option<u64> {
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        let placed = self.starts.len() - 1;
        let last = self.starts[placed];
        if first_pass {
            if sequence as usize != placed {
                self.unplaced = true;
            }
            self.starts.push(last + entries as u64);
            return Some(last);
        }
        if self.unplaced {
            return Some(0); // nothing is left out: positions do not matter
        }
        self.starts
            .get(sequence as usize)
            .copied()
            .filter(|_| (sequence as usize) < placed)
    }

    /// The first sequence from `from` on that holds an entry to read; in
    /// the first pass, `from`. `None` when no batch after `from` does.
    pub(crate) fn next_to_read(&self, from: u32, first_pass: bool) -> Option<u32> {
        if first_pass || self.unplaced {
            return Some(from);
        }
        let batches = self.starts.len().saturating_sub(1);
        (from as usize..batches)
            .find(|&b| (self.starts[b]..self.starts[b + 1]).any(|n| !self.left_out(n)))
            .map(|b| b as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::Skips;

    #[test]
    fn skips_place_batches_and_read_only_those_with_entries_to_read() {
        let mut skips = Skips::default();
        // Three batches of 3, 2 and 4 entries.
        assert_eq!(skips.batch(0, 3, true), Some(0));
        assert_eq!(skips.batch(1, 2, true), Some(3));
        assert_eq!(skips.batch(2, 4, true), Some(5));
        skips.leave_out(0..3);
        skips.leave_out(3..4);
        skips.leave_out(6..9);
        assert_eq!(skips.batch(1, 2, false), Some(3));
        assert_eq!(skips.batch(3, 1, false), None, "never placed");
        assert!(skips.left_out(2) && !skips.left_out(4) && !skips.left_out(5));
        // Batch 0 is all left out: the second pass starts at batch 1.
        assert_eq!(skips.next_to_read(0, false), Some(1));
        assert_eq!(skips.next_to_read(2, false), Some(2));
        skips.leave_out(4..6);
        assert_eq!(skips.next_to_read(0, false), None);
        // A run the planner does not allow to leave entries out.
        skips.read_all();
        assert_eq!(skips.next_to_read(0, false), Some(0));
        assert!(!skips.left_out(2));

        // Batches out of order are not placed: nothing is left out.
        let mut skips = Skips::default();
        assert_eq!(skips.batch(1, 3, true), Some(0));
        skips.leave_out(0..3);
        assert!(!skips.left_out(1));
        assert_eq!(skips.next_to_read(0, false), Some(0));
    }
}

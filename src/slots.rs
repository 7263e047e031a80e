//! An entry of a hash table that indexes a slab: the slot's number and 32 bits of its key's
//! hash, 8 bytes a bucket. The decision cache and the session table index
//! their slabs this way: a table grows by rehashing these entries without reading the slab (a
//! cache miss per entry at a million sessions), and a lookup compares the stored bits before it
//! reads a slot. Keys are compared in the slab, so two keys sharing 32 bits only cost a look.

/// A slot number with 32 bits of its key's hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) slot: u32,
    hash: u32,
}

impl Slot {
    /// `hash` must come from [`spread`] (its low half is kept).
    pub(crate) fn new(slot: u32, hash: u64) -> Slot {
        Slot {
            slot,
            hash: hash as u32,
        }
    }

    /// The hash the table filed the slot under.
    pub(crate) fn hash(&self) -> u64 {
        spread(self.hash)
    }

    /// Whether the key has hash `hash` (a cheap test before reading the slab).
    pub(crate) fn has_hash(&self, hash: u64) -> bool {
        self.hash == hash as u32
    }
}

/// A table hash made of 32 kept bits of a keyed hash, so a [`Slot`] holds it in 4 bytes:
/// hashbrown picks the bucket from the low bits and its 7-bit tag from the top ones, both then
/// from the keyed 32 bits (independent bits up to 2^25 buckets, 16 times the default bounds).
pub(crate) fn spread(half: u32) -> u64 {
    (u64::from(half) << 32) | u64::from(half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_eight_bytes_and_keeps_its_hash() {
        assert_eq!(std::mem::size_of::<Slot>(), 8);
        let h = spread(0xdead_beef);
        let s = Slot::new(7, h);
        assert_eq!((s.slot, s.hash()), (7, h));
        assert!(s.has_hash(h) && !s.has_hash(spread(0xdead_beee)));
    }
}

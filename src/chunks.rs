//! A vector that grows a chunk at a time and never moves what it holds. The decision cache and the
//! session table keep their slots in one: a `Vec` doubling to a million
//! slots copies every slot it holds into memory the kernel must first clear, on the request that
//! happens to grow it and under its lock; here growing allocates one more chunk of
//! [`CHUNK`] slots and touches only the slots put in it.

use std::ops::{Index, IndexMut};

/// Slots a chunk holds (a power of two: an index splits into chunk and offset by bits).
const CHUNK_BITS: u32 = 10;
pub(crate) const CHUNK: usize = 1 << CHUNK_BITS;

pub(crate) struct Chunks<T> {
    /// Every chunk but the last holds [`CHUNK`] items; none ever reallocates.
    chunks: Vec<Vec<T>>,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks { chunks: Vec::new() }
    }
}

impl<T> Chunks<T> {
    pub(crate) fn len(&self) -> usize {
        self.chunks
            .last()
            .map_or(0, |last| (self.chunks.len() - 1) * CHUNK + last.len())
    }

    /// Appends `value`; its index is the old [`len`](Self::len).
    pub(crate) fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }
}

/// Like a `Vec`'s: an index at or past [`Chunks::len`] panics (callers index only slots they hold).
impl<T> Index<usize> for Chunks<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<T> IndexMut<usize> for Chunks<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_their_index_and_address_as_it_grows() {
        let mut c = Chunks::default();
        c.push(0usize);
        let first: *const usize = &c[0];
        for i in 1..3 * CHUNK + 5 {
            c.push(i);
        }
        assert_eq!(c.len(), 3 * CHUNK + 5);
        assert!(std::ptr::eq(first, &c[0]), "the first item moved");
        for i in [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK + 7, 3 * CHUNK + 4] {
            assert_eq!(c.get(i), Some(&i));
        }
        assert_eq!(c.get(3 * CHUNK + 5), None);
        *c.get_mut(CHUNK).unwrap() = 42;
        c[CHUNK + 1] = 43;
        assert_eq!((c[CHUNK], c[CHUNK + 1]), (42, 43));
    }
}

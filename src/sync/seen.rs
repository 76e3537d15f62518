//! The keys an import has met, with the line of each, to reject a repeated id with
//! "also on line N". A million keys must not cost a million allocations: the keys sit
//! end to end in fixed-size blocks and the table holds only (position, line), eight
//! bytes, so a key costs its length plus about 20 bytes.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

/// Bytes per arena block (2^20); a key never straddles two. A position is the block's
/// index in the high 12 bits and the offset in the low 20: 4 GiB of keys in all.
const BLOCK_BITS: u32 = 20;
const BLOCK: usize = 1 << BLOCK_BITS;
const MAX_BLOCKS: usize = 1 << (32 - BLOCK_BITS);

pub struct Seen {
    blocks: Vec<Vec<u8>>,
    /// (where the key starts in `blocks`, its line).
    table: HashTable<(u32, u32)>,
    hasher: RandomState,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            blocks: Vec::new(),
            table: HashTable::new(),
            hasher: RandomState::new(),
        }
    }
}

impl Seen {
    /// Records the key made of `parts` (which must not contain NUL) as met on `line`;
    /// returns the line it was first met on if it was met before.
    pub fn insert(&mut self, parts: &[&str], line: u64) -> Result<Option<u64>, String> {
        // Parts separated by NUL and closed by 0xFF, a byte UTF-8 never uses.
        let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push(0);
            }
            key.extend_from_slice(part.as_bytes());
        }
        key.push(END);
        let hash = self.hasher.hash_one(&key);
        let blocks = &self.blocks;
        if let Some(&(_, first)) = self
            .table
            .find(hash, |&(at, _)| stored(blocks, at) == key.as_slice())
        {
            return Ok(Some(u64::from(first)));
        }
        let at = self.store(&key)?;
        let (blocks, hasher) = (&self.blocks, &self.hasher);
        // Lines past 4 billion are reported as the last one a u32 holds.
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        self.table.insert_unique(hash, (at, line), |&(at, _)| {
            hasher.hash_one(stored(blocks, at))
        });
        Ok(None)
    }

    fn store(&mut self, key: &[u8]) -> Result<u32, String> {
        let fits = self
            .blocks
            .last()
            .is_some_and(|b| b.capacity() - b.len() >= key.len());
        if !fits {
            if self.blocks.len() == MAX_BLOCKS {
                return Err("more than 4 GiB of distinct ids in one file".into());
            }
            // A key longer than a block gets a block of its own, at offset 0.
            self.blocks.push(Vec::with_capacity(BLOCK.max(key.len())));
        }
        let index = self.blocks.len() - 1;
        let block = &mut self.blocks[index];
        let at = ((index as u32) << BLOCK_BITS) | block.len() as u32;
        block.extend_from_slice(key);
        Ok(at)
    }
}

const END: u8 = 0xFF;

/// The key stored at `at`, with its closing byte.
fn stored(blocks: &[Vec<u8>], at: u32) -> &[u8] {
    let block = &blocks[(at >> BLOCK_BITS) as usize];
    let rest = &block[(at & (BLOCK as u32 - 1)) as usize..];
    let end = rest
        .iter()
        .position(|&b| b == END)
        .map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_line_of_a_repeated_key() {
        let mut seen = Seen::default();
        assert_eq!(seen.insert(&["C-1"], 2), Ok(None));
        assert_eq!(seen.insert(&["C-1", "E-1"], 3), Ok(None));
        assert_eq!(seen.insert(&["C-1E-1"], 4), Ok(None));
        assert_eq!(seen.insert(&["C-1"], 5), Ok(Some(2)));
        assert_eq!(seen.insert(&["C-1", "E-1"], 6), Ok(Some(3)));
        for n in 0..100_000u64 {
            assert_eq!(seen.insert(&[&format!("K-{n}")], n + 10), Ok(None));
        }
        assert_eq!(seen.insert(&["K-99999"], 1), Ok(Some(100_009)));
        assert_eq!(seen.insert(&["C-1E-1"], 7), Ok(Some(4)));
    }
}

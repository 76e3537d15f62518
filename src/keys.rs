//! A compact table of string keys with a `u32` each: the ids an import has met, with
//! the line of each (to reject a repeated id with "also on line N"), and the contacts an
//! events import looks up. A million keys must not cost a million allocations: the keys
//! sit end to end in fixed-size blocks, each followed by its value, and the table holds
//! only the position, four bytes, so a key costs its length plus about 14 bytes.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

use hashbrown::HashTable;

/// Bytes per arena block (2^20); a key never straddles two. A position is the block's
/// index in the high 12 bits and the offset in the low 20: 4 GiB of keys in all.
const BLOCK_BITS: u32 = 20;
const BLOCK: usize = 1 << BLOCK_BITS;
const MAX_BLOCKS: usize = 1 << (32 - BLOCK_BITS);

pub struct KeyTable {
    blocks: Vec<Vec<u8>>,
    /// Where each key starts in `blocks` (its value follows its closing byte).
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// The key being looked up, joined here to spare an allocation per lookup.
    scratch: Vec<u8>,
}

impl Default for KeyTable {
    fn default() -> KeyTable {
        KeyTable {
            blocks: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            scratch: Vec::new(),
        }
    }
}

impl KeyTable {
    /// A table with room for `keys` keys of about `key_len` bytes each.
    pub fn with_capacity(keys: usize, key_len: usize) -> KeyTable {
        let mut table = KeyTable::default();
        table.table.reserve(keys, |_| 0);
        table
            .blocks
            .reserve(keys * (key_len + 1 + VALUE) / BLOCK + 1);
        table
    }

    /// Adds the key made of `parts` (which must not contain NUL) with `value`; if the
    /// key is there already, leaves it and returns its value.
    pub fn insert(&mut self, parts: &[&str], value: u32) -> Result<Option<u32>, String> {
        let key = self.join(parts);
        let hash = self.hasher.hash_one(&key);
        let blocks = &self.blocks;
        if let Some(&at) = self
            .table
            .find(hash, |&at| stored(blocks, at) == key.as_slice())
        {
            self.scratch = key;
            return Ok(Some(value_at(blocks, at, key_len(blocks, at))));
        }
        let at = self.store(&key, value);
        self.scratch = key;
        let (blocks, hasher) = (&self.blocks, &self.hasher);
        self.table
            .insert_unique(hash, at?, |&at| hasher.hash_one(stored(blocks, at)));
        Ok(None)
    }

    /// The value of the key made of `parts`.
    pub fn get(&mut self, parts: &[&str]) -> Option<u32> {
        let (at, len) = self.find(parts)?;
        Some(value_at(&self.blocks, at, len))
    }

    /// Where the key made of `parts` starts, and its length with the closing byte.
    fn find(&mut self, parts: &[&str]) -> Option<(u32, usize)> {
        let key = self.join(parts);
        let hash = self.hasher.hash_one(&key);
        let blocks = &self.blocks;
        let found = self
            .table
            .find(hash, |&at| stored(blocks, at) == key.as_slice())
            .map(|&at| (at, key.len()));
        self.scratch = key;
        found
    }

    /// The parts separated by NUL and closed by 0xFF, a byte UTF-8 never uses, in the
    /// scratch buffer (taken; give it back when done).
    fn join(&mut self, parts: &[&str]) -> Vec<u8> {
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push(0);
            }
            key.extend_from_slice(part.as_bytes());
        }
        key.push(END);
        key
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }

    fn store(&mut self, key: &[u8], value: u32) -> Result<u32, String> {
        let size = key.len() + VALUE;
        let fits = self
            .blocks
            .last()
            .is_some_and(|b| b.capacity() - b.len() >= size);
        if !fits {
            if self.blocks.len() == MAX_BLOCKS {
                return Err("more than 4 GiB of distinct ids in one file".into());
            }
            // A key longer than a block gets a block of its own, at offset 0.
            self.blocks.push(Vec::with_capacity(BLOCK.max(size)));
        }
        let index = self.blocks.len() - 1;
        let block = &mut self.blocks[index];
        let at = ((index as u32) << BLOCK_BITS) | block.len() as u32;
        block.extend_from_slice(key);
        block.extend_from_slice(&value.to_le_bytes());
        Ok(at)
    }
}

const END: u8 = 0xFF;
/// Bytes of a value, after its key.
const VALUE: usize = 4;

/// The length of the key stored at `at`, with its closing byte.
fn key_len(blocks: &[Vec<u8>], at: u32) -> usize {
    stored(blocks, at).len()
}

/// The value after the key of `len` bytes stored at `at`.
fn value_at(blocks: &[Vec<u8>], at: u32, len: usize) -> u32 {
    let block = &blocks[(at >> BLOCK_BITS) as usize];
    let start = (at & (BLOCK as u32 - 1)) as usize + len;
    let mut bytes = [0; VALUE];
    bytes.copy_from_slice(&block[start..start + VALUE]);
    u32::from_le_bytes(bytes)
}

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
    fn keeps_the_first_value_of_a_repeated_key() {
        let mut keys = KeyTable::default();
        assert_eq!(keys.insert(&["C-1"], 2), Ok(None));
        assert_eq!(keys.insert(&["C-1", "E-1"], 3), Ok(None));
        assert_eq!(keys.insert(&["C-1E-1"], 4), Ok(None));
        assert_eq!(keys.insert(&["C-1"], 5), Ok(Some(2)));
        assert_eq!(keys.insert(&["C-1", "E-1"], 6), Ok(Some(3)));
        for n in 0..100_000u32 {
            assert_eq!(keys.insert(&[&format!("K-{n}")], n + 10), Ok(None));
        }
        assert_eq!(keys.insert(&["K-99999"], 1), Ok(Some(100_009)));
        assert_eq!(keys.insert(&["C-1E-1"], 7), Ok(Some(4)));
        assert_eq!(keys.len(), 100_003);
    }
}

//! Routes found by name without a second copy of each name: the index holds positions in a
//! list (the table's spec) and compares against the names there. A table swap at 10 000
//! routes would otherwise copy, hash into a map of its own and later free 10 000 names.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

/// Positions in a list of named things, found by name.
#[derive(Debug, Default)]
pub struct NameIndex {
    /// foldhash, seeded per process.
    hasher: DefaultHashBuilder,
    positions: HashTable<u32>,
}

impl NameIndex {
    /// An empty index with room for `n` names.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            hasher: DefaultHashBuilder::default(),
            positions: HashTable::with_capacity(n),
        }
    }

    /// Adds position `at`, named `name_of(at)`. False, and nothing added, when a position
    /// with that name is there already.
    pub fn insert<'a>(&mut self, at: usize, name_of: impl Fn(usize) -> &'a str) -> bool {
        let Ok(at32) = u32::try_from(at) else {
            return false;
        };
        let name = name_of(at);
        let hash = self.hasher.hash_one(name);
        if self
            .positions
            .find(hash, |&p| name_of(p as usize) == name)
            .is_some()
        {
            return false;
        }
        let hasher = &self.hasher;
        self.positions
            .insert_unique(hash, at32, |&p| hasher.hash_one(name_of(p as usize)));
        true
    }

    /// The position named `name`.
    pub fn find<'a>(&self, name: &str, name_of: impl Fn(usize) -> &'a str) -> Option<usize> {
        self.positions
            .find(self.hasher.hash_one(name), |&p| name_of(p as usize) == name)
            .map(|&p| p as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_found_at_its_position_and_a_second_one_is_refused() {
        let names: Vec<String> = (0..1_000).map(|i| format!("route-{i}")).collect();
        let name_of = |i: usize| names[i].as_str();
        let mut index = NameIndex::with_capacity(4);
        for i in 0..names.len() {
            assert!(index.insert(i, name_of));
        }
        for (i, n) in names.iter().enumerate() {
            assert_eq!(index.find(n, name_of), Some(i));
        }
        assert_eq!(index.find("route-1000", name_of), None);
        assert_eq!(index.find("", name_of), None);
        // the same name at another position: refused, the first one kept
        let mut twice = names.clone();
        twice.push("route-7".into());
        let name_of = |i: usize| twice[i].as_str();
        assert!(!index.insert(1_000, name_of));
        assert_eq!(index.find("route-7", name_of), Some(7));
    }
}

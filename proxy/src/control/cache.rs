//! The last good table on disk, for a proxy that starts while its controller cannot be
//! reached. Every table applied is written, so each write must cost little: two slot files
//! are overwritten in turn, in place, and synced (`fdatasync`). No file is created, renamed
//! or truncated after the first two writes, so a write changes no directory and, once the
//! files have their size, no inode, and the filesystem's journal is not touched. A slot
//! holds a header (a sequence number, the length and a hash of the table) and the table; a
//! slot torn by a crash fails its hash, and the other slot, untouched by that write, holds
//! the table before. The newest whole slot is read.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::config::parse_json;
use sluice_api::protocol::Snapshot;

const SLOTS: [&str; 2] = ["table.0", "table.1"];
/// What the cache was before slots: one file replaced by a rename. Read when no slot holds a
/// table, so that a proxy upgraded while its controller is away still starts from it.
const OLDER_FILE: &str = "table.json";
const MAGIC: &[u8; 8] = b"sluicetb";
const HEADER: usize = 32;

/// The cache in a directory, ready to write.
#[derive(Debug)]
pub struct TableCache {
    dir: PathBuf,
    /// The slot files, opened on their first write.
    files: [Option<File>; 2],
    /// The sequence number of the newest slot written (0: none).
    newest: u64,
    /// Which slot holds it.
    newest_slot: usize,
}

impl TableCache {
    /// The cache in `dir`, continuing after the newest slot already there.
    pub fn open(dir: &Path) -> Self {
        let (newest, newest_slot) = (0..SLOTS.len())
            .filter_map(|i| read_slot(&dir.join(SLOTS[i])).map(|(seq, _)| (seq, i)))
            .max()
            .unwrap_or((0, 1));
        Self {
            dir: dir.to_owned(),
            files: [None, None],
            newest,
            newest_slot,
        }
    }

    /// Writes `snapshot` over the older slot and syncs it; the newer slot is left whole until
    /// this write is done.
    pub fn write(&mut self, snapshot: &Snapshot) -> std::io::Result<()> {
        let table = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
        let slot = 1 - self.newest_slot;
        let seq = self.newest + 1;
        let file = match &mut self.files[slot] {
            Some(f) => f,
            empty => {
                std::fs::create_dir_all(&self.dir)?;
                let path = self.dir.join(SLOTS[slot]);
                let created = !path.exists();
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)?;
                if created {
                    // the new name is durable once its directory is
                    File::open(&self.dir)?.sync_all()?;
                }
                empty.insert(f)
            }
        };
        file.write_all_at(&slot_bytes(seq, &table), 0)?;
        file.sync_data()?;
        self.newest = seq;
        self.newest_slot = slot;
        Ok(())
    }
}

/// A slot's bytes: the header, then the table.
fn slot_bytes(seq: u64, table: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + table.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&(table.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&xxh3_64(table).to_le_bytes());
    bytes.extend_from_slice(table);
    bytes
}

/// A slot's sequence number and table, when it is whole (anything after the table is left
/// from a longer one written before).
fn parse_slot(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let header = bytes.get(..HEADER)?;
    let word = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap_or_default());
    if &header[..8] != MAGIC {
        return None;
    }
    let (seq, len, hash) = (word(8), word(16), word(24));
    let table = bytes.get(HEADER..HEADER.checked_add(usize::try_from(len).ok()?)?)?;
    (xxh3_64(table) == hash).then_some((seq, table))
}

fn read_slot(path: &Path) -> Option<(u64, Vec<u8>)> {
    let bytes = std::fs::read(path).ok()?;
    parse_slot(&bytes).map(|(seq, table)| (seq, table.to_vec()))
}

/// The newest table in `dir`: the newest whole slot, else the older single file; `None` when
/// there is neither.
pub fn read(dir: &Path) -> Result<Option<Snapshot>, String> {
    let newest = SLOTS
        .iter()
        .filter_map(|name| read_slot(&dir.join(name)))
        .max_by_key(|(seq, _)| *seq);
    if let Some((_, table)) = newest {
        return parse_json(&table).map(Some).map_err(|e| e.to_string());
    }
    match std::fs::read(dir.join(OLDER_FILE)) {
        Ok(bytes) => parse_json(&bytes).map(Some).map_err(|e| e.to_string()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(generation: u64) -> Snapshot {
        Snapshot {
            generation,
            table: Default::default(),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_newest_table_written_is_read_in_this_process_and_the_next() {
        let d = dir("cache-newest");
        assert_eq!(read(&d).unwrap(), None);
        let mut c = TableCache::open(&d);
        for g in 1..=5 {
            c.write(&snapshot(g)).unwrap();
            assert_eq!(read(&d).unwrap(), Some(snapshot(g)));
        }
        // a proxy started again continues after the newest slot, whatever the generations
        let mut again = TableCache::open(&d);
        again.write(&snapshot(2)).unwrap();
        assert_eq!(
            read(&d).unwrap(),
            Some(snapshot(2)),
            "newest written, not highest"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_torn_slot_leaves_the_table_before_it() {
        let d = dir("cache-torn");
        let mut c = TableCache::open(&d);
        c.write(&snapshot(1)).unwrap();
        c.write(&snapshot(2)).unwrap();
        // the newer slot (the second written) loses its last byte, then a byte in the middle
        let newer = d.join(SLOTS[1]);
        let whole = std::fs::read(&newer).unwrap();
        std::fs::write(&newer, &whole[..whole.len() - 1]).unwrap();
        assert_eq!(read(&d).unwrap(), Some(snapshot(1)));
        let mut flipped = whole.clone();
        flipped[HEADER + 2] ^= 1;
        std::fs::write(&newer, &flipped).unwrap();
        assert_eq!(read(&d).unwrap(), Some(snapshot(1)));
        // the next write goes over the torn slot, not over the whole one
        let mut again = TableCache::open(&d);
        again.write(&snapshot(3)).unwrap();
        assert_eq!(read(&d).unwrap(), Some(snapshot(3)));
        assert_eq!(
            read_slot(&d.join(SLOTS[0])).map(|(seq, _)| seq),
            Some(1),
            "the whole slot was kept"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_shorter_table_over_a_longer_one_reads_whole() {
        let d = dir("cache-shorter");
        let mut c = TableCache::open(&d);
        let mut long = snapshot(1);
        long.table.backends = (0..50)
            .map(|i| sluice_api::table::BackendSpec {
                name: format!("b{i}"),
                revision: None,
                endpoints: vec!["127.0.0.1:1".into()],
                protocol: Default::default(),
                health_check: None,
                tls: None,
            })
            .collect();
        c.write(&long).unwrap();
        c.write(&snapshot(2)).unwrap();
        c.write(&snapshot(3)).unwrap();
        assert_eq!(read(&d).unwrap(), Some(snapshot(3)));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn slots_that_are_not_whole_are_not_read() {
        let table = br#"{"generation":1}"#;
        let good = slot_bytes(4, table);
        assert_eq!(parse_slot(&good), Some((4, &table[..])));
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"left over");
        assert_eq!(parse_slot(&trailing), Some((4, &table[..])));
        assert_eq!(parse_slot(&good[..HEADER - 1]), None, "short header");
        assert_eq!(parse_slot(&good[..good.len() - 1]), None, "short table");
        let mut other = good.clone();
        other[0] = b'X';
        assert_eq!(parse_slot(&other), None, "not a slot");
        let mut huge = good.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse_slot(&huge), None, "a length past the end");
    }

    #[test]
    fn the_older_single_file_is_read_when_no_slot_is_whole() {
        let d = dir("cache-older");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(OLDER_FILE),
            serde_json::to_vec(&snapshot(9)).unwrap(),
        )
        .unwrap();
        assert_eq!(read(&d).unwrap(), Some(snapshot(9)));
        TableCache::open(&d).write(&snapshot(10)).unwrap();
        assert_eq!(read(&d).unwrap(), Some(snapshot(10)), "a slot comes first");
        std::fs::write(d.join(OLDER_FILE), b"{").unwrap();
        std::fs::remove_file(d.join(SLOTS[0])).unwrap();
        std::fs::remove_file(d.join(SLOTS[1])).unwrap_or(());
        assert!(read(&d).is_err(), "an unreadable table says so");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

//! The ids of imported rows.
//!
//! SQLite rows have integer rowids; PostgreSQL keys are UUIDs. An imported row's id is a UUIDv8 (RFC 9562's
//! layout for application-defined ids) made of the batch's 48-bit tag, a 4-bit table code and the source
//! rowid:
//!
//! ```text
//! bytes 0-5  batch tag            byte 6  0x8 (version) | table code
//! byte 7     0                    bytes 8-15  variant bits 10 + the 62-bit rowid
//! ```
//!
//! So the same file imported as the same batch always gets the same ids, and all rows of one batch in one
//! table form one primary-key range: rollback is `DELETE … WHERE id BETWEEN lo AND hi` and verification
//! reads the same range. Ids the application makes are v4 or v7, whose version nibble is never 8, so no
//! such id can fall inside a batch's range.

use uuid::Uuid;

/// A batch's tag: the first 48 bits of its id.
pub fn tag_of(batch: Uuid) -> u64 {
    let b = batch.as_bytes();
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

fn build(tag: u64, table: u8, high: u8, low: u64) -> Uuid {
    let t = tag.to_be_bytes();
    let l = low.to_be_bytes();
    Uuid::from_bytes([
        t[2],
        t[3],
        t[4],
        t[5],
        t[6],
        t[7],
        0x80 | (table & 0x0f),
        0,
        0x80 | (high & 0x3f),
        l[1],
        l[2],
        l[3],
        l[4],
        l[5],
        l[6],
        l[7],
    ])
}

/// The id of source row `rowid` (≥ 0) of table `code` in batch `tag`.
pub fn row_id(tag: u64, code: u8, rowid: i64) -> Uuid {
    let rowid = rowid as u64 & 0x3fff_ffff_ffff_ffff;
    build(
        tag,
        code,
        (rowid >> 56) as u8,
        rowid & 0x00ff_ffff_ffff_ffff,
    )
}

/// The smallest and largest id of table `code` in batch `tag`.
pub fn range(tag: u64, code: u8) -> (Uuid, Uuid) {
    (
        build(tag, code, 0, 0),
        build(tag, code, 0x3f, 0x00ff_ffff_ffff_ffff),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v8_inside_their_batch_and_table_range_only() {
        let tag = 0x1234_5678_9abc;
        let id = row_id(tag, 3, 42);
        assert_eq!(id.get_version_num(), 8);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let (lo, hi) = range(tag, 3);
        assert!(lo <= id && id <= hi);
        assert!(lo <= row_id(tag, 3, i64::MAX) && row_id(tag, 3, i64::MAX) <= hi);
        let (lo2, hi2) = range(tag, 4);
        assert!(!(lo2 <= id && id <= hi2));
        let (lo_other, hi_other) = range(tag + 1, 3);
        assert!(!(lo_other <= id && id <= hi_other));
        assert_ne!(row_id(tag, 3, 1), row_id(tag, 3, 2));
        for _ in 0..100 {
            let v4 = Uuid::new_v4();
            assert!(!(lo <= v4 && v4 <= hi) || v4.get_version_num() == 8);
        }
    }

    #[test]
    fn the_tag_is_the_first_48_bits_of_the_batch_id() {
        let batch = Uuid::from_u128(0xabcd_ef01_2345_6789_0000_0000_0000_0000);
        assert_eq!(tag_of(batch), 0xabcd_ef01_2345);
    }
}

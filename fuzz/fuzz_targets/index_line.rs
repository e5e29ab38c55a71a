//! `IndexEntry::parse` on arbitrary bytes: the hand-written scanner agrees with serde_json, keeps
//! the raw bytes, and only accepts names and versions that make safe paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror_fuzz::{check_entry, fields, reference};
use mirror_index::{IndexEntry, LineErrorKind};

fuzz_target!(|line: &[u8]| {
    let ours = IndexEntry::parse(line);
    let theirs = reference(line);
    let show = || String::from_utf8_lossy(line);
    match ours {
        // What the scanner accepts, serde_json accepts too, with the same values.
        Ok(entry) => {
            assert_eq!(
                Some(fields(&entry)),
                theirs,
                "scanner accepts, serde_json differs: {:?}",
                show()
            );
            assert_eq!(entry.raw(), line, "raw bytes changed");
            check_entry(&entry);
        }
        // What serde_json accepts, the scanner accepts too, with one deliberate exception: it
        // refuses values nested deeper than 128 levels (it skips them recursively, and must not
        // overflow the stack), while serde_json skips unknown values without recursion and so
        // without a limit. Cargo would read such a line; we report it and skip it.
        Err(err) => {
            let too_deep =
                matches!(&err, LineErrorKind::Json(m) if m.starts_with("nesting too deep"));
            assert!(
                theirs.is_none() || too_deep,
                "serde_json accepts, scanner refuses ({err}): {:?}",
                show()
            );
        }
    }
});

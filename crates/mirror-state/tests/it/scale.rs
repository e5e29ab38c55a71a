//! 100k records through batches and one streaming pass (2.5M is measured by the `seed` example).

use mirror_state::{Batch, Counts};

use crate::{name, open, proof, vers};

#[test]
fn a_hundred_thousand_records_in_batches_then_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    const CRATES: usize = 10_000;
    const VERSIONS: usize = 10;
    let names: Vec<_> = (0..CRATES)
        .map(|i| name(&format!("crate-{i:05}")))
        .collect();
    let versions: Vec<_> = (0..VERSIONS).map(|i| vers(&format!("0.{i}.0"))).collect();
    let one_kb = proof(1, 1_000);
    for chunk in names.chunks(1_000) {
        let mut batch = Batch::new();
        for n in chunk {
            for v in &versions {
                batch.mark_verified(n, v, &one_kb);
            }
        }
        state.apply(batch).unwrap();
    }
    state.flush().unwrap();

    let mut seen = 0;
    let mut last = None;
    for item in state.iter() {
        let (n, v, r) = item.unwrap();
        assert!(r.is_verified());
        let key = (n, v.to_string());
        assert!(last.as_ref() < Some(&key));
        last = Some(key);
        seen += 1;
    }
    assert_eq!(seen, CRATES * VERSIONS);
    assert_eq!(
        state.counts().unwrap(),
        Counts {
            verified: 100_000,
            failed: 0,
            verified_bytes: 100_000_000
        }
    );
    assert_eq!(state.iter_crate(&names[1234]).count(), VERSIONS);
}

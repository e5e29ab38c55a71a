//! Seeds a state with N records (default 2.5M, crates.io scale) and times the bulk insert, a full
//! streaming pass, the counts scan and a reopen: `cargo run --release -p mirror-state --example
//! seed -- [N] [DIR]`. With N = 0 and an existing DIR it only measures reading, as a later sync
//! would. `CACHE_MB` sets the cache size, `FLUSH_EVERY` flushes after that many records.

#![allow(clippy::print_stdout, reason = "an example that reports timings")]
#![allow(
    clippy::unwrap_used,
    reason = "an example; any failure should just stop it"
)]

use std::time::Instant;

use mirror_core::{Checksum, CrateName, Version};
use mirror_state::{Batch, State, StateOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map_or(2_500_000, |n| n.parse().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .next()
        .map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let options = StateOptions {
        holder: "mirror-state seed example".into(),
        cache_bytes: std::env::var("CACHE_MB").map_or(StateOptions::default().cache_bytes, |mb| {
            mb.parse::<u64>().unwrap() << 20
        }),
    };

    // About ten versions per crate, like crates.io.
    let per_crate = 10;
    let versions: Vec<Version> = (0..per_crate)
        .map(|i| Version::new(&format!("0.{i}.{}", i * 3)).unwrap())
        .collect();
    let state = State::open(&dir, options.clone()).unwrap();
    let flush_every: usize =
        std::env::var("FLUSH_EVERY").map_or(usize::MAX, |n| n.parse().unwrap());
    let mut since_flush = 0;
    let start = Instant::now();
    let mut batch = Batch::new();
    for i in 0..total.div_ceil(per_crate) {
        let name = CrateName::new(&format!("crate-{i:07}-name")).unwrap();
        for vers in versions.iter().take(total - i * per_crate) {
            let mut cksum = [0u8; 32];
            cksum[..8].copy_from_slice(&(i as u64).to_le_bytes());
            batch.mark_verified(&name, vers, Checksum::from_bytes(cksum), 50_000);
        }
        if batch.len() >= 10_000 {
            since_flush += batch.len();
            state.apply(std::mem::take(&mut batch)).unwrap();
            if since_flush >= flush_every {
                state.flush().unwrap();
                since_flush = 0;
            }
        }
    }
    state.apply(batch).unwrap();
    let inserted = start.elapsed();
    println!("rss after insert: {}", rss());
    state.flush().unwrap();
    let flushed = start.elapsed();

    let start = Instant::now();
    let mut seen = 0usize;
    for item in state.iter() {
        let (_, _, record) = item.unwrap();
        seen += usize::from(record.is_verified());
    }
    let iterated = start.elapsed();
    println!("rss after iter: {}", rss());
    let start = Instant::now();
    let counts = state.counts().unwrap();
    let counted = start.elapsed();
    drop(state);

    let start = Instant::now();
    let state = State::open(&dir, options).unwrap();
    let reopened = start.elapsed();
    println!("rss after reopen: {}", rss());
    let start = Instant::now();
    let n = state.iter().count();
    println!(
        "iter after reopen: {:.2?} ({n}), rss {}",
        start.elapsed(),
        rss()
    );
    let start = Instant::now();
    let name = CrateName::new("crate-0000042-name").unwrap();
    let mut hits = 0;
    for _ in 0..100_000 {
        hits += usize::from(state.get(&name, &versions[3]).unwrap().is_some());
    }
    let gets = start.elapsed();

    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    println!("records:      {total}");
    println!("insert:       {inserted:.2?} (flushed {flushed:.2?})");
    println!("iter (all):   {iterated:.2?} ({seen} verified)");
    println!("counts:       {counted:.2?} ({counts:?})");
    println!("reopen:       {reopened:.2?}");
    println!("100k gets:    {gets:.2?} ({hits} hits)");
    println!("peak memory:  {}", hwm.trim_start_matches("VmHWM:").trim());
}

fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

//! How long raw sled 0.34 takes to open a store of 1,000 vs 100,000 records (three rows each, as
//! pdvault writes), with nothing of pdvault: the part of a vault's open that grows with its size.
//!
//! `cargo run --release --manifest-path compare/Cargo.toml --example sled_open`

use std::time::Instant;
fn main() {
    for n in [1_000usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new()
                .path(dir.path().join("s"))
                .open()
                .unwrap();
            for i in 0..n {
                db.insert((i as u64).to_be_bytes(), vec![1u8; 300]).unwrap();
                db.insert((i as u64 + (1 << 40)).to_be_bytes(), vec![2u8; 100])
                    .unwrap();
                db.insert((i as u64 + (1 << 41)).to_be_bytes(), vec![3u8; 20])
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let mut v = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let db = sled::Config::new()
                .path(dir.path().join("s"))
                .open()
                .unwrap();
            v.push(t.elapsed());
            drop(db);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        v.sort();
        println!("raw sled open, {n} records x3 rows: {:?}", v[2]);
    }
}

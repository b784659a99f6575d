//! Latency of one erasure, as a figure to compare builds by: 300 subjects of 20 records each in
//! one durable vault, each erased with `erase_subject`; prints the median and the 90th
//! percentile. Run it on two builds in turn (`cargo bench --bench erase_latency`, several rounds,
//! alternating) to compare them: the machine's load moves both alike.

use std::time::Instant;

use pdvault::{Category, KdfParams, Purpose, RecordMeta, RootSecret, SubjectId, Vault};

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let vault = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("erase-latency-passphrase"))
        .expect("a vault");
    let purpose = Purpose::new("service").expect("a purpose");
    let subjects: Vec<SubjectId> = (0..300)
        .map(|i| SubjectId::new(format!("s{i}@example.com")).expect("an identifier"))
        .collect();
    let payload = [7u8; 64];
    for chunk in subjects.chunks(50) {
        let mut items = Vec::new();
        for s in chunk {
            for _ in 0..20 {
                items.push((
                    s,
                    RecordMeta::new(Category::Contact).purpose(purpose.clone()),
                    &payload[..],
                ));
            }
        }
        vault.put_many(items).expect("put_many");
    }
    let mut ms: Vec<f64> = subjects
        .iter()
        .map(|s| {
            let t = Instant::now();
            vault.erase_subject(s).expect("erase_subject");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "erase_subject of a 20-record subject: median {:.3} ms, p90 {:.3} ms ({} erasures)",
        ms[ms.len() / 2],
        ms[ms.len() * 9 / 10],
        ms.len()
    );
}

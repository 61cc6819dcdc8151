//! The semantic tier's cost: one text of about 128 and 512 word pieces scored alone, and
//! eight 128-piece texts embedded in one batch (as the gateway's batcher runs them).

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use rampart_semantic::SemanticDetector;

fn text(words: usize) -> String {
    let base = "Please summarise the attached meeting notes and list the action items for each person, \
                then draft a short follow-up email to the team about the new deadline. ";
    base.split(' ').cycle().take(words).collect::<Vec<_>>().join(" ")
}

fn bench(c: &mut Criterion) {
    let Ok(d) = SemanticDetector::embedded() else {
        return;
    };
    let mut g = c.benchmark_group("semantic");
    g.sample_size(10);
    for words in [100usize, 400] {
        let t = text(words);
        let n = d
            .encoder()
            .windows(&t)
            .map(|w| w.iter().map(|w| w.ids.len()).sum::<usize>())
            .unwrap_or(0);
        g.bench_function(format!("score_{n}_pieces"), |b| b.iter(|| d.score(&t, 0.5)));
    }
    let t = text(100);
    let windows = d.encoder().windows(&t).unwrap_or_default();
    let ids: Vec<&[u32]> = std::iter::repeat_n(windows[0].ids.as_slice(), 8).collect();
    g.bench_function("embed_batch_8x128", |b| b.iter(|| d.encoder().embed(&ids)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

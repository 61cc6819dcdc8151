//! Criterion benchmarks for the input pipeline (normalisation + every detector) and the
//! output/stream path. `cargo bench -p rampart-scan`.

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rampart_scan::stream::{StreamScanner, Verdict};
use rampart_scan::{OutputContext, Role, Scanner};

/// A realistic 1 KB prompt: a support request with a pasted document, some PII.
fn prompt_1k() -> String {
    let base = "Hi, I need help drafting a reply to a customer. Here is their message: \"Hello, my order #48213 \
arrived damaged and I would like a replacement or a refund. I already contacted support twice last week \
but nobody answered. You can reach me at jane.miller@example.org or call (415) 555-2671 after 5pm. \
The package was delivered to 742 Evergreen Terrace, Springfield, and the box was crushed on one side. \
Thanks in advance.\" Please write a polite answer that apologises, offers a replacement, explains \
that a courier will pick up the damaged item within three business days, and asks whether they prefer \
store credit. Keep it under 150 words, friendly but professional, and do not promise anything about \
shipping fees since our policy on that changed this month. Also suggest a subject line for the email.";
    let mut s = base.to_owned();
    while s.len() < 1024 {
        s.push(' ');
        s.push_str("Thank you.");
    }
    s.truncate(1024);
    s
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::new();
    let p = prompt_1k();
    let mut g = c.benchmark_group("input_pipeline");
    for kb in [1usize, 4, 16, 64] {
        let text = p.repeat(kb);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(format!("{kb}KB")), &text, |b, t| {
            b.iter(|| scanner.scan_input(t, Role::User))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("detectors_1KB");
    g.bench_function("normalize", |b| b.iter(|| rampart_scan::normalize::normalize(&p)));
    g.bench_function("injection", |b| b.iter(|| scanner.injection().score(&p, Role::User)));
    g.bench_function("pii", |b| b.iter(|| scanner.scan_pii(&p)));
    g.bench_function("secrets", |b| b.iter(|| scanner.scan_secrets(&p)));
    let ctx = OutputContext::new(
        Some("rk-canary-0123456789abcdef".into()),
        Some(&p),
        vec!["example.org".into()],
    );
    g.bench_function("output", |b| b.iter(|| scanner.scan_output(&p, &ctx)));
    g.finish();

    let mut g = c.benchmark_group("stream");
    let text = p.repeat(4);
    g.throughput(Throughput::Bytes(text.len() as u64));
    let deltas: Vec<&str> = text
        .as_bytes()
        .chunks(16)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    g.bench_function("4KB_in_16B_deltas", |b| {
        b.iter(|| {
            let mut s = StreamScanner::new(256);
            let allow = |_: &rampart_scan::Finding| Verdict::Allow;
            for d in &deltas {
                let _ = s.push(&scanner, &ctx, d, &allow);
            }
            s.finish(&scanner, &ctx, &allow)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

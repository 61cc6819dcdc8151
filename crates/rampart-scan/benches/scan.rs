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

/// 512 different short prompts (names, numbers, places, phrasing vary), so the regex engines'
/// lazily built automata meet new text on every call, as on real traffic, instead of one text
/// repeated until every state is cached.
fn varied_prompts() -> Vec<String> {
    const WHO: [&str; 8] = [
        "Maria Lopez",
        "Kenji Sato",
        "Ahmed Khan",
        "Olga Petrova",
        "John Smith",
        "Ana Silva",
        "Lars Berg",
        "Chen Wei",
    ];
    const ASK: [&str; 8] = [
        "Can you summarise this email for me",
        "Translate the following note into French",
        "Write a short reply that declines politely",
        "Extract the action items from this message",
        "Is the tone of this text too aggressive",
        "Fix the grammar in the paragraph below",
        "Turn this into three bullet points",
        "Draft a follow-up for next Tuesday",
    ];
    const PLACE: [&str; 8] = [
        "Lisbon", "Osaka", "Nairobi", "Toronto", "Gdańsk", "Zürich", "Austin", "Pune",
    ];
    (0..512u32)
        .map(|i| {
            let n = i.wrapping_mul(2_654_435_761);
            format!(
                "{}: \"Hi team, {} here from {}. Order {} shipped on {}/{}, invoice {} is attached; \
                 call me on +44 20 {} {} or write to user{}@example.com. Room {} at {}.\"",
                ASK[(n % 8) as usize],
                WHO[((n >> 3) % 8) as usize],
                PLACE[((n >> 6) % 8) as usize],
                10_000 + n % 90_000,
                1 + n % 28,
                1 + (n >> 5) % 12,
                n % 1_000_000,
                1000 + n % 9000,
                1000 + (n >> 7) % 9000,
                i,
                n % 500,
                ["noon", "9am", "4:30pm", "10:15"][(n % 4) as usize],
            )
        })
        .collect()
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

    // Varied short prompts, one per call, cycling: the per-call cost on fresh text.
    let varied = varied_prompts();
    let bytes: usize = varied.iter().map(String::len).sum();
    let mut g = c.benchmark_group("varied_512_prompts");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("input_pipeline", |b| {
        b.iter(|| {
            varied
                .iter()
                .map(|t| scanner.scan_input(t, Role::User).findings.len())
                .sum::<usize>()
        })
    });
    g.bench_function("pii", |b| {
        b.iter(|| varied.iter().map(|t| scanner.scan_pii(t).len()).sum::<usize>())
    });
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

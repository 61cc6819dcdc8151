//! Training the head and the fusion, and the embedding cache that makes retraining cheap.
//!
//! * Embeddings depend only on the text (and the embedded encoder), so they are computed once
//!   and kept in a cache file keyed by the SHA-256 of the canonical text; a leave-one-family-
//!   out run trains a dozen heads from one pass of the encoder.
//! * A text longer than one window is a bag: every window of a benign text is a negative
//!   (weighted so the text counts once); for an attack, the first round learns from the mean
//!   of its windows and the second from the window the first-round head finds most suspicious
//!   (one round of multiple-instance learning), as the detector scores it.
//! * Every (family, label) group is weighted by the square root of its size, so that a large
//!   family does not drown the others and the two classes weigh the same.
//! * Optimisation is Adam over a seeded order: the same data gives the same bytes.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;

use rampart_scan::injection::train::Sample;
use sha2::{Digest, Sha256};

use crate::encoder::DIM;
use crate::head::{logit, sigmoid, Head, HIDDEN};
use crate::{SemanticDetector, SemanticError};

/// The embeddings of one text's scored windows.
pub type Bag = Vec<[f32; DIM]>;

/// Embeddings by text, persisted to a file.
#[derive(Debug, Default)]
pub struct Cache {
    map: HashMap<[u8; 32], Bag>,
    file: Option<std::fs::File>,
}

fn key(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Cache {
    /// Opens (or creates) a cache file; a truncated tail (an interrupted run) is ignored.
    pub fn open(path: &Path) -> Result<Cache, SemanticError> {
        let io = |e: std::io::Error| SemanticError::Load(format!("{}: {e}", path.display()));
        let mut map = HashMap::new();
        if let Ok(mut f) = std::fs::File::open(path) {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).map_err(io)?;
            let mut at = 0usize;
            while let Some(head) = buf.get(at..at + 36) {
                let mut k = [0u8; 32];
                k.copy_from_slice(&head[..32]);
                let n = u32::from_le_bytes([head[32], head[33], head[34], head[35]]) as usize;
                let Some(body) = buf.get(at + 36..at + 36 + n * DIM * 4) else {
                    break;
                };
                let mut bag = Vec::with_capacity(n);
                for row in body.chunks_exact(DIM * 4) {
                    let mut e = [0f32; DIM];
                    for (d, c) in e.iter_mut().zip(row.chunks_exact(4)) {
                        *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                    bag.push(e);
                }
                map.insert(k, bag);
                at += 36 + n * DIM * 4;
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Cache { map, file: Some(file) })
    }

    /// An in-memory cache.
    pub fn memory() -> Cache {
        Cache::default()
    }

    /// Texts cached.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bag of every text, embedding those not cached yet in batches of about `batch`
    /// windows; `progress(done, total)` is called after each batch.
    pub fn bags(
        &mut self,
        detector: &SemanticDetector,
        texts: &[&str],
        batch: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<Bag>, SemanticError> {
        let canon: Vec<String> = texts
            .iter()
            .map(|t| rampart_scan::normalize::normalize(t).text.into_owned())
            .collect();
        let mut todo: Vec<(usize, Vec<Vec<u32>>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, c) in canon.iter().enumerate() {
            let k = key(c);
            if !self.map.contains_key(&k) && seen.insert(k) {
                let w = detector.windows(c)?;
                todo.push((i, w.into_iter().map(|w| w.ids).collect()));
            }
        }
        // Similar lengths together: less padding per batch.
        todo.sort_by_key(|(_, w)| w.iter().map(Vec::len).max().unwrap_or(0));
        let total = todo.len();
        let mut done = 0usize;
        let mut at = 0usize;
        while at < todo.len() {
            let mut end = at;
            let mut n = 0usize;
            while end < todo.len() && (n == 0 || n + todo[end].1.len() <= batch) {
                n += todo[end].1.len();
                end += 1;
            }
            let ids: Vec<&[u32]> = todo[at..end]
                .iter()
                .flat_map(|(_, w)| w.iter().map(Vec::as_slice))
                .collect();
            let emb = detector.encoder().embed(&ids)?;
            let mut k = 0usize;
            for (i, w) in &todo[at..end] {
                let bag: Bag = emb.get(k..k + w.len()).map(<[_]>::to_vec).unwrap_or_default();
                k += w.len();
                self.insert(key(&canon[*i]), bag)?;
            }
            done += end - at;
            progress(done, total);
            at = end;
        }
        Ok(canon
            .iter()
            .map(|c| self.map.get(&key(c)).cloned().unwrap_or_default())
            .collect())
    }

    fn insert(&mut self, k: [u8; 32], bag: Bag) -> Result<(), SemanticError> {
        if let Some(f) = self.file.as_mut() {
            let mut buf = Vec::with_capacity(36 + bag.len() * DIM * 4);
            buf.extend_from_slice(&k);
            buf.extend_from_slice(&(bag.len() as u32).to_le_bytes());
            for e in &bag {
                for v in e {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
            }
            f.write_all(&buf)
                .map_err(|e| SemanticError::Load(format!("cache: {e}")))?;
        }
        self.map.insert(k, bag);
        Ok(())
    }
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Passes over the data per round.
    pub epochs: usize,
    /// Adam step size.
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
    /// Rows per step.
    pub batch: usize,
    /// Seed of the initialisation and the order.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            epochs: 40,
            learning_rate: 2e-3,
            l2: 1e-4,
            batch: 64,
            seed: 0x5eed,
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mean(bag: &Bag) -> [f32; DIM] {
    let mut m = [0f32; DIM];
    for e in bag {
        for (a, b) in m.iter_mut().zip(e) {
            *a += b;
        }
    }
    let n = m.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    for v in &mut m {
        *v /= n;
    }
    m
}

/// Per-(family, label) weights: each group weighs the square root of its size, and each class
/// sums to the same total.
pub fn group_weights(samples: &[&Sample]) -> Vec<f32> {
    let mut count: BTreeMap<(&str, bool), f32> = BTreeMap::new();
    for s in samples {
        *count.entry((s.family(), s.label)).or_default() += 1.0;
    }
    let mut class_total = [0f32; 2];
    for ((_, l), c) in &count {
        class_total[usize::from(*l)] += c.sqrt();
    }
    samples
        .iter()
        .map(|s| {
            let c = count.get(&(s.family(), s.label)).copied().unwrap_or(1.0);
            let share = c.sqrt() / class_total[usize::from(s.label)].max(1.0);
            share / c * samples.len() as f32 / 2.0
        })
        .collect()
}

/// Fits the head's weights (not the fusion) on labelled bags.
pub fn fit_head(samples: &[&Sample], bags: &[&Bag], settings: &Settings) -> Head {
    let weights = group_weights(samples);
    let mut rows: Vec<([f32; DIM], bool, f32)> = Vec::new();
    let mut positive_bags: Vec<(usize, f32)> = Vec::new();
    for (i, (s, bag)) in samples.iter().zip(bags).enumerate() {
        let w = weights.get(i).copied().unwrap_or(1.0);
        if bag.is_empty() {
            continue;
        }
        if !s.label {
            let share = w / bag.len() as f32;
            rows.extend(bag.iter().map(|e| (*e, false, share)));
        } else if bag.len() == 1 {
            rows.push((bag[0], true, w));
        } else {
            positive_bags.push((i, w));
        }
    }
    let first_len = rows.len();
    rows.extend(positive_bags.iter().map(|(i, w)| (mean(bags[*i]), true, *w)));
    let mut head = fit_rows(&rows, settings);
    if !positive_bags.is_empty() {
        rows.truncate(first_len);
        for (i, w) in &positive_bags {
            let best = bags[*i].iter().max_by(|a, b| head.logit(a).total_cmp(&head.logit(b)));
            if let Some(b) = best {
                rows.push((*b, true, *w));
            }
        }
        head = fit_rows(&rows, settings);
    }
    head
}

fn fit_rows(rows: &[([f32; DIM], bool, f32)], s: &Settings) -> Head {
    let mut rng = Rng(s.seed | 1);
    let mut h = Head::zero();
    let scale = (6.0 / (DIM + HIDDEN) as f32).sqrt();
    for w in &mut h.w1 {
        *w = (rng.unit() * 2.0 - 1.0) * scale;
    }
    let scale2 = (6.0 / (HIDDEN + 1) as f32).sqrt();
    for w in &mut h.w2 {
        *w = (rng.unit() * 2.0 - 1.0) * scale2;
    }
    let n_params = HIDDEN * DIM + HIDDEN + HIDDEN + 1;
    let mut m = vec![0f32; n_params];
    let mut v = vec![0f32; n_params];
    let mut g = vec![0f32; n_params];
    let (b1, b2) = (0.9f32, 0.999f32);
    let mut t = 0i32;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    for _ in 0..s.epochs {
        for i in (1..order.len()).rev() {
            let j = rng.below(i + 1);
            order.swap(i, j);
        }
        for chunk in order.chunks(s.batch.max(1)) {
            g.iter_mut().for_each(|x| *x = 0.0);
            let total: f32 = chunk.iter().map(|&i| rows[i].2).sum::<f32>().max(1e-9);
            for &i in chunk {
                let (x, y, w) = &rows[i];
                let hid = h.hidden(x);
                let z = hid.iter().zip(&h.w2).map(|(a, w)| a * w).sum::<f32>() + h.b2;
                let d = (sigmoid(z) - if *y { 1.0 } else { 0.0 }) * w / total;
                let (gw1, rest) = g.split_at_mut(HIDDEN * DIM);
                let (gb1, rest) = rest.split_at_mut(HIDDEN);
                let (gw2, gb2) = rest.split_at_mut(HIDDEN);
                gb2[0] += d;
                for j in 0..HIDDEN {
                    gw2[j] += d * hid[j];
                    if hid[j] > 0.0 {
                        let dj = d * h.w2[j];
                        gb1[j] += dj;
                        for (gw, xv) in gw1[j * DIM..(j + 1) * DIM].iter_mut().zip(x) {
                            *gw += dj * xv;
                        }
                    }
                }
            }
            t += 1;
            let lr = s.learning_rate * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            let mut k = 0usize;
            let mut step = |p: &mut f32, decay: bool| {
                let gk = g[k] + if decay { s.l2 * *p } else { 0.0 };
                m[k] = b1 * m[k] + (1.0 - b1) * gk;
                v[k] = b2 * v[k] + (1.0 - b2) * gk * gk;
                *p -= lr * m[k] / (v[k].sqrt() + 1e-8);
                k += 1;
            };
            for p in &mut h.w1 {
                step(p, true);
            }
            for p in &mut h.b1 {
                step(p, false);
            }
            for p in &mut h.w2 {
                step(p, true);
            }
            step(&mut h.b2, false);
        }
    }
    h
}

/// Fits the fusion `[a, b, c]` (probability = σ(a·logit(fast) + b·semantic + c)) by weighted
/// logistic regression on rows neither model was trained on.
pub fn fit_fusion(rows: &[(f32, f32, bool, f32)]) -> [f32; 3] {
    let mut p = [0.5f32, 0.5, 0.0];
    let feats = |r: &(f32, f32, bool, f32)| [logit(r.0), r.1.clamp(-30.0, 30.0), 1.0];
    let (mut m, mut v) = ([0f32; 3], [0f32; 3]);
    let total: f32 = rows.iter().map(|r| r.3).sum::<f32>().max(1e-9);
    for t in 1..=3000 {
        let mut g = [0f32; 3];
        for r in rows {
            let x = feats(r);
            let z: f32 = x.iter().zip(&p).map(|(a, b)| a * b).sum();
            let d = (sigmoid(z) - if r.2 { 1.0 } else { 0.0 }) * r.3 / total;
            for k in 0..3 {
                g[k] += d * x[k];
            }
        }
        for k in 0..3 {
            g[k] += 1e-4 * p[k];
            m[k] = 0.9 * m[k] + 0.1 * g[k];
            v[k] = 0.999 * v[k] + 0.001 * g[k] * g[k];
            let lr = 0.05 * (1.0 - 0.999f32.powi(t)).sqrt() / (1.0 - 0.9f32.powi(t));
            p[k] -= lr * m[k] / (v[k].sqrt() + 1e-8);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(label: bool, fam: &str) -> Sample {
        Sample {
            text: String::new(),
            label,
            source: fam.to_owned(),
        }
    }

    #[test]
    fn the_head_learns_a_separable_direction_reproducibly() {
        let mut rng = Rng(7);
        let mut samples = Vec::new();
        let mut bags = Vec::new();
        for i in 0..400 {
            let label = i % 2 == 0;
            let mut e = [0f32; DIM];
            for v in e.iter_mut() {
                *v = rng.unit() - 0.5;
            }
            e[3] = if label { 2.0 } else { -2.0 };
            bags.push(vec![e]);
            samples.push(sample(label, if i % 3 == 0 { "a" } else { "b" }));
        }
        let s: Vec<&Sample> = samples.iter().collect();
        let b: Vec<&Bag> = bags.iter().collect();
        let settings = Settings {
            epochs: 10,
            ..Settings::default()
        };
        let h = fit_head(&s, &b, &settings);
        let right = s
            .iter()
            .zip(&b)
            .filter(|(s, b)| (h.bag_logit(b) > 0.0) == s.label)
            .count();
        assert!(right > 390, "{right}");
        assert_eq!(fit_head(&s, &b, &settings), h);
    }

    #[test]
    fn fusion_learns_to_trust_the_informative_score() {
        let rows: Vec<(f32, f32, bool, f32)> = (0..200)
            .map(|i| {
                let y = i % 2 == 0;
                (0.5, if y { 3.0 } else { -3.0 }, y, 1.0)
            })
            .collect();
        let f = fit_fusion(&rows);
        assert!(f[1] > 0.5, "{f:?}");
    }

    #[test]
    fn group_weights_balance_classes() {
        let samples = [
            sample(true, "a"),
            sample(false, "a"),
            sample(false, "a"),
            sample(false, "b"),
        ];
        let s: Vec<&Sample> = samples.iter().collect();
        let w = group_weights(&s);
        let pos: f32 = w[..1].iter().sum();
        let neg: f32 = w[1..].iter().sum();
        assert!((pos - neg).abs() < 1e-4, "{pos} {neg}");
    }

    #[test]
    fn the_cache_survives_a_reopen_and_ignores_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("rampart-cache-test-{}", std::process::id()));
        let path = dir.join("c.bin");
        let _ = std::fs::remove_file(&path);
        {
            let mut c = Cache::open(&path).unwrap_or_default();
            let mut e = [0f32; DIM];
            e[0] = 1.5;
            assert!(c.insert(key("x"), vec![e, e]).is_ok());
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&path) {
            let _ = f.write_all(&[1, 2, 3]);
        }
        let c = Cache::open(&path).unwrap_or_default();
        assert_eq!(c.len(), 1);
        assert_eq!(c.map.get(&key("x")).map(|b| b[1][0]), Some(1.5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

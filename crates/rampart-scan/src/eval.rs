//! Detection-quality arithmetic: ROC AUC, thresholds at a fixed false-positive rate, precision
//! and recall. Pure functions over scores and labels, used by `rampart eval` and the tests.

/// The score above which at most `fpr` of `negatives` fall (strictly greater counts as a
/// positive call). `None` without negatives.
pub fn threshold_at_fpr(negatives: &[f32], fpr: f64) -> Option<f32> {
    if negatives.is_empty() {
        return None;
    }
    let mut s: Vec<f32> = negatives.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * s.len() as f64).floor() as usize;
    // Calling everything above s[allowed] positive flags exactly `allowed` negatives (ties
    // at the threshold stay negative).
    Some(s.get(allowed).copied().unwrap_or(f32::MIN))
}

/// Fraction of `scores` strictly above `threshold`.
pub fn rate_above(scores: &[f32], threshold: f32) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|&&s| s > threshold).count() as f64 / scores.len() as f64
}

/// Area under the ROC curve (the probability that a random positive outscores a random
/// negative, ties counting half).
pub fn roc_auc(positives: &[f32], negatives: &[f32]) -> Option<f64> {
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    let mut all: Vec<(f32, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of ranks of positives, average ranks for ties.
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += all[i..=j].iter().filter(|x| x.1).count() as f64 * avg;
        i = j + 1;
    }
    let (p, n) = (positives.len() as f64, negatives.len() as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Counts of a binary decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives.
    pub fn_: u64,
    /// True negatives.
    pub tn: u64,
}

impl Confusion {
    /// Adds one decision.
    pub fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// tp / (tp + fp).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_thresholds() {
        assert_eq!(roc_auc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(roc_auc(&[0.5], &[0.5]), Some(0.5));
        assert_eq!(roc_auc(&[0.1], &[0.9]), Some(0.0));
        let negs: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let t = threshold_at_fpr(&negs, 0.01).unwrap();
        assert!((rate_above(&negs, t) - 0.01).abs() < 1e-9);
        assert_eq!(threshold_at_fpr(&[], 0.01), None);
    }

    #[test]
    fn confusion_metrics() {
        let mut c = Confusion::default();
        c.add(true, true);
        c.add(true, false);
        c.add(false, true);
        c.add(false, false);
        assert_eq!(c.precision(), 0.5);
        assert_eq!(c.recall(), 0.5);
        assert_eq!(c.f1(), 0.5);
    }
}

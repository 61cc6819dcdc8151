//! Fitting both tiers together, and the held-out evaluation the README leads with.
//!
//! Splits, all by hashes of the text so every machine makes the same ones:
//! * validation: one text in five ([`train::is_validation`]), never trained or calibrated on;
//! * calibration: one in ten of the rest; both models are fitted without it, and the fusion
//!   (and so the meaning of a probability) is fitted on it alone;
//! * the rest trains the fast path and the head.

use rampart_scan::injection::train::{self as fast_train, Sample};
use rampart_scan::{InjectionDetector, InjectionModel};

use crate::head::Head;
use crate::train::{fit_fusion, fit_head, group_weights, Bag, Settings};

/// Whether a (non-validation) text is in the calibration split.
pub fn is_calibration(text: &str) -> bool {
    !fast_train::is_validation(text) && fast_train::fold_of(text, 10) == 0
}

/// Both tiers, fitted on the same rows.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The fast path's model, trained without the calibration split.
    pub fast: InjectionModel,
    /// The head, with its fusion fitted on the calibration split.
    pub head: Head,
}

impl Fitted {
    /// The fused probability of one sample.
    pub fn score(&self, fast: &InjectionDetector, s: &Sample, bag: &Bag) -> f32 {
        self.head.fuse_bag(fast.score(&s.text, s.role()), bag)
    }
}

/// What fitting needs besides the rows.
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    /// The head's settings.
    pub head: Settings,
    /// Adversarial-suffix pieces for the fast path's augmentation.
    pub components: Vec<String>,
    /// Synthetic rows the fast path's augmentation adds.
    pub augment: usize,
}

/// Embeds samples (the generated augmentation rows, which differ per training set).
pub type Embed<'a> = dyn FnMut(&[Sample]) -> Result<Vec<Bag>, crate::SemanticError> + 'a;

/// Fits the fast path and the head on `rows` (indices into `samples`) minus the calibration
/// split, and the fusion on that split. Evaluation-source families are dropped. Both tiers
/// learn from the same generated augmentation (benign fragments and system prompts,
/// adversarial suffixes, encoded prompts), built from the training rows only.
pub fn fit(
    samples: &[Sample],
    bags: &[Bag],
    rows: &[usize],
    opts: &FitOptions,
    embed: &mut Embed<'_>,
) -> Result<Fitted, crate::SemanticError> {
    let (calib, fit_rows): (Vec<usize>, Vec<usize>) = rows
        .iter()
        .copied()
        .filter(|&i| fast_train::trainable(&samples[i]) && !fast_train::is_validation(&samples[i].text))
        .partition(|&i| is_calibration(&samples[i].text));
    let mut fast_rows: Vec<Sample> = fit_rows.iter().map(|&i| samples[i].clone()).collect();
    let synthetic = fast_train::augment(&fast_rows, &opts.components, opts.augment, 0xa5a5);
    let synthetic_bags = embed(&synthetic)?;
    fast_rows.extend(synthetic.iter().cloned());
    let fast = fast_train::train(&fast_rows, &[], &fast_train::Settings::default());
    let mut s: Vec<&Sample> = fit_rows.iter().map(|&i| &samples[i]).collect();
    let mut b: Vec<&Bag> = fit_rows.iter().map(|&i| &bags[i]).collect();
    s.extend(synthetic.iter());
    b.extend(synthetic_bags.iter());
    let mut head = fit_head(&s, &b, &opts.head);
    let detector = InjectionDetector::new(fast.clone());
    let cs: Vec<&Sample> = calib.iter().map(|&i| &samples[i]).collect();
    let w = group_weights(&cs);
    let fusion_rows: Vec<(f32, f32, bool, f32)> = calib
        .iter()
        .zip(&w)
        .map(|(&i, &w)| {
            let sm = &samples[i];
            (
                detector.score(&sm.text, sm.role()),
                head.bag_logit(&bags[i]),
                sm.label,
                w,
            )
        })
        .collect();
    head.fusion = fit_fusion(&fusion_rows);
    Ok(Fitted { fast, head })
}

/// One held-out group's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldOut {
    /// The group left out (a family or a language).
    pub group: String,
    /// Its attacks.
    pub positives: usize,
    /// Its benign rows.
    pub negatives: usize,
    /// Fused tiers: share of its attacks over the threshold.
    pub tpr: Option<f64>,
    /// Fused tiers: share of its benign rows over the threshold.
    pub fpr: Option<f64>,
    /// The fast path alone, at its own threshold set the same way.
    pub fast_tpr: Option<f64>,
    /// The fast path alone: false positives.
    pub fast_fpr: Option<f64>,
    /// Fused scores of the group's attacks and benign rows (for pooled figures).
    #[serde(skip)]
    pub scores: (Vec<f32>, Vec<f32>),
    /// The fast path's scores of the same rows.
    #[serde(skip)]
    pub fast_scores: (Vec<f32>, Vec<f32>),
    /// The fused threshold used (1% FPR on the other groups' validation negatives).
    pub threshold: f32,
    /// Fused tiers at the caller's policy thresholds (per role): attacks caught.
    pub policy_tpr: Option<f64>,
    /// Fused tiers at the policy thresholds: benign rows refused.
    pub policy_fpr: Option<f64>,
}

/// Leave-one-group-out: for each group, fit both tiers without it, set the threshold at 1%
/// FPR on the validation negatives of the other groups, and score every row of the group.
/// Rows whose group is `None` are always trained on, never held out.
pub fn leave_one_out(
    samples: &[Sample],
    bags: &[Bag],
    group: impl Fn(&Sample) -> Option<String>,
    policy_threshold: impl Fn(&Sample) -> f32,
    opts: &FitOptions,
    embed: &mut Embed<'_>,
    mut progress: impl FnMut(&str),
) -> Result<Vec<HeldOut>, crate::SemanticError> {
    let groups: std::collections::BTreeSet<String> = samples.iter().filter_map(&group).collect();
    let mut out = Vec::new();
    for g in groups {
        progress(&g);
        let inside = |i: usize| group(&samples[i]).as_deref() == Some(g.as_str());
        let rows: Vec<usize> = (0..samples.len()).filter(|&i| !inside(i)).collect();
        let fitted = fit(samples, bags, &rows, opts, embed)?;
        let fast = InjectionDetector::new(fitted.fast.clone());
        let val_neg: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|&i| !samples[i].label && fast_train::is_validation(&samples[i].text))
            .collect();
        let fused_neg: Vec<f32> = val_neg
            .iter()
            .map(|&i| fitted.score(&fast, &samples[i], &bags[i]))
            .collect();
        let fast_neg: Vec<f32> = val_neg
            .iter()
            .map(|&i| fast.score(&samples[i].text, samples[i].role()))
            .collect();
        let t = rampart_scan::eval::threshold_at_fpr(&fused_neg, 0.01).unwrap_or(0.5);
        let ft = rampart_scan::eval::threshold_at_fpr(&fast_neg, 0.01).unwrap_or(0.5);
        let mut scores = (Vec::new(), Vec::new());
        let mut fast_scores = (Vec::new(), Vec::new());
        let mut at_policy = [(0usize, 0usize); 2];
        for i in (0..samples.len()).filter(|&i| inside(i)) {
            let s = &samples[i];
            let (f, p) = (fast.score(&s.text, s.role()), fitted.score(&fast, s, &bags[i]));
            let c = &mut at_policy[usize::from(s.label)];
            c.0 += usize::from(p >= policy_threshold(s));
            c.1 += 1;
            if s.label {
                scores.0.push(p);
                fast_scores.0.push(f);
            } else {
                scores.1.push(p);
                fast_scores.1.push(f);
            }
        }
        let rate = |v: &[f32], t: f32| (!v.is_empty()).then(|| rampart_scan::eval::rate_above(v, t));
        out.push(HeldOut {
            group: g,
            positives: scores.0.len(),
            negatives: scores.1.len(),
            tpr: rate(&scores.0, t),
            fpr: rate(&scores.1, t),
            fast_tpr: rate(&fast_scores.0, ft),
            fast_fpr: rate(&fast_scores.1, ft),
            scores,
            fast_scores,
            threshold: t,
            policy_tpr: (at_policy[1].1 > 0).then(|| at_policy[1].0 as f64 / at_policy[1].1 as f64),
            policy_fpr: (at_policy[0].1 > 0).then(|| at_policy[0].0 as f64 / at_policy[0].1 as f64),
        });
    }
    Ok(out)
}

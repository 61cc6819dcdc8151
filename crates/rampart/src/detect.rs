//! `rampart scan`, `rampart train` and `rampart eval`: the detectors from the shell, their
//! training, and their measured quality.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use rampart_policy::{ScanAction, ScanPolicy};
use rampart_scan::eval::{rate_above, roc_auc, threshold_at_fpr, Confusion};
use rampart_scan::injection::train::{self, Sample, Settings};
use rampart_scan::{InjectionDetector, InjectionModel, Role, Scanner};
use serde_json::json;

/// Message roles on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// System prompt.
    System,
    /// End user.
    User,
    /// Tool or function result.
    Tool,
    /// Retrieved document.
    Document,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::System => Role::System,
            RoleArg::User => Role::User,
            RoleArg::Tool => Role::Tool,
            RoleArg::Document => Role::Document,
        }
    }
}

/// Options of `rampart scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// File to scan; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Bulk mode: the input is JSON Lines (`text`, optional `role` and `id`), the output one
    /// JSON line per input line in the same order (as `--json`, with `line` and `id`), scanned
    /// in parallel on every core with one scanner. A line that cannot be read gets an `error`
    /// line and the rest go on. Exit 1 if any text would be blocked, 2 if any line was bad.
    #[arg(long, conflicts_with = "json")]
    jsonl: bool,
    /// Who wrote the text (thresholds differ: tool results and documents are stricter).
    #[arg(long, value_enum, default_value = "user")]
    role: RoleArg,
    /// Injection: the fast path alone, without the semantic tier the default policy also
    /// runs (faster, and the figure `bench` reports for bulk throughput).
    #[arg(long)]
    fast_only: bool,
}

/// `rampart train ...`.
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Train the injection classifier and write the weights the binary embeds.
    ///
    /// Rows whose text hashes into the validation split (one in five) are kept out of
    /// training and used to report the result. The same data gives the same bytes.
    Injection(TrainArgs),
    /// Train the semantic tier's head (and its fusion with the fast path) on the embedded
    /// encoder's embeddings, and write the weights the binary embeds.
    ///
    /// Example: rampart train semantic --data ../shared/data/injection/train.jsonl
    /// --data ../shared/data/injection/train_extra.jsonl --data target/data/generated.jsonl
    Semantic(crate::semantic_cmd::SemanticTrainArgs),
}

/// Options of `rampart train injection`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// JSON Lines with `text`, `label` (0/1) and `source`.
    #[arg(long)]
    data: PathBuf,
    /// Directory of adversarial-suffix pieces for augmentation (default: `components/` next
    /// to the data file, when present).
    #[arg(long)]
    components: Option<PathBuf>,
    /// Synthetic adversarial-suffix rows to add to training.
    #[arg(long, default_value_t = 300)]
    augment: usize,
    /// Where to write the weights.
    #[arg(long, default_value = "crates/rampart-scan/model/injection.bin")]
    out: PathBuf,
}

/// What `rampart eval` measures.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EvalTarget {
    /// Prompt injection / jailbreak classifier (JSON Lines `text`, `label`, `source`).
    Injection,
    /// PII spans (presidio-research JSON, or CoNLL BIO files for person names).
    Pii,
    /// Secrets (JSON Lines `text`, `label`, optional `kind`).
    Secrets,
}

/// Options of `rampart eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The detector.
    #[arg(value_enum)]
    target: EvalTarget,
    /// Labelled data.
    #[arg(long)]
    data: PathBuf,
    /// Evaluate only the hashed validation split (one text in five, kept out of training and
    /// tuning), only the rest (`tuning`), or all.
    #[arg(long, value_enum, default_value = "all")]
    split: SplitArg,
    /// PII: print each missed labelled span (type and text); injection: each attack under the
    /// 1%-FPR threshold and each benign row over it. To study the misses, use it on
    /// `--split tuning` (PII) or with `--cv` (injection) so the validation split stays unseen.
    #[arg(long)]
    show_misses: bool,
    /// Injection: leave-one-source-out — for each source family, train without it and test
    /// on it.
    #[arg(long)]
    loso: bool,
    /// Injection: K-fold cross-validation inside the tuning split (train on K-1 folds with
    /// the same procedure and augmentation as `rampart train`, score the held-out fold, pool
    /// the scores). Documents that carry the same planted payload share a fold, so payloads
    /// are unseen when scored. Lets a change be judged without looking at the validation split.
    #[arg(long, value_name = "K", conflicts_with_all = ["loso", "model"])]
    cv: Option<usize>,
    /// Injection: a weights file instead of the embedded model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Injection: also write every row's score (and a document's best window) to this file,
    /// as JSON Lines, for analysis.
    #[arg(long, value_name = "FILE")]
    scores: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Injection: the fast path alone (by default rows are scored as the default policy
    /// scores them: fast path and semantic tier fused).
    #[arg(long)]
    fast_only: bool,
    /// Injection: an embedding cache for the semantic tier (speeds up repeated runs).
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
}

/// Which rows to evaluate.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SplitArg {
    /// Every row.
    All,
    /// Only the validation split that training kept out.
    Validation,
    /// Everything but the validation split.
    Tuning,
}

fn read_input(file: Option<&Path>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    match file {
        None => std::io::stdin().read_to_end(&mut bytes).map(|_| ())?,
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_end(&mut bytes).map(|_| ())?,
        Some(p) => bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
    }
    // Broken UTF-8 is scanned as far as it is text; the bad bytes become U+FFFD.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `rampart scan`.
pub fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    if args.jsonl {
        return scan_lines(&args);
    }
    let text = read_input(args.file.as_deref())?;
    let scanner = Scanner::new();
    let policy = ScanPolicy::default_policy();
    let role: Role = args.role.into();
    let mut report = scanner.scan_input(&text, role);
    if !args.fast_only && policy.input.injection.wants_semantic(report.injection_score) {
        let detector = rampart_semantic::SemanticDetector::embedded()?;
        let scored = detector.score(&text, report.injection_score)?;
        rampart_semantic::apply(&mut report, scored.probability);
    }
    let verdict = policy.judge_input(&report, role);
    let blocked = verdict.blocked;
    let rows: Vec<(&rampart_scan::Finding, ScanAction)> = verdict.findings.iter().map(|(f, a)| (f, *a)).collect();
    if args.json {
        println!("{}", verdict_json(&verdict, report.injection_score, role, text.len()));
    } else {
        println!(
            "{:<18} {:<26} {:>6} {:>14}  {:<12} text",
            "detector", "type", "score", "span", "action"
        );
        for (f, a) in &rows {
            let snippet: String = text.get(f.start..f.end).unwrap_or("").chars().take(40).collect();
            let snippet = snippet.replace(['\n', '\r', '\t'], " ");
            println!(
                "{:<18} {:<26} {:>6.3} {:>14}  {:<12} {}",
                f.detector.name(),
                f.kind,
                f.score,
                format!("{}..{}", f.start, f.end),
                a.name(),
                snippet
            );
        }
        println!("{}", if blocked { "verdict: BLOCK" } else { "verdict: allow" });
    }
    Ok(if blocked { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The `--json` shape of one verdict.
fn verdict_json(v: &rampart_policy::InputVerdict, score: f32, role: Role, bytes: usize) -> serde_json::Value {
    let findings: Vec<_> = v
        .findings
        .iter()
        .map(|(f, a)| {
            json!({"detector": f.detector.name(), "type": f.kind, "score": round(f.score), "start": f.start, "end": f.end, "action": a.name()})
        })
        .collect();
    json!({"blocked": v.blocked, "injection_score": round(score), "role": role.name(), "bytes": bytes, "findings": findings})
}

/// One line of `rampart scan --jsonl`.
#[derive(serde::Deserialize)]
struct ScanLine {
    text: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// `rampart scan --jsonl`: lines scanned in parallel, written in input order. The fast path
/// runs on every core; the texts the policy sends to the semantic tier are then embedded in
/// length-sorted batches.
fn scan_lines(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let input = read_input(args.file.as_deref())?;
    let lines: Vec<(usize, &str)> = input
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    let scanner = Scanner::new();
    let policy = ScanPolicy::default_policy();
    let default_role: Role = args.role.into();
    let parse = |(n, line): (usize, &str)| -> Result<(ScanLine, Role, rampart_scan::Report), serde_json::Value> {
        let row: ScanLine = serde_json::from_str(line)
            .map_err(|e| json!({"line": n, "error": format!("not a JSON object with `text`: {e}")}))?;
        let role = match row.role.as_deref() {
            None => default_role,
            Some("user") => Role::User,
            Some("system") => Role::System,
            Some("assistant") => Role::Assistant,
            Some("tool") => Role::Tool,
            Some("document") => Role::Document,
            Some(other) => return Err(json!({"line": n, "id": row.id, "error": format!("unknown role `{other}`")})),
        };
        let report = scanner.scan_input(&row.text, role);
        Ok((row, role, report))
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(lines.len().max(1));
    let chunk = lines.len().div_ceil(workers).max(1);
    type Parsed = Result<(ScanLine, Role, rampart_scan::Report), serde_json::Value>;
    let mut parsed: Vec<Parsed> = std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|part| s.spawn(|| part.iter().copied().map(parse).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    if parsed.len() != lines.len() {
        anyhow::bail!(
            "a scanning thread failed: {} of {} lines scanned",
            parsed.len(),
            lines.len()
        );
    }
    if !args.fast_only {
        let rule = policy.input.injection;
        let wanted: Vec<usize> = parsed
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p, Ok((_, _, r)) if rule.wants_semantic(r.injection_score)))
            .map(|(i, _)| i)
            .collect();
        if !wanted.is_empty() {
            let detector = rampart_semantic::SemanticDetector::embedded()?;
            let items: Vec<(&str, f32)> = wanted
                .iter()
                .filter_map(|&i| parsed[i].as_ref().ok())
                .map(|(row, _, report)| (row.text.as_str(), report.injection_score))
                .collect();
            let fused = detector.fuse_texts(&mut rampart_semantic::train::Cache::memory(), &items)?;
            for (&i, p) in wanted.iter().zip(fused) {
                if let Ok((_, _, report)) = parsed[i].as_mut() {
                    rampart_semantic::apply(report, p);
                }
            }
        }
    }
    let results: Vec<(serde_json::Value, bool, bool)> = parsed
        .into_iter()
        .zip(&lines)
        .map(|(p, (n, _))| match p {
            Err(v) => (v, false, true),
            Ok((row, role, report)) => {
                let verdict = policy.judge_input(&report, role);
                let mut out = verdict_json(&verdict, report.injection_score, role, row.text.len());
                out["line"] = (*n).into();
                if let Some(id) = row.id {
                    out["id"] = id;
                }
                (out, verdict.blocked, false)
            }
        })
        .collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut blocked, mut bad, mut written) = (false, false, 0usize);
    for (v, b, e) in results {
        writeln!(out, "{v}")?;
        blocked |= b;
        bad |= e;
        written += 1;
    }
    out.flush()?;
    if written != lines.len() {
        anyhow::bail!("a scanning thread failed: {written} of {} lines written", lines.len());
    }
    Ok(if bad {
        ExitCode::from(2)
    } else if blocked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn round(x: f32) -> f64 {
    (f64::from(x) * 10_000.0).round() / 10_000.0
}

fn read_samples(path: &Path) -> anyhow::Result<Vec<Sample>> {
    Ok(rampart_data::read_labelled(path)?)
}

/// `rampart train injection`.
pub fn train_injection(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let samples = read_samples(&args.data)?;
    let (validation, mut training): (Vec<Sample>, Vec<Sample>) =
        samples.into_iter().partition(|s| train::is_validation(&s.text));
    let comp_dir = args
        .components
        .clone()
        .or_else(|| args.data.parent().map(|p| p.join("components")));
    let components = comp_dir
        .as_deref()
        .map(rampart_data::read_components)
        .unwrap_or_default();
    let synthetic = train::augment(&training, &components, args.augment, 0xa5a5);
    let n_syn = synthetic.len();
    training.extend(synthetic);
    eprintln!(
        "training on {} rows ({} synthetic), validating on {} held-out rows",
        training.len(),
        n_syn,
        validation.len()
    );
    let started = Instant::now();
    let model = train::train(&training, &validation, &Settings::default());
    eprintln!("trained in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&args.out, model.to_bytes()).with_context(|| format!("cannot write {}", args.out.display()))?;
    let detector = InjectionDetector::new(model.clone());
    let (pos, neg) = scores(&detector, &validation);
    println!("wrote {}", args.out.display());
    println!(
        "validation: {} rows, ROC AUC {:.4}, TPR@1%FPR {:.4} (threshold {:.3}), TPR@0.1%FPR {:.4}",
        validation.len(),
        roc_auc(&pos, &neg).unwrap_or(f64::NAN),
        tpr_at_fpr(&pos, &neg, 0.01),
        model.validation_threshold,
        tpr_at_fpr(&pos, &neg, 0.001)
    );
    Ok(ExitCode::SUCCESS)
}

fn scores(d: &InjectionDetector, rows: &[Sample]) -> (Vec<f32>, Vec<f32>) {
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    for s in rows {
        let v = d.score(&s.text, s.role());
        if s.label {
            pos.push(v);
        } else {
            neg.push(v);
        }
    }
    (pos, neg)
}

fn tpr_at_fpr(pos: &[f32], neg: &[f32], fpr: f64) -> f64 {
    threshold_at_fpr(neg, fpr).map_or(f64::NAN, |t| rate_above(pos, t))
}

/// `rampart eval`.
pub fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    match args.target {
        EvalTarget::Injection if args.loso => eval_loso(&args),
        EvalTarget::Injection if args.cv.is_some() => eval_cv(&args),
        EvalTarget::Injection => eval_injection(&args),
        EvalTarget::Pii => eval_pii(&args),
        EvalTarget::Secrets => eval_secrets(&args),
    }
}

fn eval_injection(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let mut rows = read_samples(&args.data)?;
    match args.split {
        SplitArg::Validation => rows.retain(|s| train::is_validation(&s.text)),
        SplitArg::Tuning => rows.retain(|s| !train::is_validation(&s.text)),
        SplitArg::All => {}
    }
    let model = match &args.model {
        Some(p) => {
            InjectionModel::from_bytes(&std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)?
        }
        None => InjectionModel::embedded(),
    };
    let d = InjectionDetector::new(model);
    let started = Instant::now();
    let mut scored: Vec<Scored<'_>> = rows.iter().map(|s| score_row(&d, s)).collect();
    if !args.fast_only {
        fuse_semantic(args, &mut scored)?;
    }
    let elapsed = started.elapsed();
    let label = if args.split == SplitArg::Validation {
        ", validation split"
    } else {
        ""
    };
    report_injection(args, &scored, Some(elapsed), label);
    write_scores(args, &scored)?;
    Ok(ExitCode::SUCCESS)
}

/// K-fold cross-validation inside the tuning split.
fn eval_cv(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let k = args.cv.unwrap_or(5);
    if k < 2 {
        bail!("--cv needs at least 2 folds");
    }
    let mut rows = read_samples(&args.data)?;
    rows.retain(|s| !train::is_validation(&s.text));
    let components = args
        .data
        .parent()
        .map(|p| rampart_data::read_components(&p.join("components")))
        .unwrap_or_default();
    // Attack corpora reuse their payloads across many documents; a document's fold is its
    // payload's, so a payload is never seen in training and scored in the same run.
    let payloads = train::planted_payloads(&rows);
    let fold = |i: usize| train::fold_of(payloads[i].unwrap_or(&rows[i].text), k);
    let folds: Vec<usize> = (0..rows.len()).map(fold).collect();
    let mut scored: Vec<Scored<'_>> = Vec::with_capacity(rows.len());
    for fold in 0..k {
        let held: Vec<&Sample> = (0..rows.len())
            .filter(|&i| folds[i] == fold)
            .map(|i| &rows[i])
            .collect();
        let mut training: Vec<Sample> = (0..rows.len())
            .filter(|&i| folds[i] != fold)
            .map(|i| rows[i].clone())
            .collect();
        let synthetic = train::augment(&training, &components, 300, 0xa5a5);
        training.extend(synthetic);
        let model = train::train(&training, &[], &Settings::default());
        let d = InjectionDetector::new(model);
        scored.extend(held.into_iter().map(|s| score_row(&d, s)));
        eprintln!("fold {}/{k} done", fold + 1);
    }
    report_injection(
        args,
        &scored,
        None,
        &format!(", {k}-fold cross-validation in the tuning split"),
    );
    write_scores(args, &scored)?;
    Ok(ExitCode::SUCCESS)
}

/// A scored row: score, the row, and for a document the window that scored highest.
type Scored<'a> = (f32, &'a Sample, Option<String>);

/// Replaces fast-path scores with the fused probability where the default policy sends a
/// text to the semantic tier.
fn fuse_semantic(args: &EvalArgs, scored: &mut [Scored<'_>]) -> anyhow::Result<()> {
    let rule = ScanPolicy::default_policy().input.injection;
    let wanted: Vec<usize> = (0..scored.len())
        .filter(|&i| rule.wants_semantic(scored[i].0))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let detector = rampart_semantic::SemanticDetector::embedded()?;
    let mut cache = match &args.cache {
        Some(p) => rampart_semantic::train::Cache::open(p)?,
        None => rampart_semantic::train::Cache::memory(),
    };
    let items: Vec<(&str, f32)> = wanted
        .iter()
        .map(|&i| (scored[i].1.text.as_str(), scored[i].0))
        .collect();
    let fused = detector.fuse_texts(&mut cache, &items)?;
    for (&i, p) in wanted.iter().zip(fused) {
        scored[i].0 = p;
    }
    Ok(())
}

fn score_row<'a>(d: &InjectionDetector, s: &'a Sample) -> Scored<'a> {
    let norm = rampart_scan::normalize::normalize(&s.text);
    let a = d.assess_spans(&norm, s.role());
    let window = a.window.and_then(|(b, e)| norm.text.get(b..e)).map(str::to_owned);
    (a.score, s, window)
}

fn write_scores(args: &EvalArgs, scored: &[Scored<'_>]) -> anyhow::Result<()> {
    let Some(path) = &args.scores else {
        return Ok(());
    };
    let mut out = String::new();
    for (score, s, window) in scored {
        out.push_str(
            &json!({"score": score, "label": s.label, "source": s.source, "window": window, "text": s.text})
                .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// TPR at 1% FPR for each role separately (users and documents get their own thresholds).
fn per_role(scored: &[Scored<'_>]) -> serde_json::Value {
    let mut roles: BTreeMap<&str, (Vec<f32>, Vec<f32>)> = BTreeMap::new();
    for (s, row, _) in scored {
        let name = if row.role().is_untrusted_data() {
            "documents"
        } else {
            "user messages"
        };
        let e = roles.entry(name).or_default();
        if row.label {
            e.0.push(*s);
        } else {
            e.1.push(*s);
        }
    }
    let m: serde_json::Map<String, serde_json::Value> = roles
        .iter()
        .filter(|(_, (p, n))| !p.is_empty() && !n.is_empty())
        .map(|(r, (p, n))| {
            (r.to_string(), json!({"positives": p.len(), "negatives": n.len(), "tpr_at_1pct_fpr": tpr_at_fpr(p, n, 0.01), "threshold": threshold_at_fpr(n, 0.01)}))
        })
        .collect();
    serde_json::Value::Object(m)
}

/// Prints (or writes as JSON) the measures of scored rows.
fn report_injection(args: &EvalArgs, scored: &[Scored<'_>], elapsed: Option<std::time::Duration>, label: &str) {
    let thresholds = ScanPolicy::default_policy().input.injection.thresholds;
    let policy_threshold = thresholds.user;
    let at = |row: &Sample| thresholds.for_role(row.role());
    let bytes: usize = scored.iter().map(|s| s.1.text.len()).sum();
    let rows = scored;
    let pos: Vec<f32> = scored.iter().filter(|x| x.1.label).map(|x| x.0).collect();
    let neg: Vec<f32> = scored.iter().filter(|x| !x.1.label).map(|x| x.0).collect();
    let t1 = threshold_at_fpr(&neg, 0.01).unwrap_or(policy_threshold);
    let mut at_policy = Confusion::default();
    for (s, row, _) in scored {
        at_policy.add(*s >= at(row), row.label);
    }
    // Per family: scores, and the policy threshold of the family's role.
    let mut fams: BTreeMap<&str, (Vec<f32>, Vec<f32>, f32)> = BTreeMap::new();
    for (s, row, _) in scored {
        let e = fams
            .entry(row.family())
            .or_insert_with(|| (Vec::new(), Vec::new(), at(row)));
        if row.label {
            e.0.push(*s)
        } else {
            e.1.push(*s)
        }
    }
    let mut langs: BTreeMap<&str, (Vec<f32>, Vec<f32>, f32)> = BTreeMap::new();
    for (s, row, _) in scored {
        let Some(l) = row.language() else { continue };
        let e = langs.entry(l).or_insert_with(|| (Vec::new(), Vec::new(), at(row)));
        if row.label {
            e.0.push(*s)
        } else {
            e.1.push(*s)
        }
    }
    let us_per_kb = elapsed.map(|e| e.as_secs_f64() * 1e6 / (bytes as f64 / 1024.0).max(1e-9));
    let summary = json!({
        "rows": rows.len(), "positives": pos.len(), "negatives": neg.len(),
        "roc_auc": roc_auc(&pos, &neg),
        "tpr_at_1pct_fpr": tpr_at_fpr(&pos, &neg, 0.01), "threshold_at_1pct_fpr": t1,
        "tpr_at_0_1pct_fpr": tpr_at_fpr(&pos, &neg, 0.001),
        "policy_thresholds": {"user": thresholds.user, "tool_and_document": thresholds.tool},
        "per_role_1pct_fpr": per_role(scored),
        "precision": at_policy.precision(), "recall": at_policy.recall(), "f1": at_policy.f1(),
        "latency_us_per_kb": us_per_kb,
    });
    if args.json {
        let per: serde_json::Map<String, serde_json::Value> = fams
            .iter()
            .map(|(f, (p, n, t))| {
                (f.to_string(), json!({"positives": p.len(), "negatives": n.len(), "tpr_at_1pct": (!p.is_empty()).then(|| rate_above(p, t1)), "fpr_at_1pct": (!n.is_empty()).then(|| rate_above(n, t1)), "policy_threshold": t, "tpr_at_policy": (!p.is_empty()).then(|| rate_above(p, t - f32::EPSILON)), "fpr_at_policy": (!n.is_empty()).then(|| rate_above(n, t - f32::EPSILON))}))
            })
            .collect();
        let per_lang: serde_json::Map<String, serde_json::Value> = langs
            .iter()
            .map(|(l, (p, n, t))| {
                (l.to_string(), json!({"positives": p.len(), "negatives": n.len(), "roc_auc": roc_auc(p, n), "tpr_at_policy": (!p.is_empty()).then(|| rate_above(p, t - f32::EPSILON)), "fpr_at_policy": (!n.is_empty()).then(|| rate_above(n, t - f32::EPSILON))}))
            })
            .collect();
        println!(
            "{}",
            json!({"summary": summary, "per_source": per, "per_language": per_lang})
        );
        return;
    }
    println!(
        "injection: {} rows ({} positive, {} negative){label}",
        rows.len(),
        pos.len(),
        neg.len(),
    );
    println!("  ROC AUC            {:.4}", roc_auc(&pos, &neg).unwrap_or(f64::NAN));
    println!(
        "  TPR @ 1% FPR       {:.4}  (threshold {:.3})",
        tpr_at_fpr(&pos, &neg, 0.01),
        t1
    );
    println!("  TPR @ 0.1% FPR     {:.4}", tpr_at_fpr(&pos, &neg, 0.001));
    for (role, v) in per_role(scored).as_object().into_iter().flatten() {
        println!(
            "  {role:<18} TPR @ 1% FPR {:.4} (threshold {:.3}, {} positive, {} negative)",
            v["tpr_at_1pct_fpr"].as_f64().unwrap_or(f64::NAN),
            v["threshold"].as_f64().unwrap_or(f64::NAN),
            v["positives"],
            v["negatives"]
        );
    }
    println!(
        "  at policy thresholds (user {:.2}, tool/document {:.2}): precision {:.4}, recall {:.4}, F1 {:.4}",
        policy_threshold,
        thresholds.tool,
        at_policy.precision(),
        at_policy.recall(),
        at_policy.f1()
    );
    if let Some(us) = us_per_kb {
        println!("  latency            {us:.1} µs per KB");
    }
    println!("  per source family (at the 1%-FPR threshold | at the policy threshold):");
    println!(
        "    {:<26} {:>5} {:>5} {:>8} {:>8} | {:>8} {:>8}",
        "family", "pos", "neg", "TPR", "FPR", "TPR", "FPR"
    );
    for (f, (p, n, t)) in &fams {
        let fmt = |v: &[f32], t: f32| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.4}", rate_above(v, t))
            }
        };
        let tp = t - f32::EPSILON;
        println!(
            "    {:<26} {:>5} {:>5} {:>8} {:>8} | {:>8} {:>8}",
            f,
            p.len(),
            n.len(),
            fmt(p, t1),
            fmt(n, t1),
            fmt(p, tp),
            fmt(n, tp)
        );
    }
    if !langs.is_empty() {
        println!("  per language (sources tagged `@lang`), at the policy threshold:");
        println!(
            "    {:<8} {:>5} {:>5} {:>8} {:>8} {:>8}",
            "lang", "pos", "neg", "AUC", "TPR", "FPR"
        );
        for (l, (p, n, t)) in &langs {
            let fmt = |v: &[f32]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    format!("{:.4}", rate_above(v, t - f32::EPSILON))
                }
            };
            let auc = roc_auc(p, n).map_or("-".to_owned(), |a| format!("{a:.4}"));
            println!(
                "    {:<8} {:>5} {:>5} {:>8} {:>8} {:>8}",
                l,
                p.len(),
                n.len(),
                auc,
                fmt(p),
                fmt(n)
            );
        }
    }
    if args.show_misses {
        print_injection_misses(scored, t1);
    }
}

/// The attacks scored under the 1%-FPR threshold and the benign rows above it, worst first.
fn print_injection_misses(scored: &[Scored<'_>], threshold: f32) {
    let one_line = |t: &str| -> String {
        let flat: String = t.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let n = flat.chars().count();
        if n <= 160 {
            flat
        } else {
            let head: String = flat.chars().take(100).collect();
            let tail: String = flat.chars().skip(n - 56).collect();
            format!("{head} … {tail}")
        }
    };
    let mut missed: Vec<&Scored<'_>> = scored.iter().filter(|x| x.1.label && x.0 < threshold).collect();
    missed.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("  missed attacks ({}), lowest score first:", missed.len());
    for (score, s, window) in missed {
        println!(
            "    {score:.3} {:<28} {}",
            s.source,
            one_line(window.as_deref().unwrap_or(&s.text))
        );
    }
    let mut flagged: Vec<&Scored<'_>> = scored.iter().filter(|x| !x.1.label && x.0 >= threshold).collect();
    flagged.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("  benign rows flagged ({}), highest score first:", flagged.len());
    for (score, s, window) in flagged {
        println!(
            "    {score:.3} {:<28} {}",
            s.source,
            one_line(window.as_deref().unwrap_or(&s.text))
        );
    }
}

fn eval_loso(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let rows = read_samples(&args.data)?;
    let components = args
        .data
        .parent()
        .map(|p| rampart_data::read_components(&p.join("components")))
        .unwrap_or_default();
    let families: std::collections::BTreeSet<&str> = rows.iter().map(Sample::family).collect();
    println!("leave-one-source-out: train without a family (and without the validation split), with the");
    println!("same procedure as `rampart train`; test on all of the family; threshold = 1% FPR on the");
    println!("validation negatives of the other families");
    println!(
        "  {:<26} {:>5} {:>5} {:>8} {:>8} {:>9}",
        "held-out family", "pos", "neg", "TPR", "FPR", "threshold"
    );
    let mut out = serde_json::Map::new();
    for fam in families {
        let mut training: Vec<Sample> = rows
            .iter()
            .filter(|s| s.family() != fam && !train::is_validation(&s.text))
            .cloned()
            .collect();
        let synthetic = train::augment(&training, &components, 300, 0xa5a5);
        training.extend(synthetic);
        let d = InjectionDetector::new(train::train(&training, &[], &Settings::default()));
        let val_neg: Vec<f32> = rows
            .iter()
            .filter(|s| s.family() != fam && train::is_validation(&s.text) && !s.label)
            .map(|s| d.score(&s.text, s.role()))
            .collect();
        let t = threshold_at_fpr(&val_neg, 0.01).unwrap_or(0.5);
        let (p, n): (Vec<&Sample>, Vec<&Sample>) = rows.iter().filter(|s| s.family() == fam).partition(|s| s.label);
        let ps: Vec<f32> = p.iter().map(|s| d.score(&s.text, s.role())).collect();
        let ns: Vec<f32> = n.iter().map(|s| d.score(&s.text, s.role())).collect();
        let fmt = |v: &[f32]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.4}", rate_above(v, t))
            }
        };
        println!(
            "  {:<26} {:>5} {:>5} {:>8} {:>8} {:>9.3}",
            fam,
            ps.len(),
            ns.len(),
            fmt(&ps),
            fmt(&ns),
            t
        );
        out.insert(
            fam.to_owned(),
            json!({"positives": ps.len(), "negatives": ns.len(), "tpr": (!ps.is_empty()).then(|| rate_above(&ps, t)), "fpr": (!ns.is_empty()).then(|| rate_above(&ns, t)), "threshold": t}),
        );
    }
    if args.json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(ExitCode::SUCCESS)
}

/// Gold span: (start, end, kind or None when the type is not one Rampart targets).
type Gold = (usize, usize, Option<&'static str>);

fn presidio_kind(t: &str) -> Option<&'static str> {
    Some(match t {
        "PERSON" => "person",
        "EMAIL_ADDRESS" => "email",
        "PHONE_NUMBER" => "phone_number",
        "CREDIT_CARD" => "credit_card",
        "IBAN_CODE" => "iban",
        "US_SSN" => "us_ssn",
        "IP_ADDRESS" => "ip_address",
        "ADDRESS" => "address",
        "US_DRIVER_LICENSE" => "driver_license",
        "DOMAIN_NAME" | "URL" => "url",
        _ => return None,
    })
}

fn load_pii(path: &Path) -> anyhow::Result<Vec<(String, Vec<Gold>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "conll") {
        // CoNLL BIO: tokens joined by spaces; only person entities are targeted.
        let mut docs = Vec::new();
        let (mut doc, mut gold): (String, Vec<Gold>) = (String::new(), Vec::new());
        let mut open: Option<(usize, bool)> = None;
        let close = |open: &mut Option<(usize, bool)>, doc: &str, gold: &mut Vec<Gold>| {
            if let Some((s, person)) = open.take() {
                gold.push((s, doc.len(), person.then_some("person")));
            }
        };
        for line in text.lines() {
            let mut parts = line.split('\t');
            let (Some(tok), Some(tag)) = (parts.next(), parts.next()) else {
                close(&mut open, &doc, &mut gold);
                if !doc.is_empty() {
                    docs.push((std::mem::take(&mut doc), std::mem::take(&mut gold)));
                }
                continue;
            };
            if tag.starts_with("B-") || tag == "O" {
                close(&mut open, &doc, &mut gold);
            }
            if !doc.is_empty() {
                doc.push(' ');
            }
            if let Some(t) = tag.strip_prefix("B-") {
                open = Some((doc.len(), t == "person"));
            }
            doc.push_str(tok);
        }
        close(&mut open, &doc, &mut gold);
        if !doc.is_empty() {
            docs.push((doc, gold));
        }
        return Ok(docs);
    }
    let v: serde_json::Value = serde_json::from_str(&text).context("not JSON")?;
    let mut docs = Vec::new();
    for r in v.as_array().context("expected a JSON array of records")? {
        let t = r["full_text"].as_str().context("record without full_text")?;
        // Presidio positions are in characters; convert to bytes.
        let offsets: Vec<usize> = t
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(t.len()))
            .collect();
        let mut gold = Vec::new();
        for s in r["spans"].as_array().into_iter().flatten() {
            let (Some(a), Some(b)) = (s["start_position"].as_u64(), s["end_position"].as_u64()) else {
                continue;
            };
            let (Some(&a), Some(&b)) = (offsets.get(a as usize), offsets.get(b as usize)) else {
                continue;
            };
            gold.push((a, b, presidio_kind(s["entity_type"].as_str().unwrap_or(""))));
        }
        docs.push((t.to_owned(), gold));
    }
    Ok(docs)
}

fn eval_pii(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let mut docs = load_pii(&args.data)?;
    match args.split {
        SplitArg::Validation => docs.retain(|(text, _)| train::is_validation(text)),
        SplitArg::Tuning => docs.retain(|(text, _)| !train::is_validation(text)),
        SplitArg::All => {}
    }
    let scanner = Scanner::new();
    let min = ScanPolicy::default_policy().input.pii.min_score;
    let mut per: BTreeMap<&str, Confusion> = BTreeMap::new();
    let mut all = Confusion::default();
    // Entities found by shape and check digits, apart from names and addresses (which need
    // language): the figure Presidio's pattern recognisers are compared on.
    let mut pattern = Confusion::default();
    let is_pattern = |k: &str| !matches!(k, "person" | "address");
    let started = Instant::now();
    let mut bytes = 0usize;
    let conll = args.data.extension().is_some_and(|e| e == "conll");
    for (text, gold) in &docs {
        bytes += text.len();
        let found: Vec<_> = scanner.scan_pii(text).into_iter().filter(|f| f.score >= min).collect();
        let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
        for g in gold {
            let Some(kind) = g.2 else { continue };
            let hit = found
                .iter()
                .any(|f| f.kind == kind && overlaps((f.start, f.end), (g.0, g.1)));
            per.entry(kind).or_default().add(hit, true);
            all.add(hit, true);
            if is_pattern(kind) {
                pattern.add(hit, true);
            }
            if !hit && args.show_misses {
                println!("miss {kind:<14} {:?}", text.get(g.0..g.1).unwrap_or(""));
            }
        }
        for f in &found {
            if conll && f.kind != "person" {
                continue; // CoNLL data labels names only.
            }
            let matched = gold
                .iter()
                .any(|g| g.2 == Some(kind_static(&f.kind)) && overlaps((f.start, f.end), (g.0, g.1)));
            let neutral = gold
                .iter()
                .any(|g| g.2.is_none() && overlaps((f.start, f.end), (g.0, g.1)));
            if !matched && !neutral {
                per.entry(kind_static(&f.kind)).or_default().add(true, false);
                all.add(true, false);
                if is_pattern(&f.kind) {
                    pattern.add(true, false);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let us_per_kb = elapsed.as_secs_f64() * 1e6 / (bytes as f64 / 1024.0).max(1e-9);
    if args.json {
        let m: serde_json::Map<_, _> = per
            .iter()
            .map(|(k, c)| (k.to_string(), json!({"tp": c.tp, "fp": c.fp, "fn": c.fn_, "precision": c.precision(), "recall": c.recall(), "f1": c.f1()})))
            .collect();
        println!(
            "{}",
            json!({"documents": docs.len(), "precision": all.precision(), "recall": all.recall(), "f1": all.f1(), "pattern_f1": pattern.f1(), "latency_us_per_kb": us_per_kb, "per_type": m})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("pii: {} documents, span-level (overlap) at min_score {min}", docs.len());
    println!(
        "  {:<18} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9}",
        "type", "tp", "fp", "fn", "precision", "recall", "F1"
    );
    for (k, c) in &per {
        println!(
            "  {:<18} {:>6} {:>6} {:>6} {:>9.4} {:>9.4} {:>9.4}",
            k,
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall(),
            c.f1()
        );
    }
    println!(
        "  {:<18} {:>6} {:>6} {:>6} {:>9.4} {:>9.4} {:>9.4}",
        "ALL",
        all.tp,
        all.fp,
        all.fn_,
        all.precision(),
        all.recall(),
        all.f1()
    );
    println!(
        "  {:<18} {:>6} {:>6} {:>6} {:>9.4} {:>9.4} {:>9.4}",
        "pattern entities",
        pattern.tp,
        pattern.fp,
        pattern.fn_,
        pattern.precision(),
        pattern.recall(),
        pattern.f1()
    );
    println!("  latency {us_per_kb:.1} µs per KB");
    Ok(ExitCode::SUCCESS)
}

fn kind_static(k: &str) -> &'static str {
    const KINDS: &[&str] = &[
        "person",
        "email",
        "phone_number",
        "credit_card",
        "iban",
        "us_ssn",
        "ip_address",
        "address",
        "driver_license",
        "mac_address",
        "date_of_birth",
        "passport_number",
        "uk_nino",
        "in_pan",
        "in_aadhaar",
        "es_dni",
        "it_fiscal_code",
        "cn_resident_id",
        "br_cpf",
        "url",
    ];
    KINDS.iter().find(|x| **x == k).copied().unwrap_or("other")
}

fn eval_secrets(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let rows = read_samples(&args.data)?;
    let scanner = Scanner::new();
    let min = ScanPolicy::default_policy().input.secrets.min_score;
    let mut all = Confusion::default();
    let mut per: BTreeMap<&str, Confusion> = BTreeMap::new();
    let started = Instant::now();
    let bytes: usize = rows.iter().map(|r| r.text.len()).sum();
    let mut misses = Vec::new();
    for r in &rows {
        let hit = scanner.scan_secrets(&r.text).iter().any(|f| f.score >= min);
        all.add(hit, r.label);
        per.entry(r.source.as_str()).or_default().add(hit, r.label);
        if hit != r.label && misses.len() < 10 {
            misses.push(format!(
                "{} {}: {}",
                if r.label { "missed" } else { "false alarm" },
                r.source,
                r.text.chars().take(80).collect::<String>()
            ));
        }
    }
    let us_per_kb = started.elapsed().as_secs_f64() * 1e6 / (bytes as f64 / 1024.0).max(1e-9);
    if args.json {
        println!(
            "{}",
            json!({"rows": rows.len(), "precision": all.precision(), "recall": all.recall(), "f1": all.f1(), "latency_us_per_kb": us_per_kb})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("secrets: {} texts, text-level at min_score {min}", rows.len());
    println!("  {:<28} {:>5} {:>5} {:>5} {:>5}", "kind", "tp", "fp", "fn", "tn");
    for (k, c) in &per {
        println!("  {:<28} {:>5} {:>5} {:>5} {:>5}", k, c.tp, c.fp, c.fn_, c.tn);
    }
    println!(
        "  precision {:.4}, recall {:.4}, F1 {:.4}",
        all.precision(),
        all.recall(),
        all.f1()
    );
    println!("  latency {us_per_kb:.1} µs per KB");
    for m in misses {
        println!("  {m}");
    }
    Ok(ExitCode::SUCCESS)
}

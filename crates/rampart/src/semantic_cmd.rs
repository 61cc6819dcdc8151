//! `rampart data ...`, `rampart train semantic` and `rampart eval held-out`: generating
//! training data, fitting the semantic tier, and the held-out figures the README leads with.
//! The logic is in `rampart-data` and `rampart-semantic`; this wires files and progress bars.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rampart_scan::injection::train::{self, Sample};
use rampart_semantic::pipeline::{self, FitOptions};
use rampart_semantic::train::{Bag, Cache};
use rampart_semantic::SemanticDetector;
use serde_json::json;

/// `rampart data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write the generated training rows: attacks from parts, their benign twins, code and
    /// docs pasted into questions, and translated messages (seeded: same command, same rows).
    Generate(GenerateArgs),
    /// Write benign rows of code, configs and docs from directories never trained on (by
    /// default the Rust crates in the cargo registry) to measure over-defence on code.
    HeldoutCode(HeldoutCodeArgs),
}

/// Options of `rampart data generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output JSON Lines.
    #[arg(long, default_value = "target/data/generated.jsonl")]
    out: PathBuf,
    /// Rows per generated family.
    #[arg(long, default_value_t = 600)]
    count: usize,
    /// Root of the file tree to harvest code, docs and message catalogues from
    /// (`scripts/harvest-corpora.sh` unpacks pinned Debian packages into
    /// `target/corpora/root`).
    #[arg(long, default_value = "target/corpora/root")]
    root: PathBuf,
    /// Seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// Options of `rampart data heldout-code`.
#[derive(Debug, Args)]
pub struct HeldoutCodeArgs {
    /// Directories to read (default: `$CARGO_HOME/registry/src`).
    #[arg(long)]
    root: Vec<PathBuf>,
    /// Output JSON Lines.
    #[arg(long, default_value = "target/data/heldout_code.jsonl")]
    out: PathBuf,
    /// Rows.
    #[arg(long, default_value_t = 1500)]
    count: usize,
}

/// Languages the translated-message harvest keeps.
const HARVEST_LANGS: &[&str] = &[
    "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "uk", "tr", "ar", "hi", "th", "zh", "ja", "ko", "vi", "id", "sv",
    "cs", "ro", "da", "fi", "hu", "el", "he", "bg", "nb", "sk", "ca",
];

/// `rampart data`.
pub fn data(cmd: DataCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Generate(a) => {
            let mut rows = rampart_data::attacks::generate(a.count, a.seed);
            rows.extend(rampart_data::benign::generate(a.count, a.seed ^ 0x77));
            let code_roots: Vec<PathBuf> = [
                "usr/lib/python3",
                "usr/lib/python3.11",
                "usr/include",
                "usr/share/perl",
                "usr/share/perl5",
                "etc",
                "usr/share/doc",
                "usr/share/go-1.19",
                "usr/lib/ruby",
                "usr/include/eigen3",
                "usr/share/nodejs",
            ]
            .iter()
            .map(|r| a.root.join(r))
            .collect();
            let code = rampart_data::harvest::code(
                &code_roots,
                &[
                    ".py",
                    ".c",
                    ".h",
                    ".pm",
                    ".pl",
                    ".sh",
                    ".conf",
                    ".cfg",
                    ".ini",
                    ".yaml",
                    ".yml",
                    ".json",
                    ".txt",
                    ".md",
                    ".xml",
                    ".html",
                    ".go",
                    ".rb",
                    ".js",
                    ".mjs",
                    ".cpp",
                    ".hpp",
                    "copyright",
                    "README",
                ],
                a.count * 10,
                "harvest-code",
                a.seed ^ 0xc0de,
            );
            let l10n = rampart_data::harvest::translations(&a.root, HARVEST_LANGS, a.count / 2, a.seed ^ 0x110);
            let ui = rampart_data::harvest::ui_messages(&a.root, a.count * 3, a.seed ^ 0x0e11);
            eprintln!(
                "generated {} rows, harvested {} code/doc, {} translated and {} English UI rows from {}",
                rows.len(),
                code.len(),
                l10n.len(),
                ui.len(),
                a.root.display()
            );
            rows.extend(code);
            rows.extend(l10n);
            rows.extend(ui);
            let mut seen = std::collections::HashSet::new();
            rows.retain(|s| seen.insert(s.text.clone()));
            rampart_data::write_labelled(&a.out, &rows)?;
            println!("wrote {} rows to {}", rows.len(), a.out.display());
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::HeldoutCode(a) => {
            let roots = if a.root.is_empty() {
                let home = std::env::var_os("CARGO_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
                    .context("no CARGO_HOME or HOME")?;
                vec![home.join("registry/src")]
            } else {
                a.root.clone()
            };
            let rows =
                rampart_data::harvest::code(&roots, &[".rs", ".toml", ".md"], a.count, "heldout-code", 0x0ddba11);
            rampart_data::write_labelled(&a.out, &rows)?;
            println!("wrote {} rows to {}", rows.len(), a.out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Options of `rampart train semantic`.
#[derive(Debug, Args)]
pub struct SemanticTrainArgs {
    /// JSON Lines with `text`, `label`, `source` (repeat for several files).
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Embedding cache (created if missing).
    #[arg(long, default_value = "target/semantic/embeddings.bin")]
    cache: PathBuf,
    /// Where to write the head.
    #[arg(long, default_value = "crates/rampart-semantic/model/head.safetensors")]
    out: PathBuf,
    /// Where to write the fast path's model, trained on the same rows (the fusion is
    /// calibrated for this model, so the two are written together).
    #[arg(long, default_value = "crates/rampart-scan/model/injection.bin")]
    fast_out: PathBuf,
    /// Directory of adversarial-suffix pieces for the fast path's augmentation.
    #[arg(long)]
    components: Option<PathBuf>,
    /// Only compute and cache the embeddings.
    #[arg(long)]
    embed_only: bool,
}

/// How `rampart eval held-out` groups rows.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GroupBy {
    /// Source family (the part of `source` before the first `:` or `/`).
    Family,
    /// Language (`@xx` at the end of `source`, or the `lang` field); rows without one are
    /// always trained on.
    Language,
}

/// Options of `rampart eval held-out`.
#[derive(Debug, Args)]
pub struct HeldOutArgs {
    /// JSON Lines with `text`, `label`, `source` (repeat for several files).
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Leave out one family, or one language, at a time.
    #[arg(long, value_enum, default_value = "family")]
    by: GroupBy,
    /// Embedding cache.
    #[arg(long, default_value = "target/semantic/embeddings.bin")]
    cache: PathBuf,
    /// Hold out only these groups (default: every group).
    #[arg(long)]
    only: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Sample>> {
    let mut rows = Vec::new();
    for p in paths {
        rows.extend(rampart_data::read_labelled(p)?);
    }
    let mut seen = std::collections::HashSet::new();
    rows.retain(|s| seen.insert(s.text.clone()));
    Ok(rows)
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

fn embed(detector: &SemanticDetector, cache: &mut Cache, rows: &[Sample]) -> anyhow::Result<Vec<Bag>> {
    let texts: Vec<&str> = rows.iter().map(|s| s.text.as_str()).collect();
    let pb = bar(0, "embedding");
    let bags = cache.bags(detector, &texts, 48, |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    Ok(bags)
}

/// The suffix pieces: `dir`, or `components/` beside the first data file.
fn components(paths: &[PathBuf], dir: Option<&Path>) -> Vec<String> {
    dir.map(Path::to_path_buf)
        .or_else(|| paths.first().and_then(|p| p.parent()).map(|p| p.join("components")))
        .map(|d| rampart_data::read_components(&d))
        .unwrap_or_default()
}

/// `rampart train semantic`.
pub fn train_semantic(args: SemanticTrainArgs) -> anyhow::Result<ExitCode> {
    let rows = load(&args.data)?;
    let detector = SemanticDetector::embedded()?;
    eprintln!("{} rows; embedding what the cache lacks", rows.len());
    let mut cache = Cache::open(&args.cache)?;
    let bags = embed(&detector, &mut cache, &rows)?;
    if args.embed_only {
        println!("cached embeddings of {} rows in {}", rows.len(), args.cache.display());
        return Ok(ExitCode::SUCCESS);
    }
    let opts = FitOptions {
        components: components(&args.data, args.components.as_deref()),
        augment: 300,
        ..FitOptions::default()
    };
    let all: Vec<usize> = (0..rows.len()).collect();
    let started = std::time::Instant::now();
    let mut more = |s: &[Sample]| -> Result<Vec<Bag>, rampart_semantic::SemanticError> {
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        cache.bags(&detector, &texts, 48, |_, _| {})
    };
    let fitted = pipeline::fit(&rows, &bags, &all, &opts, &mut more)?;
    eprintln!("fitted in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, fitted.head.to_bytes()?)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    std::fs::write(&args.fast_out, fitted.fast.to_bytes())
        .with_context(|| format!("cannot write {}", args.fast_out.display()))?;
    println!("wrote {}", args.fast_out.display());
    let fast = rampart_scan::InjectionDetector::new(fitted.fast.clone());
    let (mut pos, mut neg, mut fpos, mut fneg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (s, b) in rows.iter().zip(&bags) {
        if !train::is_validation(&s.text) || !train::trainable(s) {
            continue;
        }
        let f = fast.score(&s.text, s.role());
        let p = fitted.head.fuse_bag(f, b);
        if s.label {
            pos.push(p);
            fpos.push(f);
        } else {
            neg.push(p);
            fneg.push(f);
        }
    }
    let tpr = |p: &[f32], n: &[f32]| {
        rampart_scan::eval::threshold_at_fpr(n, 0.01).map_or(f64::NAN, |t| rampart_scan::eval::rate_above(p, t))
    };
    println!("wrote {} (fusion {:?})", args.out.display(), fitted.head.fusion);
    println!(
        "validation ({} rows, in-distribution): fused ROC AUC {:.4}, TPR@1%FPR {:.4}; fast path alone {:.4}, {:.4}",
        pos.len() + neg.len(),
        rampart_scan::eval::roc_auc(&pos, &neg).unwrap_or(f64::NAN),
        tpr(&pos, &neg),
        rampart_scan::eval::roc_auc(&fpos, &fneg).unwrap_or(f64::NAN),
        tpr(&fpos, &fneg)
    );
    Ok(ExitCode::SUCCESS)
}

fn group_of(by: GroupBy, s: &Sample) -> Option<String> {
    match by {
        GroupBy::Family => Some(s.family().split(['/', '@']).next().unwrap_or("").to_owned()),
        GroupBy::Language => s.language().map(str::to_owned),
    }
}

/// `rampart eval held-out`.
pub fn held_out(args: HeldOutArgs) -> anyhow::Result<ExitCode> {
    let rows = load(&args.data)?;
    let detector = SemanticDetector::embedded()?;
    let mut cache = Cache::open(&args.cache)?;
    let bags = embed(&detector, &mut cache, &rows)?;
    let opts = FitOptions {
        components: components(&args.data, None),
        augment: 300,
        ..FitOptions::default()
    };
    let by = args.by;
    let only = args.only.clone();
    let group = move |s: &Sample| group_of(by, s).filter(|g| only.is_empty() || only.contains(g));
    let mut more = |s: &[Sample]| -> Result<Vec<Bag>, rampart_semantic::SemanticError> {
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        cache.bags(&detector, &texts, 48, |_, _| {})
    };
    let thresholds = rampart_policy::ScanPolicy::default_policy().input.injection.thresholds;
    let at = |s: &Sample| thresholds.for_role(s.role());
    let results = pipeline::leave_one_out(&rows, &bags, group, at, &opts, &mut more, |g| {
        eprintln!("holding out {g}")
    })?;
    println!(
        "leave-one-{:?}-out: both tiers trained without the group; threshold = 1% FPR on the",
        by
    );
    println!("other groups' validation negatives; fused = fast path + semantic tier");
    println!(
        "  {:<22} {:>5} {:>5} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "held out", "pos", "neg", "TPR", "FPR", "fast TPR", "fast FPR", "policy TPR", "policy FPR"
    );
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.3}"));
    let (mut pp, mut pn, mut fp, mut fne) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in &results {
        println!(
            "  {:<22} {:>5} {:>5} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
            r.group,
            r.positives,
            r.negatives,
            f(r.tpr),
            f(r.fpr),
            f(r.fast_tpr),
            f(r.fast_fpr),
            f(r.policy_tpr),
            f(r.policy_fpr)
        );
        pp.extend(&r.scores.0);
        pn.extend(&r.scores.1);
        fp.extend(&r.fast_scores.0);
        fne.extend(&r.fast_scores.1);
    }
    let pooled = |p: &[f32], n: &[f32]| {
        (
            rampart_scan::eval::roc_auc(p, n),
            rampart_scan::eval::threshold_at_fpr(n, 0.01).map(|t| rampart_scan::eval::rate_above(p, t)),
        )
    };
    let (auc, tpr) = pooled(&pp, &pn);
    let (fauc, ftpr) = pooled(&fp, &fne);
    println!(
        "pooled held-out scores: fused ROC AUC {}, TPR@1%FPR {}; fast path alone {}, {}",
        f(auc),
        f(tpr),
        f(fauc),
        f(ftpr)
    );
    if args.json {
        println!(
            "{}",
            json!({"by": format!("{by:?}").to_lowercase(), "groups": results, "pooled": {"roc_auc": auc, "tpr_at_1pct_fpr": tpr, "fast_roc_auc": fauc, "fast_tpr_at_1pct_fpr": ftpr}})
        );
    }
    Ok(ExitCode::SUCCESS)
}

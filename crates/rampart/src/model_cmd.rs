//! `rampart model ...`: supply-chain checks on model files.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use rampart_supply::pickle::policy::Allow;
use rampart_supply::report::Severity;
use rampart_supply::scan::{Options, Scanner};

/// Model supply-chain commands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Scan model files for code that runs when they are loaded.
    ///
    /// Formats are recognised from content, never from the file name: pickles (protocols 0-5,
    /// alone, in PyTorch zip/tar/legacy files, joblib files, compressed with gzip/bz2/xz/lzma/
    /// lz4/zlib, NumPy object arrays), zip archives read as PyTorch reads them (every anomaly
    /// reported), tar, safetensors, GGUF (metadata bounds, chat-template sandbox escapes),
    /// Keras `.keras` and `.h5` configs. Pickles are run through a static pickle machine that
    /// executes nothing; every imported global not on the allowlist is a finding.
    ///
    /// Exit status: 0 clean, 1 findings at or above --fail-on, 2 an error (a file could not
    /// be read) and no such finding. Findings are always reported, errors or not.
    ///
    /// Examples:
    ///   rampart model scan ./models
    ///   rampart model scan model.bin --format sarif --output scan.sarif
    ///   rampart model scan ckpt/ --allow 'sklearn.*' --fail-on high
    Scan(ScanArgs),
}

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A readable table.
    Table,
    /// The full report as JSON.
    Json,
    /// SARIF 2.1.0 for code-scanning dashboards.
    Sarif,
}

/// Options of `rampart model scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories (scanned recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the report here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Allow a global (`module.name`) or a module tree (`module.*`) in pickles. Repeatable.
    /// Known-dangerous globals (os, subprocess, eval, ...) cannot be allowed.
    #[arg(long, value_name = "GLOBAL")]
    pub allow: Vec<String>,
    /// Lowest severity that fails the scan (exit 1): info, low, medium, high, critical.
    #[arg(long, default_value = "low", value_parser = parse_severity)]
    pub fail_on: Severity,
    /// Lowest severity shown in the report.
    #[arg(long, default_value = "low", value_parser = parse_severity)]
    pub show: Severity,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("`{s}` is not one of info, low, medium, high, critical"))
}

/// Runs a model command.
pub fn run(cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelCommand::Scan(args) => scan(args),
    }
}

fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let scanner = Scanner::new(Options {
        allow: Allow::new(&args.allow),
        ..Options::default()
    });
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };
    let report = scanner.scan_paths(&args.paths, &mut |p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("{}/{} files", p.files_done, p.files_total));
    });
    bar.finish_and_clear();
    let rendered = match args.format {
        Format::Table => report.to_table(args.show),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Sarif => serde_json::to_string_pretty(&report.to_sarif(args.show))? + "\n",
    };
    match &args.output {
        Some(path) => std::fs::write(path, rendered).with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().write_all(rendered.as_bytes())?,
    }
    if report.count_at_least(args.fail_on) > 0 {
        return Ok(ExitCode::from(1));
    }
    if report.errors() > 0 {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

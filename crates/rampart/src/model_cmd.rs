//! `rampart model ...`: supply-chain checks on model files.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use rampart_supply::pickle::policy::Allow;
use rampart_supply::report::Severity;
use rampart_supply::scan::{Options, Scanner};
use rampart_supply::signing::certs::{certificates_from_pem, TrustStore};
use rampart_supply::signing::keys::{PublicKey, SigningKey};
use rampart_supply::signing::manifest::{HashAlg, Method, Serialization};
use rampart_supply::signing::{self, Problem, SignError, SignedBy, Signer, Trust, VerifyOptions};

/// Model supply-chain commands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Scan model files for code that runs when they are loaded.
    ///
    /// Formats are recognised from content, never from the file name: pickles (protocols 0-5,
    /// alone, in PyTorch zip/tar/legacy files, joblib files, compressed with gzip/bz2/xz/lzma/
    /// lz4/zlib, NumPy object arrays), zip archives read as PyTorch reads them (every anomaly
    /// reported), tar, safetensors, GGUF (metadata bounds, chat-template sandbox escapes),
    /// Keras `.keras` and `.h5` configs, ONNX (external data outside the model directory,
    /// custom operator domains, subgraphs), TensorFlow SavedModel (file I/O and Python ops), and
    /// members of zip, tar and 7z archives. Pickles are run through a static pickle machine that
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
    /// Sign a model directory (OpenSSF model-signing v1.0 format).
    ///
    /// Every file (or, with --shard-size, every shard of every file) is hashed and listed in an
    /// in-toto statement, signed with an ECDSA P-256/P-384 key inside a DSSE envelope, and
    /// written as a Sigstore bundle. The signature verifies with `model_signing verify key`
    /// (or `certificate`) from the `model-signing` Python package, and with `rampart model
    /// verify`. Git files (.git, .gitattributes, .github, .gitignore) and the signature file
    /// itself are left out and recorded as left out.
    ///
    /// Examples:
    ///   rampart model sign ./bert --private-key signer.pem
    ///   rampart model sign ./bert --private-key signer.pem --signing-certificate signer.crt \
    ///       --certificate-chain intermediate.crt --signature bert.sig
    ///   rampart model sign ./llama --private-key k.pem --hash blake2b --shard-size 1000000000
    Sign(SignArgs),
    /// Verify a model directory against its signature.
    ///
    /// Fails (exit 1) when the signature does not verify with the trusted key or certificate
    /// chain, or when any signed file is changed or missing, or any file is present but not
    /// signed. Files that the signer left out (the signature's own ignore list) are failures too
    /// unless --accept-signed-ignores is given, so a signature cannot quietly widen what goes
    /// unchecked. Exit 2: an error (unreadable key or file).
    ///
    /// Examples:
    ///   rampart model verify ./bert --public-key signer.pub
    ///   rampart model verify ./bert --certificate-chain root.crt --format json
    Verify(VerifyArgs),
}

/// Options of `rampart model sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The model directory (or a single file).
    pub model: PathBuf,
    /// Where to write the signature [default: MODEL/model.sig, or FILE.sig for a file].
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// PEM private key: PKCS#8, encrypted PKCS#8 or SEC1; ECDSA P-256 or P-384.
    #[arg(long, value_name = "PEM")]
    pub private_key: PathBuf,
    /// Environment variable holding the private key's password.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Certificate mode: the PEM certificate of the signing key.
    #[arg(long, value_name = "PEM")]
    pub signing_certificate: Option<PathBuf>,
    /// Certificate mode: the rest of the chain (intermediates), PEM. Repeatable.
    #[arg(long, value_name = "PEM", requires = "signing_certificate")]
    pub certificate_chain: Vec<PathBuf>,
    /// Content hash.
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash: HashArg,
    /// Sign shards of this many bytes instead of whole files (model-signing's `shards`).
    #[arg(long, value_name = "BYTES")]
    pub shard_size: Option<u64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options shared by sign and verify.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Leave this path out (relative to the model directory, or absolute inside it). Repeatable.
    #[arg(long = "ignore-paths", value_name = "PATH")]
    pub ignore_paths: Vec<PathBuf>,
    /// Do not leave out .git, .gitattributes, .github and .gitignore.
    #[arg(long)]
    pub no_ignore_git_paths: bool,
    /// Follow symbolic links (refused by default).
    #[arg(long)]
    pub allow_symlinks: bool,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
}

/// Content hashes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HashArg {
    /// SHA-256.
    Sha256,
    /// BLAKE2b-512.
    Blake2b,
}

/// Options of `rampart model verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The model directory (or a single file).
    pub model: PathBuf,
    /// The signature [default: MODEL/model.sig, or FILE.sig for a file].
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// Key mode: the signer's PEM public key.
    #[arg(
        long,
        value_name = "PEM",
        required_unless_present = "certificate_chain",
        conflicts_with = "certificate_chain"
    )]
    pub public_key: Option<PathBuf>,
    /// Certificate mode: PEM certificates trusted to root the signer's chain. Repeatable.
    #[arg(long, value_name = "PEM")]
    pub certificate_chain: Vec<PathBuf>,
    /// Hash only the files the signature lists; report other files instead of failing.
    #[arg(long)]
    pub ignore_unsigned_files: bool,
    /// Accept files that the signature itself leaves out (they are listed in the output).
    #[arg(long)]
    pub accept_signed_ignores: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: VerifyFormat,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Verify output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VerifyFormat {
    /// Readable lines.
    Text,
    /// One JSON object.
    Json,
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
        ModelCommand::Sign(args) => sign(args),
        ModelCommand::Verify(args) => verify(args),
    }
}

fn default_signature(model: &Path) -> PathBuf {
    if model.is_dir() {
        model.join("model.sig")
    } else {
        let mut name = model.as_os_str().to_owned();
        name.push(".sig");
        PathBuf::from(name)
    }
}

fn hashing_bar(quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} hashed {bytes} {binary_bytes_per_sec} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn ignore_of(common: &CommonArgs) -> signing::Ignore {
    signing::Ignore {
        paths: common.ignore_paths.clone(),
        git: !common.no_ignore_git_paths,
    }
}

fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let password = match &args.password_env {
        Some(var) => Some(std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?),
        None => None,
    };
    let pem = String::from_utf8(read(&args.private_key)?).context("the private key is not PEM text")?;
    let key = SigningKey::from_pem(&pem, password.as_deref())
        .with_context(|| format!("cannot use {}", args.private_key.display()))?;
    let signer = match &args.signing_certificate {
        None => Signer::Key(key),
        Some(cert) => {
            let mut chain = certificates_from_pem(&read(cert)?)?;
            chain.truncate(1);
            for extra in &args.certificate_chain {
                chain.extend(certificates_from_pem(&read(extra)?)?);
            }
            Signer::Certificate { key, chain }
        }
    };
    let serialization = Serialization {
        method: match args.shard_size {
            None => Method::Files,
            Some(0) => anyhow::bail!("--shard-size must be positive"),
            Some(size) => Method::Shards { size },
        },
        hash: match args.hash {
            HashArg::Sha256 => HashAlg::Sha256,
            HashArg::Blake2b => HashAlg::Blake2b,
        },
        allow_symlinks: args.common.allow_symlinks,
        ignore_paths: Vec::new(),
    };
    let signature = args.signature.clone().unwrap_or_else(|| default_signature(&args.model));
    let bar = hashing_bar(args.common.quiet);
    let started = std::time::Instant::now();
    let signed = signing::sign(
        &args.model,
        &signature,
        &serialization,
        &ignore_of(&args.common),
        &signer,
        &|n| bar.inc(n),
    );
    bar.finish_and_clear();
    let signed = signed?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "signed {} ({} {}, {:.1} MB in {:.2} s, {:.0} MB/s) -> {}",
        args.model.display(),
        signed.items,
        if args.shard_size.is_some() { "shards" } else { "files" },
        signed.bytes as f64 / 1e6,
        secs,
        signed.bytes as f64 / 1e6 / secs.max(1e-9),
        signature.display()
    );
    if !signed.ignore_paths.is_empty() {
        println!(
            "left out (recorded in the signature): {}",
            signed.ignore_paths.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let trust = match &args.public_key {
        Some(path) => {
            let pem = String::from_utf8(read(path)?).context("the public key is not PEM text")?;
            Trust::Key(PublicKey::from_pem(&pem).with_context(|| format!("cannot use {}", path.display()))?)
        }
        None => {
            let texts = args
                .certificate_chain
                .iter()
                .map(|p| read(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Trust::Certificates(TrustStore::from_pem(&texts)?)
        }
    };
    let signature = args.signature.clone().unwrap_or_else(|| default_signature(&args.model));
    let options = VerifyOptions {
        ignore: ignore_of(&args.common),
        ignore_unsigned_files: args.ignore_unsigned_files,
        accept_signed_ignores: args.accept_signed_ignores,
        allow_symlinks: args.common.allow_symlinks,
    };
    let bar = hashing_bar(args.common.quiet);
    let result = signing::verify(&args.model, &signature, &trust, &options, &|n| bar.inc(n));
    bar.finish_and_clear();
    let outcome = match result {
        Ok(v) => v,
        Err(e @ (SignError::Io { .. } | SignError::Key(_))) => return Err(e.into()),
        Err(e) => {
            match args.format {
                VerifyFormat::Json => println!("{}", serde_json::json!({"verified": false, "error": e.to_string()})),
                VerifyFormat::Text => println!("NOT verified: {e}"),
            }
            return Ok(ExitCode::from(1));
        }
    };
    match args.format {
        VerifyFormat::Json => {
            let mut v = serde_json::to_value(&outcome)?;
            if let Some(map) = v.as_object_mut() {
                map.insert("verified".into(), outcome.verified().into());
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        VerifyFormat::Text => print_verification(&args.model, &outcome),
    }
    Ok(if outcome.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_verification(model: &Path, v: &signing::Verification) {
    let signer = match &v.signed_by {
        SignedBy::Key { algorithm, hint } => format!("{algorithm} key {}", hint.get(..16).unwrap_or(hint)),
        SignedBy::Certificate(c) => format!("certificate {} (issued by {})", c.subject, c.issuer),
    };
    if v.verified() {
        println!(
            "verified {}: {} {} match the signature ({}, {:.1} MB), signed by {signer}",
            model.display(),
            v.signed_items,
            v.method,
            v.algorithm,
            v.bytes as f64 / 1e6
        );
    } else {
        println!(
            "NOT verified {}: {} problem(s); signature by {signer} is valid",
            model.display(),
            v.problems.len()
        );
        for p in v.problems.iter().take(200) {
            match p {
                Problem::Changed(n) => println!("  changed   {n}"),
                Problem::Missing(n) => println!("  missing   {n}"),
                Problem::Added(n) => println!("  unsigned  {n} (present, not in the signature)"),
                Problem::ExcludedBySignature(n) => println!(
                    "  excluded  {n} (the signer left it out; --ignore-paths it or pass --accept-signed-ignores)"
                ),
            }
        }
        if v.problems.len() > 200 {
            println!("  ... and {} more", v.problems.len() - 200);
        }
    }
    for n in &v.accepted_signature_ignores {
        println!("warning: {n} is not covered by the signature (left out by the signer, accepted)");
    }
    for n in &v.ignored_unsigned_files {
        println!("warning: {n} is not covered by the signature (--ignore-unsigned-files)");
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

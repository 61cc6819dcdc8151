//! `rampart audit ...`: verify, search, export, erase, retain, rotate-key, checkpoint and
//! public-key, working on the ledger the config names (SQLite file or PostgreSQL) directly,
//! so an auditor needs no running gateway.

use crate::terminal::escape;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rampart_audit::backend::Filter;
use rampart_audit::{Ledger, Signer};
use rampart_policy::Config;

/// Audit ledger commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole ledger: every record's hash, every link, every payload digest, every
    /// checkpoint signature. Names the first record that was changed, removed, inserted or
    /// reordered. Exit status: 0 intact, 1 tampered, 2 error.
    ///
    /// Pass checkpoints kept elsewhere with `--checkpoints` to detect a truncated tail too.
    Verify(VerifyArgs),
    /// List records matching filters (metadata only).
    Search(SearchArgs),
    /// Write records as JSON Lines, streaming; `--decrypt` opens payloads with the master key.
    Export(ExportArgs),
    /// Crypto-shred a data subject: destroy their data keys, so their stored payloads can never
    /// be read again, while the chain still verifies. The erasure is itself recorded.
    Erase(EraseArgs),
    /// Drop payloads older than the retention period (records keep their metadata).
    Retain(RetainArgs),
    /// Re-wrap every data key under the current master key (the old one must still be
    /// configured in `old_master_key_files`); records are not rewritten.
    RotateKey(CommonArgs),
    /// Sign a checkpoint over the current head now and print it (and append it to a file).
    Checkpoint(CheckpointArgs),
    /// Print the checkpoint public key (hex) for auditors to keep.
    PublicKey(CommonArgs),
}

/// Where the ledger is.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Configuration file whose `[audit]` section names the ledger.
    #[arg(short, long, env = "RAMPART_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory, overriding `server.data_dir`.
    #[arg(long, env = "RAMPART_DATA_DIR")]
    data_dir: Option<String>,
}

/// `verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Checkpoints kept outside the ledger (JSON Lines, as written by `checkpoint_export`).
    #[arg(long)]
    checkpoints: Vec<PathBuf>,
    /// Trusted checkpoint public key(s), hex; default: the `.pub` beside the signing key.
    #[arg(long)]
    public_key: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Record filters.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Principal, e.g. `key:k_abc` or `user:alice`.
    #[arg(long)]
    principal: Option<String>,
    /// Data subject (user id).
    #[arg(long)]
    subject: Option<String>,
    /// Model as requested.
    #[arg(long)]
    model: Option<String>,
    /// `allowed`, `refused`, `blocked`, `failed`, `cancelled`, or an admin action such as `key.create`.
    #[arg(long)]
    decision: Option<String>,
    /// A detector (`pii`) or detector:type (`pii:email`).
    #[arg(long)]
    finding: Option<String>,
    /// `exchange` or `admin`.
    #[arg(long)]
    kind: Option<String>,
    /// From: RFC 3339 time (`2026-11-22T10:00:00Z`), or an age such as `2h` or `7d`.
    #[arg(long)]
    since: Option<String>,
    /// Until (exclusive), same forms.
    #[arg(long)]
    until: Option<String>,
}

/// `search` options.
#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// At most this many records.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// `export` options.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Write here instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Decrypt payloads (needs the master key: `[audit] master_key_env` or `master_key_file`).
    #[arg(long)]
    decrypt: bool,
}

/// `erase` options.
#[derive(Debug, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The data subject (user id or pseudonym) to erase.
    #[arg(long)]
    subject: String,
    /// Who asks, for the audit record.
    #[arg(long, env = "USER", default_value = "unknown")]
    actor: String,
}

/// `retain` options.
#[derive(Debug, Args)]
pub struct RetainArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Keep payloads this many days (default: `[audit] retention_days`).
    #[arg(long)]
    days: Option<u64>,
}

/// `checkpoint` options.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Also append it to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn load(common: &CommonArgs) -> anyhow::Result<Config> {
    let mut config = match &common.config {
        Some(p) => Config::from_file(&p.display().to_string())?,
        None => Config::default(),
    };
    if let Some(d) = &common.data_dir {
        config.server.data_dir = d.clone();
    }
    Ok(config)
}

fn location(config: &Config) -> anyhow::Result<rampart_audit::Location> {
    Ok(rampart_gateway::audit::location(
        &config.audit,
        std::path::Path::new(&config.server.data_dir),
    )?)
}

fn signing_key(config: &Config) -> PathBuf {
    rampart_gateway::audit::signing_key_path(&config.audit, std::path::Path::new(&config.server.data_dir))
}

fn open_ledger(config: &Config) -> anyhow::Result<Ledger> {
    let signer = Signer::load_or_create(&signing_key(config))?;
    let keys = rampart_gateway::audit::master_keys(&config.audit)?;
    let mut options = rampart_gateway::audit::options(&config.audit);
    options.durability = rampart_audit::Durability::Sync;
    Ok(Ledger::open(location(config)?, options, signer, keys, None)?)
}

fn parse_time(s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(age) = humantime::parse_duration(s) {
        return Ok(rampart_audit::now_ms() - age.as_millis() as i64);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .with_context(|| format!("`{s}` is neither a time (RFC 3339), an age (`2h`) nor unix milliseconds"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

impl FilterArgs {
    fn filter(&self) -> anyhow::Result<Filter> {
        Ok(Filter {
            principal: self.principal.clone(),
            subject: self.subject.clone(),
            model: self.model.clone(),
            decision: self.decision.clone(),
            finding: self.finding.clone(),
            kind: self.kind.clone(),
            chain: None,
            since_ms: self.since.as_deref().map(parse_time).transpose()?,
            until_ms: self.until.as_deref().map(parse_time).transpose()?,
        })
    }
}

/// Runs an audit command (on a blocking thread: the store clients are synchronous).
pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(a) => verify(a),
        AuditCommand::Search(a) => search(a),
        AuditCommand::Export(a) => export(a),
        AuditCommand::Erase(a) => {
            let config = load(&a.common)?;
            let ledger = open_ledger(&config)?;
            let n = ledger.blocking().erase(&a.subject, &format!("cli:{}", a.actor))?;
            println!(
                "erased subject `{}`: {n} data key(s) destroyed; their payloads can no longer be decrypted",
                a.subject
            );
            if config.audit.backend == rampart_policy::AuditBackend::Sqlite {
                eprintln!(
                    "note: a running gateway may hold the key in memory for up to 30 s; POST /admin/audit/erase erases there at once"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Retain(a) => {
            let config = load(&a.common)?;
            let days = a.days.unwrap_or(config.audit.retention_days);
            if days == 0 {
                bail!("no retention period: pass --days or set [audit] retention_days");
            }
            let ledger = open_ledger(&config)?;
            let before = rampart_audit::now_ms() - (days as i64).saturating_mul(86_400_000);
            let n = ledger.blocking().retain(before, "cli:retention")?;
            println!("dropped {n} payload(s) older than {days} day(s); their records and the chain are intact");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::RotateKey(common) => {
            let config = load(&common)?;
            let ledger = open_ledger(&config)?;
            let n = ledger.blocking().rotate_master_key("cli:rotate-key")?;
            println!("re-wrapped {n} data key(s) under the current master key; no record was rewritten");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint(a) => {
            let config = load(&a.common)?;
            let ledger = open_ledger(&config)?;
            match ledger.blocking().checkpoint()? {
                Some(cp) => {
                    if let Some(out) = &a.out {
                        rampart_audit::checkpoint::export_to_file(out, &cp)?;
                    }
                    println!("{}", serde_json::to_string(&cp)?);
                }
                None => eprintln!("the ledger is empty: nothing to sign"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::PublicKey(common) => {
            let config = load(&common)?;
            println!("{}", Signer::load_or_create(&signing_key(&config))?.public_hex());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = load(&a.common)?;
    let mut trusted = Vec::new();
    for k in &a.public_key {
        let text = match k.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read `{path}`"))?,
            None => k.clone(),
        };
        trusted.push(rampart_audit::checkpoint::parse_public(&text)?);
    }
    if trusted.is_empty() {
        let public = signing_key(&config).with_extension("pub");
        let text = std::fs::read_to_string(&public).with_context(|| {
            format!(
                "no --public-key given and `{}` cannot be read; pass the key you kept",
                public.display()
            )
        })?;
        trusted.push(rampart_audit::checkpoint::parse_public(&text)?);
    }
    let mut external = Vec::new();
    for p in &a.checkpoints {
        external.extend(rampart_audit::checkpoint::read_exported(p)?);
    }
    let location = location(&config)?;
    let mut backend = location.open_existing()?;
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let report = rampart_audit::verify(backend.as_mut(), &trusted, &external, |n| {
        if tty {
            eprint!(
                "\rverifying: {n} records ({:.0}/s)",
                n as f64 / started.elapsed().as_secs_f64().max(1e-3)
            );
        }
    })?;
    if tty {
        eprintln!();
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"ok": report.ok(), "store": location.describe(), "report": report})
            )?
        );
    } else {
        for c in &report.chains {
            println!(
                "chain `{}`: {} records (head {}), {} checkpoint(s) verified, {} payload(s) present",
                c.chain, c.records, c.head_seq, c.checkpoints_ok, c.payloads
            );
        }
        if report.ok() {
            println!("ledger intact ({})", location.describe());
        }
        for p in &report.problems {
            println!(
                "TAMPERED chain `{}` record {}: {:?}: {}",
                p.chain, p.seq, p.kind, p.detail
            );
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn search(a: SearchArgs) -> anyhow::Result<ExitCode> {
    let config = load(&a.common)?;
    let filter = a.filter.filter()?;
    let mut backend = location(&config)?.open_existing()?;
    let mut renderer = rampart_audit::export::Renderer::new(None);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !a.json {
        writeln!(
            out,
            "{:<8} {:<24} {:<9} {:<24} {:<20} {:<10} FINDINGS",
            "SEQ", "TIME", "KIND", "PRINCIPAL", "MODEL", "DECISION"
        )?;
    }
    let n = rampart_audit::export::for_each(backend.as_mut(), &filter, Some(a.limit), |b, r| {
        let io = |e: std::io::Error| rampart_audit::AuditError::Export(e.to_string());
        if a.json {
            let v = renderer.render(b, r)?;
            writeln!(out, "{v}").map_err(io)
        } else {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.ts_ms.max(0) as u64);
            let time = humantime::format_rfc3339_millis(t).to_string();
            writeln!(
                out,
                "{:<8} {:<24} {:<9} {:<24} {:<20} {:<10} {}",
                r.seq,
                time,
                escape(&r.kind),
                escape(&r.principal),
                escape(&r.model),
                escape(&r.decision),
                escape(&r.findings.replace('\n', ","))
            )
            .map_err(io)
        }
    })?;
    if !a.json {
        eprintln!("{n} record(s)");
    }
    Ok(ExitCode::SUCCESS)
}

fn export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let config = load(&a.common)?;
    let filter = a.filter.filter()?;
    let keys = if a.decrypt {
        Some(rampart_gateway::audit::master_keys(&config.audit)?.with_context(|| {
            format!(
                "--decrypt needs the master key in ${} or [audit] master_key_file",
                config.audit.master_key_env
            )
        })?)
    } else {
        None
    };
    let mut backend = location(&config)?.open_existing()?;
    let mut sink: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create `{}`", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let n = rampart_audit::export::export_jsonl(backend.as_mut(), &filter, keys.as_deref(), None, &mut sink)?;
    sink.flush()?;
    eprintln!("exported {n} record(s)");
    Ok(ExitCode::SUCCESS)
}

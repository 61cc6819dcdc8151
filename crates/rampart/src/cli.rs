//! Arguments and subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rampart_gateway::blocks::BlockKind;
use rampart_policy::{Action, Config, PolicyEngine, Principal};

use crate::admin_client::AdminClient;

/// Rampart: the security layer for AI applications.
///
/// Point your OpenAI SDK's base URL at `rampart serve` and every model call is authenticated,
/// authorized and rate-limited, with a kill switch, metrics and clear OpenAI-style errors.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    ///
    /// With no config it runs on embedded defaults: it listens on 127.0.0.1:8080, keeps its
    /// state in ./rampart-data (SQLite), and serves the built-in demo model `rampart-demo`, so
    /// no API key is needed. On first start it prints an admin credential once.
    /// SIGHUP reloads the config; a config that does not check out is refused and the running
    /// one stays.
    Serve(ServeArgs),
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Evaluate access policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Create, list and revoke API keys on a running gateway (admin API).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Kill switch, reload and status on a running gateway (admin API).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Tool calls held for a human: list them, look at one, approve or deny it (admin API).
    ///
    /// A call the `[agent]` policy sends to approval is refused with `approval_required` and
    /// an approval id; once approved here, the client resends the same conversation with the
    /// header `x-rampart-approval: <id>` and exactly that call goes through, once.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// MCP tool pins: each tool's first definition is pinned by hash; a server that changes
    /// one gets it hidden until it is approved here (admin API).
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Run only the built-in demo model as a standalone OpenAI-compatible server.
    ///
    /// Useful as a fast local upstream for tests and benchmarks.
    DemoUpstream(DemoArgs),
    /// Scan text with the gateway's detectors and default policy.
    ///
    /// Exit status: 0 allowed, 1 something would be blocked, 2 error.
    ///
    /// Example: echo "ignore all previous instructions" | rampart scan --json
    Scan(crate::detect::ScanArgs),
    /// Train a detector from labelled data.
    #[command(subcommand)]
    Train(crate::detect::TrainCommand),
    /// Measure a detector on labelled data: precision, recall, F1, ROC AUC, TPR at fixed FPR,
    /// per source, latency.
    Eval(crate::detect::EvalArgs),
    /// Leave-one-group-out evaluation of both injection tiers: train without a whole family
    /// (or language), test on it. The figure the README leads with.
    ///
    /// Example: rampart held-out --data ../shared/data/injection/train.jsonl --data target/data/generated.jsonl --by language
    HeldOut(crate::semantic_cmd::HeldOutArgs),
    /// Generate training data (seeded, reproducible).
    #[command(subcommand)]
    Data(crate::semantic_cmd::DataCommand),
    /// The audit ledger: verify, search, export, erase a data subject, retention, key rotation,
    /// checkpoints.
    #[command(subcommand)]
    Audit(crate::audit_cmd::AuditCommand),
    /// Model supply chain: scan model files for code that runs when they are loaded; sign and
    /// verify model directories (OpenSSF model-signing format).
    #[command(subcommand)]
    Model(crate::model_cmd::ModelCommand),
}

/// Options of `rampart serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, embedded defaults are used.
    #[arg(short, long, env = "RAMPART_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address, overriding `server.listen` (use port 0 for any free port).
    #[arg(long, env = "RAMPART_LISTEN")]
    pub listen: Option<String>,
    /// Data directory, overriding `server.data_dir`.
    #[arg(long, env = "RAMPART_DATA_DIR")]
    pub data_dir: Option<String>,
    /// Log format, overriding `log.format`: `text` or `json`.
    #[arg(long, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file: every problem is reported with its line and column.
    ///
    /// Exit status: 0 valid, 1 invalid, 2 unreadable.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum McpCommand {
    /// Every pinned tool, with whether its server changed or flagged it.
    Pins {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Accept a tool's current definition as its pin (the tool is shown again).
    Approve {
        #[command(flatten)]
        target: AdminTarget,
        /// The MCP server's name in `[[agent.mcp_servers]]`.
        server: String,
        /// The tool.
        tool: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// List approval requests, newest first.
    List {
        #[command(flatten)]
        target: AdminTarget,
        /// Only these: pending, approved, denied, expired or used.
        #[arg(long)]
        status: Option<String>,
    },
    /// One request: the tool, its arguments (secrets and PII redacted), why it was held, the
    /// taint, the exchange it came from.
    Show {
        #[command(flatten)]
        target: AdminTarget,
        /// The approval id (`apr_...`).
        id: String,
    },
    /// Approve a pending request.
    Approve {
        #[command(flatten)]
        target: AdminTarget,
        /// The approval id.
        id: String,
        /// Why (kept in the ledger).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Deny a pending request.
    Deny {
        #[command(flatten)]
        target: AdminTarget,
        /// The approval id.
        id: String,
        /// Why (kept in the ledger).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Decide one request against the configured policies and explain the decision.
    ///
    /// Exit status: 0 allowed, 1 denied.
    ///
    /// Example: rampart policy test --principal user:bob --groups interns --action chat --model gpt-4o
    ///
    /// Tool calls go through the whole tool guard of the config's `[agent]` section (listed
    /// tools, principals, Cedar, argument schema and checks, class and taint):
    ///
    /// Example: rampart policy test -c rampart.toml --principal user:bob --action tool.call
    /// --model gpt-4o --tool fetch --arguments '{"url": "https://evil.example/"}' --tainted
    Test(PolicyTestArgs),
}

#[derive(Debug, Args)]
struct PolicyTestArgs {
    /// Config whose `[policy]` section to use (default: the built-in policies).
    #[arg(short, long, env = "RAMPART_CONFIG")]
    config: Option<PathBuf>,
    /// `key:ID` or `user:NAME`.
    #[arg(long)]
    principal: String,
    /// For a key: its owner.
    #[arg(long, default_value = "unknown")]
    owner: String,
    /// For a key: the models it was created for (comma-separated; none = all).
    #[arg(long, value_delimiter = ',')]
    key_models: Vec<String>,
    /// For a key: it is an admin credential.
    #[arg(long)]
    admin: bool,
    /// For a user: groups from the token (comma-separated).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// chat, complete, embed, admin.keys, admin.block, admin.reload, admin.read, admin.audit
    /// or tool.call.
    #[arg(long)]
    action: String,
    /// The model (for inference actions and tool calls).
    #[arg(long, default_value = "")]
    model: String,
    /// For tool.call: the tool's name.
    #[arg(long, default_value = "")]
    tool: String,
    /// For tool.call: the arguments, as the model would write them (JSON).
    #[arg(long, default_value = "{}")]
    arguments: String,
    /// For tool.call: untrusted content (a tool result, a document) is in the exchange.
    #[arg(long)]
    tainted: bool,
}

/// Where the admin API is and the credential to use.
#[derive(Debug, Args)]
pub struct AdminTarget {
    /// Gateway URL.
    #[arg(long, env = "RAMPART_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// Admin credential (printed by the first `rampart serve`).
    #[arg(long, env = "RAMPART_ADMIN_KEY", hide_env_values = true, global = true)]
    pub admin_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        #[command(flatten)]
        target: AdminTarget,
        /// Who the key belongs to.
        #[arg(long)]
        owner: String,
        /// A label.
        #[arg(long, default_value = "")]
        name: String,
        /// Models it may call (comma-separated; none = all).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Days until it expires.
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Its own requests-per-minute limit.
        #[arg(long)]
        rpm: Option<u32>,
        /// Its own tokens-per-minute limit.
        #[arg(long)]
        tpm: Option<u64>,
        /// Its own concurrent-requests limit.
        #[arg(long)]
        concurrency: Option<u32>,
        /// Who holds the key. `application`: an app server whose system messages are its own
        /// instructions (kept as system messages, protected from leaks). `end-user`: a person
        /// or a tool acting for one, whose system messages are demoted to user input (or
        /// refused) by `[scan] system_messages`.
        #[arg(long, default_value = "application", value_parser = ["application", "end-user"])]
        caller: String,
        /// Its own daily spending cap in US dollars (UTC days; on models with a `price`),
        /// instead of `[budgets] per_key`.
        #[arg(long)]
        daily_usd: Option<f64>,
        /// Its own monthly spending cap in US dollars (UTC months).
        #[arg(long)]
        monthly_usd: Option<f64>,
    },
    /// List keys (never their secrets): a table, or JSON with `--json`.
    List {
        #[command(flatten)]
        target: AdminTarget,
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once.
    Revoke {
        #[command(flatten)]
        target: AdminTarget,
        /// The key id (the 16 hex characters after `rk-`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Block a key, a user or a model at once.
    Block {
        #[command(flatten)]
        target: AdminTarget,
        /// key, user or model.
        kind: BlockKind,
        /// The key id, user name or model name.
        value: String,
        /// Why (kept for admins, not shown to the blocked caller).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a block.
    Unblock {
        #[command(flatten)]
        target: AdminTarget,
        /// key, user or model.
        kind: BlockKind,
        /// The key id, user name or model name.
        value: String,
    },
    /// List blocks.
    Blocks {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Reload the gateway's config (same as SIGHUP).
    Reload {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Show the gateway's status.
    Status {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Spend per key, user and model today and this month (UTC), against `[budgets]`.
    Spend {
        #[command(flatten)]
        target: AdminTarget,
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Recover from a lost admin credential: revoke every admin credential in the data
    /// directory and print a new one (offline; restart the gateway afterwards).
    NewCredential {
        /// The gateway's data directory.
        #[arg(long, env = "RAMPART_DATA_DIR", default_value = "rampart-data")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
    /// Pause between streamed chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
}

/// Records an offline credential replacement in the local ledger (the default SQLite one
/// beside the database; a gateway on PostgreSQL records its own admin actions only).
async fn record_offline_credential(data_dir: PathBuf, revoked: usize) -> anyhow::Result<()> {
    let ledger_file = data_dir.join("audit.db");
    if !ledger_file.exists() {
        return Ok(());
    }
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let signer = rampart_audit::Signer::load_or_create(&data_dir.join("audit-signing.key"))?;
        let options = rampart_audit::Options {
            durability: rampart_audit::Durability::Sync,
            ..rampart_audit::Options::default()
        };
        let ledger = rampart_audit::Ledger::open(
            rampart_audit::Location::Sqlite(ledger_file),
            options,
            signer,
            None,
            None,
        )?;
        let actor = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
        ledger.append_blocking(rampart_audit::Entry::admin(
            &actor,
            "key.replace_admin",
            serde_json::json!({"revoked": revoked, "offline": true}),
        ))?;
        Ok(())
    })
    .await
    .context("recording the credential change failed")?
    .context("cannot write the audit ledger")
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Config(ConfigCommand::Check { file }) => config_check(&file),
        Command::Policy(PolicyCommand::Test(args)) => policy_test(args),
        Command::Keys(cmd) => keys(cmd).await,
        Command::Admin(cmd) => admin(cmd).await,
        Command::Approvals(cmd) => approvals(cmd).await,
        Command::Mcp(McpCommand::Pins { target }) => {
            let v = AdminClient::new(&target)?.get("/admin/mcp/pins").await?;
            for p in v["data"].as_array().into_iter().flatten() {
                let state = match (p["changed"].as_bool(), p["flagged"].as_str()) {
                    (Some(true), _) => "CHANGED".to_string(),
                    (_, Some(why)) => format!("FLAGGED: {why}"),
                    _ => "pinned".to_string(),
                };
                println!(
                    "{:<16} {:<24} {}",
                    p["server"].as_str().unwrap_or(""),
                    p["tool"].as_str().unwrap_or(""),
                    state
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mcp(McpCommand::Approve { target, server, tool }) => {
            use crate::admin_client::path_segment;
            AdminClient::new(&target)?
                .post(
                    &format!(
                        "/admin/mcp/pins/{}/{}/approve",
                        path_segment(&server),
                        path_segment(&tool)
                    ),
                    &serde_json::json!({}),
                )
                .await?;
            eprintln!("{server}/{tool}: its current definition is pinned");
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoUpstream(args) => demo(args).await,
        Command::Scan(args) => crate::detect::scan(args),
        Command::Train(crate::detect::TrainCommand::Injection(args)) => crate::detect::train_injection(args),
        Command::Train(crate::detect::TrainCommand::Semantic(args)) => {
            tokio::task::spawn_blocking(move || crate::semantic_cmd::train_semantic(args))
                .await
                .context("training failed")?
        }
        Command::HeldOut(args) => tokio::task::spawn_blocking(move || crate::semantic_cmd::held_out(args))
            .await
            .context("evaluation failed")?,
        Command::Data(cmd) => crate::semantic_cmd::data(cmd),
        Command::Eval(args) => crate::detect::eval(args),
        Command::Model(cmd) => tokio::task::spawn_blocking(move || crate::model_cmd::run(cmd))
            .await
            .map_err(|e| anyhow::anyhow!("model command failed: {e}"))?,
        Command::Audit(cmd) => tokio::task::spawn_blocking(move || crate::audit_cmd::run(cmd))
            .await
            .context("the audit command failed")?,
    }
}

fn config_check(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let name = file.display().to_string();
    let config = match Config::from_file(&name) {
        Ok(c) => c,
        Err(e @ rampart_policy::ConfigError::Read { .. }) => return Err(e.into()),
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let base = file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let engine = match PolicyEngine::from_config(&config, |p| {
        std::fs::read_to_string(base.join(p)).or_else(|_| std::fs::read_to_string(p))
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{name}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut warnings = 0;
    for u in &config.upstreams {
        if let Some(var) = &u.api_key_env {
            if std::env::var_os(var).is_none() {
                eprintln!(
                    "{name}: warning: upstream `{}` reads its key from `{var}`, which is not set here",
                    u.name.get_ref()
                );
                warnings += 1;
            }
        }
    }
    println!(
        "{name}: ok ({} upstreams, {} models, {} policies{})",
        config.upstreams.len(),
        config.models.len(),
        engine.len(),
        if warnings > 0 {
            format!(", {warnings} warnings")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn policy_test(args: PolicyTestArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(p) => Config::from_file(&p.display().to_string())?,
        None => Config::default(),
    };
    let base = args
        .config
        .as_deref()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let engine = PolicyEngine::from_config(&config, |p| std::fs::read_to_string(base.join(p)))?;
    let (kind, id) = args
        .principal
        .split_once(':')
        .context("`--principal` must be `key:ID` or `user:NAME`")?;
    let principal = match kind {
        "key" => Principal::Key {
            id: id.into(),
            owner: args.owner,
            models: args.key_models,
            admin: args.admin,
        },
        "user" => Principal::User {
            id: id.into(),
            groups: args.groups,
        },
        other => anyhow::bail!("unknown principal kind `{other}`; use `key:ID` or `user:NAME`"),
    };
    let action: Action = args.action.parse().map_err(anyhow::Error::msg)?;
    if action == Action::ToolCall {
        return tool_test(
            &config,
            &engine,
            &principal,
            &args.model,
            &args.tool,
            &args.arguments,
            args.tainted,
        );
    }
    if action.is_inference() && args.model.is_empty() {
        anyhow::bail!("`--model` is required for `{}`", action.id());
    }
    let decision = engine.authorize(&principal, action, &args.model);
    println!("{decision}");
    Ok(if decision.allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `rampart policy test --action tool.call`: the tool guard's decision, explained.
fn tool_test(
    config: &Config,
    engine: &PolicyEngine,
    principal: &Principal,
    model: &str,
    tool: &str,
    arguments: &str,
    tainted: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!tool.is_empty(), "`--tool` is required for `tool.call`");
    let Some(guard) = rampart_agent::ToolGuard::new(&config.agent)? else {
        println!("ALLOW (the config's `[agent]` section lists no tools, so tool calls are not checked)");
        return Ok(ExitCode::SUCCESS);
    };
    let call = rampart_agent::Call {
        principal,
        model,
        name: tool,
        arguments,
        tainted,
    };
    let d = guard.check(&call, engine);
    let describe = |v: &rampart_agent::Verdict| match v {
        rampart_agent::Verdict::Allow => "ALLOW".to_string(),
        rampart_agent::Verdict::Stop { code, reason } => format!("STOP {}: {reason}", code.as_str()),
    };
    println!("{} (tool `{tool}`, class `{}`)", describe(&d.verdict), d.class);
    if d.escalated_by_taint {
        println!("  untrusted content in the exchange raised the class's action");
    }
    if let Some(s) = &d.shadow {
        println!("  shadow mode: would have been {}", describe(s));
    }
    if !d.policies.is_empty() {
        println!("  by {}", d.policies.join(", "));
    }
    Ok(if d.verdict == rampart_agent::Verdict::Allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn keys(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Create {
            target,
            owner,
            name,
            models,
            expires_in_days,
            rpm,
            tpm,
            concurrency,
            caller,
            daily_usd,
            monthly_usd,
        } => {
            let client = AdminClient::new(&target)?;
            let caller = caller.replace('-', "_");
            let limits = (rpm.is_some() || tpm.is_some() || concurrency.is_some()).then(|| {
                serde_json::json!({"requests_per_minute": rpm, "tokens_per_minute": tpm, "concurrent_requests": concurrency})
            });
            let budget = (daily_usd.is_some() || monthly_usd.is_some())
                .then(|| serde_json::json!({"daily_usd": daily_usd, "monthly_usd": monthly_usd}));
            let body = serde_json::json!({"owner": owner, "name": name, "models": models, "expires_in_days": expires_in_days, "limits": limits, "caller": caller, "budget": budget});
            let v = client.post("/admin/keys", &body).await?;
            println!("{}", v.get("key").and_then(|k| k.as_str()).unwrap_or_default());
            eprintln!(
                "created key {} for {} (the secret above is shown only once)",
                v["id"].as_str().unwrap_or_default(),
                v["owner"].as_str().unwrap_or_default()
            );
        }
        KeysCommand::List { target, json } => {
            let v = AdminClient::new(&target)?.get("/admin/keys").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v["data"])?);
            } else {
                print!("{}", crate::table::keys(&v["data"], crate::table::unix_now()));
            }
        }
        KeysCommand::Revoke { target, id } => {
            AdminClient::new(&target)?.delete(&format!("/admin/keys/{id}")).await?;
            eprintln!("revoked key {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn approvals(cmd: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    use crate::admin_client::path_segment;
    match cmd {
        ApprovalsCommand::List { target, status } => {
            let path = match status {
                Some(s) => format!("/admin/approvals?status={}", path_segment(&s)),
                None => "/admin/approvals".to_string(),
            };
            let v = AdminClient::new(&target)?.get(&path).await?;
            for a in v["data"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<8} {:<16} {:<12} {}{}",
                    a["id"].as_str().unwrap_or(""),
                    a["status"].as_str().unwrap_or(""),
                    a["tool"].as_str().unwrap_or(""),
                    a["class"].as_str().unwrap_or(""),
                    a["principal"].as_str().unwrap_or(""),
                    if a["tainted"] == true { "  (tainted)" } else { "" }
                );
            }
        }
        ApprovalsCommand::Show { target, id } => {
            let v = AdminClient::new(&target)?
                .get(&format!("/admin/approvals/{}", path_segment(&id)))
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ApprovalsCommand::Approve { target, id, reason } => decide(&target, &id, "approve", &reason).await?,
        ApprovalsCommand::Deny { target, id, reason } => decide(&target, &id, "deny", &reason).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn decide(target: &AdminTarget, id: &str, verb: &str, reason: &str) -> anyhow::Result<()> {
    let v = AdminClient::new(target)?
        .post(
            &format!("/admin/approvals/{}/{verb}", crate::admin_client::path_segment(id)),
            &serde_json::json!({"reason": reason}),
        )
        .await?;
    eprintln!(
        "{id}: {} (tool `{}`, by {})",
        v["status"].as_str().unwrap_or("?"),
        v["tool"].as_str().unwrap_or("?"),
        v["decided_by"].as_str().unwrap_or("?")
    );
    Ok(())
}

async fn admin(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::Block {
            target,
            kind,
            value,
            reason,
        } => {
            AdminClient::new(&target)?
                .post(
                    "/admin/blocks",
                    &serde_json::json!({"kind": kind, "value": value, "reason": reason}),
                )
                .await?;
            eprintln!("blocked {kind} `{value}`");
        }
        AdminCommand::Unblock { target, kind, value } => {
            AdminClient::new(&target)?
                .delete(&format!(
                    "/admin/blocks/{kind}/{}",
                    crate::admin_client::path_segment(&value)
                ))
                .await?;
            eprintln!("unblocked {kind} `{value}`");
        }
        AdminCommand::Blocks { target } => {
            let v = AdminClient::new(&target)?.get("/admin/blocks").await?;
            println!("{}", serde_json::to_string_pretty(&v["data"])?);
        }
        AdminCommand::Reload { target } => {
            AdminClient::new(&target)?
                .post("/admin/reload", &serde_json::json!({}))
                .await?;
            eprintln!("configuration reloaded");
        }
        AdminCommand::Spend { target, json } => {
            let v = AdminClient::new(&target)?.get("/admin/spend").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v["data"])?);
            } else {
                print!("{}", crate::table::spend(&v["data"]));
            }
        }
        AdminCommand::Status { target } => {
            let v = AdminClient::new(&target)?.get("/admin/status").await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        AdminCommand::NewCredential { data_dir } => {
            if !data_dir.join("rampart.db").exists() {
                anyhow::bail!("no gateway database in `{}`", data_dir.display());
            }
            let store = rampart_gateway::store::Store::open(&data_dir)?;
            let (secret, revoked) = rampart_gateway::auth::keys::replace_admin_credential(&store)?;
            if let Err(e) = record_offline_credential(data_dir.clone(), revoked).await {
                eprintln!("warning: the replacement is not in the audit ledger: {e:#}");
            }
            println!("{secret}");
            eprintln!("revoked {revoked} admin credential(s); restart the gateway to use the new one (shown once)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    crate::serve::init_logging("text", "info");
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on `{}`", args.listen))?;
    let addr = listener.local_addr()?;
    println!("rampart demo upstream listening on http://{addr}/v1");
    let opts = rampart_gateway::demo::DemoOptions {
        chunk_delay: std::time::Duration::from_millis(args.chunk_delay_ms),
    };
    rampart_gateway::server::serve(
        listener,
        None,
        rampart_gateway::demo::router(opts),
        crate::serve::shutdown_signal(),
    )
    .await;
    Ok(ExitCode::SUCCESS)
}

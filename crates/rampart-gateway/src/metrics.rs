//! Prometheus metrics. The registry is built once at start-up and handed down; each stage
//! records into the families it owns.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route label (`chat`, `completions`, `embeddings`, `models`, `admin`, ...).
    pub route: &'static str,
    /// HTTP status.
    pub status: u16,
}

/// Labels of a refusal.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// The stable error code.
    pub code: &'static str,
}

/// Route-only labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route label.
    pub route: &'static str,
}

/// Labels of per-model counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The model clients asked for.
    pub model: String,
}

/// Token counters' labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The model clients asked for.
    pub model: String,
    /// `prompt` or `completion`.
    pub kind: &'static str,
}

/// Upstream labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// Upstream name.
    pub upstream: String,
    /// `connect`, `timeout`, `status_5xx`, `invalid_response`, `stream_broken`, ...
    pub kind: &'static str,
}

/// Upstream latency labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamNameLabels {
    /// Upstream name.
    pub upstream: String,
}

/// Scanner finding labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    /// `input` or `output`.
    pub direction: &'static str,
    /// Detector name.
    pub detector: &'static str,
    /// Finding type.
    pub kind: String,
    /// Action taken (or, in shadow mode, that would have been taken).
    pub action: &'static str,
    /// `enforce` or `shadow`.
    pub mode: &'static str,
}

/// Result label for reloads.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to response headers, by route.
    pub latency: Hist<RouteLabels>,
    /// Refusals by error code.
    pub refusals: Family<CodeLabels, Counter>,
    /// Tokens by model and kind.
    pub tokens: Family<TokenLabels, Counter>,
    /// Spend in US dollars by model, from the models' prices.
    pub spend: Family<ModelLabels, Counter<f64, AtomicU64>>,
    /// Upstream failures.
    pub upstream_errors: Family<UpstreamLabels, Counter>,
    /// Upstream time to headers.
    pub upstream_latency: Hist<UpstreamNameLabels>,
    /// Requests in flight.
    pub inflight: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Streams the client closed before the end.
    pub streams_cancelled: Counter<u64, AtomicU64>,
    /// Failovers to a later target.
    pub failovers: Counter<u64, AtomicU64>,
    /// Config reloads.
    pub reloads: Family<ResultLabels, Counter>,
    /// Scanner findings by direction, detector, type, action and mode.
    pub findings: Family<FindingLabels, Counter>,
    /// Audit records written by this process.
    pub audit_records: Counter<u64, AtomicU64>,
    /// Audit appends that failed (each one refused a request).
    pub audit_failures: Counter<u64, AtomicU64>,
    /// Entries waiting in the ledger's queue (set at scrape time).
    pub audit_queue_depth: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// 1 when the ledger takes writes (set at scrape time).
    pub audit_up: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// 1 when the upstream is enabled, 0 when a signed model it serves did not verify.
    pub upstream_enabled: Family<UpstreamNameLabels, Gauge>,
    /// Time a request waits for its record to be durable.
    pub audit_append: prometheus_client::metrics::histogram::Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rampart");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests handled, by route and status",
            requests.clone(),
        );
        let latency: Hist<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time until response headers, by route",
            latency.clone(),
        );
        let refusals = Family::<CodeLabels, Counter>::default();
        registry.register(
            "refusals",
            "Requests refused or failed, by error code",
            refusals.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register("tokens", "Tokens processed, by model and kind", tokens.clone());
        let spend = Family::<ModelLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "spend_usd",
            "Spend in US dollars by model, from the upstream's usage and the model's price",
            spend.clone(),
        );
        let upstream_errors = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures, by upstream and kind",
            upstream_errors.clone(),
        );
        let upstream_latency: Hist<UpstreamNameLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "upstream_duration_seconds",
            "Upstream time until response headers",
            upstream_latency.clone(),
        );
        let inflight = Gauge::default();
        registry.register("inflight_requests", "Inference requests in flight", inflight.clone());
        let streams_cancelled = Counter::default();
        registry.register(
            "streams_cancelled",
            "Streams closed by the client before the end",
            streams_cancelled.clone(),
        );
        let failovers = Counter::default();
        registry.register(
            "upstream_failovers",
            "Requests moved to a later target",
            failovers.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register("config_reloads", "Configuration reloads, by result", reloads.clone());
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "scan_findings",
            "Scanner findings that triggered an action, by direction, detector, type, action and mode",
            findings.clone(),
        );
        let audit_records = Counter::default();
        registry.register("audit_records", "Audit records written", audit_records.clone());
        let audit_failures = Counter::default();
        registry.register(
            "audit_failures",
            "Audit appends that failed; each refused its request",
            audit_failures.clone(),
        );
        let audit_queue_depth = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Entries waiting in the audit ledger's queue",
            audit_queue_depth.clone(),
        );
        let audit_up = Gauge::default();
        registry.register("audit_up", "1 when the audit ledger takes writes", audit_up.clone());
        let upstream_enabled = Family::<UpstreamNameLabels, Gauge>::default();
        registry.register(
            "upstream_enabled",
            "1 when the upstream is enabled; 0 when a signed model it serves did not verify",
            upstream_enabled.clone(),
        );
        let audit_append = prometheus_client::metrics::histogram::Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 16),
        );
        registry.register(
            "audit_append_duration_seconds",
            "Time a request waits for its audit record to be durable",
            audit_append.clone(),
        );
        Metrics {
            audit_records,
            audit_failures,
            audit_queue_depth,
            audit_up,
            upstream_enabled,
            audit_append,
            findings,
            registry,
            requests,
            latency,
            refusals,
            tokens,
            spend,
            upstream_errors,
            upstream_latency,
            inflight,
            streams_cancelled,
            failovers,
            reloads,
        }
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self, upstream: &str, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
                kind,
            })
            .inc();
    }

    /// Counts tokens.
    pub fn add_tokens(&self, model: &str, kind: &'static str, n: u64) {
        if n > 0 {
            self.tokens
                .get_or_create(&TokenLabels {
                    model: model.to_string(),
                    kind,
                })
                .inc_by(n);
        }
    }

    /// The OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Whether a scraper's `Accept` header prefers OpenMetrics over the Prometheus text format
/// (version 0.0.4). A Prometheus server lists both with weights; a client that names neither
/// (curl, a browser) gets the older, more widely parsed text format.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let (mut om, mut text) = (0.0f32, 0.0f32);
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => om = om.max(q),
            "text/plain" => text = text.max(q),
            _ => {}
        }
    }
    om > 0.0 && om >= text
}

/// The Prometheus text format (0.0.4) from OpenMetrics text: no `# EOF` or `# UNIT` lines,
/// counters' `# TYPE`/`# HELP` named like their `_total` samples, `info` metrics as gauges,
/// help text without OpenMetrics' quote escapes.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut renamed = std::collections::HashMap::new();
    for line in openmetrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut it = rest.splitn(2, ' ');
        let (name, kind) = (it.next().unwrap_or(""), it.next().unwrap_or("").trim());
        let mapped = match kind {
            "counter" => Some((format!("{name}_total"), "counter")),
            "info" => Some((format!("{name}_info"), "gauge")),
            "stateset" => Some((name.to_string(), "gauge")),
            "gaugehistogram" => Some((name.to_string(), "histogram")),
            "unknown" => Some((name.to_string(), "untyped")),
            _ => None,
        };
        if let Some(m) = mapped {
            renamed.insert(name.to_string(), m);
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or("");
            match renamed.get(name) {
                Some((new, kind)) => out.push_str(&format!("# TYPE {new} {kind}")),
                None => out.push_str(line),
            }
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let mut it = rest.splitn(2, ' ');
            let (name, help) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            let name = renamed.get(name).map_or(name, |(n, _)| n.as_str());
            out.push_str(&format!("# HELP {name} {}", help.replace("\\\"", "\"")));
        } else {
            // An exemplar (` # {...} v`) has no place in the text format.
            out.push_str(line.split(" # ").next().unwrap_or(line));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_scrapers_weights() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some(
            "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
    }

    #[test]
    fn text_format_names_counters_by_their_samples() {
        let m = Metrics::new();
        m.add_tokens("gpt", "prompt", 7);
        m.failovers.inc();
        let text = to_prometheus_text(&m.encode());
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
        assert!(text.contains("# TYPE rampart_tokens_total counter\n"), "{text}");
        assert!(text.contains("# HELP rampart_tokens_total "), "{text}");
        assert!(
            text.contains("rampart_tokens_total{model=\"gpt\",kind=\"prompt\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE rampart_upstream_failovers_total counter\nrampart_upstream_failovers_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE rampart_audit_append_duration_seconds histogram"),
            "{text}"
        );
        // Every sample's metric has a TYPE line of its own name (or is a histogram's series).
        let typed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for sample in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let name = sample.split(['{', ' ']).next().unwrap_or("");
            let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s));
            assert!(
                typed.contains(&name) || base.is_some_and(|b| typed.contains(&b)),
                "{name} in {text}"
            );
        }
    }
}

//! Credentials: provider token formats (in the spirit of gitleaks' rules), private-key blocks,
//! JWTs, connection strings with passwords, and high-entropy values assigned to
//! secret-looking names. Precision first: provider formats have fixed prefixes and lengths,
//! JWTs must decode to a header with `alg`, and generic assignments must look random and not
//! like a placeholder.

use base64::Engine;
use regex::{Regex, RegexSet};

use crate::{Detector, Finding};

struct Rule {
    kind: &'static str,
    pattern: &'static str,
    score: f32,
    check: Check,
}

#[derive(Clone, Copy)]
enum Check {
    None,
    Jwt,
    /// Group 1 is the password/value: must not be a placeholder.
    NotPlaceholder,
    /// Group 1 is the value: random-looking and not a placeholder.
    Entropy,
}

const RULES: &[Rule] = &[
    Rule {
        kind: "aws_access_key_id",
        pattern: r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z2-7]{16}\b",
        score: 0.95,
        check: Check::NotPlaceholder,
    },
    Rule {
        kind: "aws_secret_access_key",
        pattern: r#"(?i)aws.{0,20}?(?:secret|sk).{0,20}?["':= ]+([A-Za-z0-9/+=]{40})\b"#,
        score: 0.95,
        check: Check::Entropy,
    },
    Rule {
        kind: "gcp_api_key",
        pattern: r"\bAIza[0-9A-Za-z_\-]{35}\b",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "gcp_oauth_token",
        pattern: r"\bya29\.[0-9A-Za-z_\-]{30,}",
        score: 0.9,
        check: Check::None,
    },
    Rule {
        kind: "azure_storage_key",
        pattern: r"(?i)AccountKey=([A-Za-z0-9+/]{86}==)",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "azure_client_secret",
        pattern: r"\b[a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.\-]{31,34}\b",
        score: 0.9,
        check: Check::None,
    },
    Rule {
        kind: "azure_sas_token",
        pattern: r"[?&]sig=[A-Za-z0-9%]{40,}(?:&|\b)",
        score: 0.85,
        check: Check::None,
    },
    Rule {
        kind: "github_token",
        pattern: r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
        score: 0.98,
        check: Check::None,
    },
    Rule {
        kind: "github_token",
        pattern: r"\bgithub_pat_[A-Za-z0-9_]{82}\b",
        score: 0.98,
        check: Check::None,
    },
    Rule {
        kind: "gitlab_token",
        pattern: r"\bgl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_\-]{20,}\b",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "slack_token",
        pattern: r"\bxox[baprse]-[0-9A-Za-z\-]{10,}\b",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "slack_webhook",
        pattern: r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9+/]{20,}",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "stripe_key",
        pattern: r"\b(?:sk|rk)_(?:live|test|prod)_[0-9A-Za-z]{20,99}\b",
        score: 0.97,
        check: Check::None,
    },
    Rule {
        kind: "openai_api_key",
        pattern: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}\b",
        score: 0.98,
        check: Check::None,
    },
    Rule {
        kind: "openai_api_key",
        pattern: r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}\b",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "anthropic_api_key",
        pattern: r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,}\b",
        score: 0.98,
        check: Check::None,
    },
    Rule {
        kind: "huggingface_token",
        pattern: r"\bhf_[A-Za-z]{34}\b",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "twilio_key",
        pattern: r"\bSK[0-9a-f]{32}\b",
        score: 0.85,
        check: Check::None,
    },
    Rule {
        kind: "sendgrid_key",
        pattern: r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b",
        score: 0.97,
        check: Check::None,
    },
    Rule {
        kind: "npm_token",
        pattern: r"\bnpm_[A-Za-z0-9]{36}\b",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "pypi_token",
        pattern: r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}",
        score: 0.98,
        check: Check::None,
    },
    Rule {
        kind: "shopify_token",
        pattern: r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "digitalocean_token",
        pattern: r"\bdo[opr]_v1_[a-f0-9]{64}\b",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "databricks_token",
        pattern: r"\bdapi[a-f0-9]{32}(?:-\d)?\b",
        score: 0.9,
        check: Check::None,
    },
    Rule {
        kind: "mailgun_key",
        pattern: r"\bkey-[0-9a-f]{32}\b",
        score: 0.85,
        check: Check::None,
    },
    Rule {
        kind: "telegram_bot_token",
        pattern: r"\b\d{8,10}:AA[A-Za-z0-9_\-]{33}\b",
        score: 0.9,
        check: Check::None,
    },
    Rule {
        kind: "discord_bot_token",
        pattern: r"\b[MNO][A-Za-z\d_\-]{23,25}\.[A-Za-z\d_\-]{6}\.[A-Za-z\d_\-]{27,38}\b",
        score: 0.85,
        check: Check::None,
    },
    Rule {
        kind: "rampart_api_key",
        pattern: r"\brk-[0-9a-f]{16}-[A-Za-z0-9_\-]{43}\b",
        score: 0.98,
        check: Check::None,
    },
    Rule {
        kind: "private_key",
        pattern: r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
        score: 0.99,
        check: Check::None,
    },
    Rule {
        kind: "jwt",
        pattern: r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
        score: 0.9,
        check: Check::Jwt,
    },
    Rule {
        kind: "connection_string",
        pattern: r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?|mssql|sqlserver|ftp|sftp|smtps?|ldaps?)://[^\s:/@]+:([^\s@/]{3,})@[^\s/]+",
        score: 0.9,
        check: Check::NotPlaceholder,
    },
    // The value is bounded: longer ones are refused below anyway, and an unbounded one made
    // a run like `password=password=...` one long match for the slow capture engine.
    Rule {
        kind: "generic_secret",
        pattern: r#"(?i)\b[a-z0-9_.\-]*(?:secret|passw(?:or)?d|pwd|token|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|client[_\-]?secret|auth[_\-]?key|credentials?)[a-z0-9_.\-]*["']?\s*(?:=|:|:=|=>)\s*["']?([A-Za-z0-9_\-+/=.~!@#$%^&*]{12,161})["']?"#,
        score: 0.8,
        check: Check::Entropy,
    },
];

/// The compiled secret detector.
pub struct SecretDetector {
    set: RegexSet,
    regexes: Vec<Regex>,
}

impl std::fmt::Debug for SecretDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretDetector").field("rules", &RULES.len()).finish()
    }
}

impl Default for SecretDetector {
    fn default() -> Self {
        Self::new()
    }
}

const PLACEHOLDERS: &[&str] = &[
    "example",
    "xxxx",
    "****",
    "your",
    "changeme",
    "change_me",
    "password",
    "secret",
    "placeholder",
    "dummy",
    "sample",
    "redacted",
    "<",
    "${",
    "{{",
    "%s",
    "1234",
    "abcd",
    "test",
    "todo",
    "fixme",
    "none",
    "null",
    "undefined",
    "env[",
    "getenv",
    "os.environ",
];

impl SecretDetector {
    /// Compiles the rules.
    #[allow(clippy::expect_used, reason = "constant patterns, compiled by the tests")]
    pub fn new() -> SecretDetector {
        let pats: Vec<String> = RULES.iter().map(|r| crate::ascii_boundaries(r.pattern)).collect();
        SecretDetector {
            set: regex::RegexSetBuilder::new(&pats)
                .size_limit(64 << 20)
                .build()
                .expect("secret patterns compile"),
            regexes: pats
                .iter()
                .map(|p| Regex::new(p).expect("secret pattern compiles"))
                .collect(),
        }
    }

    /// Appends secret findings in `text`.
    pub fn scan(&self, text: &str, out: &mut Vec<Finding>) {
        if text.len() < 12 {
            return;
        }
        self.scan_matched(text, self.set.matches(text).iter(), out);
    }

    /// The rules' patterns, for a pass shared with other detectors
    /// ([`crate::Scanner`] runs one set over PII and secret rules).
    pub(crate) fn patterns() -> impl Iterator<Item = String> {
        RULES.iter().map(|r| crate::ascii_boundaries(r.pattern))
    }

    /// As [`scan`](Self::scan), with `matched` the indices of the rules ([`patterns`](Self::patterns))
    /// that match `text` at all.
    pub(crate) fn scan_matched(&self, text: &str, matched: impl Iterator<Item = usize>, out: &mut Vec<Finding>) {
        if text.len() < 12 {
            return;
        }
        let first = out.len();
        for i in matched {
            let Some(rule) = RULES.get(i) else { continue };
            for caps in self.regexes[i].captures_iter(text) {
                let Some(m) = caps.get(0) else { continue };
                let value = caps.get(1).unwrap_or(m);
                let ok = match rule.check {
                    Check::None => true,
                    Check::Jwt => jwt(m.as_str()),
                    Check::NotPlaceholder => !placeholder(value.as_str()),
                    Check::Entropy => {
                        value.len() <= 160 && !placeholder(value.as_str()) && random_looking(value.as_str())
                    }
                };
                if ok {
                    // Report the value itself where the rule captures one (the name stays);
                    // a private key block extends to its END line when that is present.
                    let end = if rule.kind == "private_key" {
                        pem_end(text, m.end())
                    } else {
                        value.end()
                    };
                    out.push(Finding::new(
                        Detector::Secret,
                        rule.kind,
                        rule.score,
                        value.start(),
                        end,
                    ));
                }
            }
        }
        // Specific rules win over the generic one on the same bytes.
        let mut mine: Vec<Finding> = out.drain(first..).collect();
        mine.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.score.total_cmp(&a.score))
                .then((b.end - b.start).cmp(&(a.end - a.start)))
        });
        let mut kept: Vec<Finding> = Vec::with_capacity(mine.len());
        for f in mine {
            if kept.last().is_some_and(|l| f.start < l.end) {
                continue;
            }
            kept.push(f);
        }
        out.extend(kept);
    }
}

/// The end of a PEM block whose BEGIN line ends at `from` (within 16 KiB), or `from`.
fn pem_end(text: &str, from: usize) -> usize {
    let rest = &text[from..];
    let Some(i) = rest.find("-----END ") else { return from };
    if i > 16 * 1024 {
        return from;
    }
    let after = &rest[i + 9..];
    match after.find("-----") {
        Some(j) if j < 40 => from + i + 9 + j + 5,
        _ => from,
    }
}

fn jwt(s: &str) -> bool {
    let Some(header) = s.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')) else {
        return false;
    };
    let h = String::from_utf8_lossy(&bytes);
    h.contains("\"alg\"")
}

fn placeholder(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    PLACEHOLDERS.iter().any(|p| l.contains(p)) || v.bytes().all(|b| b == v.as_bytes()[0])
}

/// Shannon entropy per character and mixed character classes.
fn random_looking(v: &str) -> bool {
    let mut counts = [0u32; 256];
    for b in v.bytes() {
        counts[b as usize] += 1;
    }
    let n = v.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    let classes = [
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
    ]
    .iter()
    .filter(|&&x| x)
    .count();
    // Dotted identifiers and paths (config.api_key = settings.value) are not values.
    let parts: Vec<&str> = v.split('.').collect();
    let wordy = parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        && parts[0].bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
    entropy >= 3.3 && classes >= 2 && !wordy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        let d = SecretDetector::new();
        let mut out = Vec::new();
        d.scan(text, &mut out);
        out.into_iter().map(|f| f.kind.to_string()).collect()
    }

    #[test]
    fn provider_formats() {
        assert_eq!(kinds("key AKIAZ3MJQ7XKPLW4RT5B here"), ["aws_access_key_id"]);
        assert_eq!(
            kinds("token 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"),
            ["github_token"]
        );
        assert_eq!(kinds("sk_live_4eC39HqLyjWDarjtT1zdp7dc"), ["stripe_key"]);
        assert_eq!(kinds("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH ok"), ["huggingface_token"]);
        assert_eq!(
            kinds("xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1"),
            ["slack_token"]
        );
        assert_eq!(
            kinds("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"),
            ["private_key"]
        );
    }

    #[test]
    fn jwt_and_connection_strings() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(kinds(jwt), ["jwt"]);
        assert_eq!(
            kinds("postgres://app:Tr0ub4dor&3x@db.internal:5432/prod"),
            ["connection_string"]
        );
        assert!(kinds("postgres://user:password@localhost/db").is_empty());
    }

    #[test]
    fn generic_assignments_need_randomness() {
        assert_eq!(kinds("DB_PASSWORD=\"q8Vz!rT2#mLp9Xw\""), ["generic_secret"]);
        assert!(kinds("password = \"your_password_here\"").is_empty());
        assert!(kinds("api_key = config.settings.api_key_value").is_empty());
        assert!(kinds("the token expired yesterday, please renew it").is_empty());
    }
}

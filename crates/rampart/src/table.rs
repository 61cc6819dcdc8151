//! Tables for people: `keys list` and friends print aligned columns with times relative to
//! now; `--json` gives the admin API's own document for scripts.

use serde_json::Value;

use crate::terminal::escape;

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `3d ago`, `in 5h`, `just now`: the largest whole unit.
pub fn relative(at: i64, now: i64) -> String {
    let d = at - now;
    let a = d.unsigned_abs();
    let amount = match a {
        0..60 => return "just now".into(),
        60..3600 => format!("{}m", a / 60),
        3600..86_400 => format!("{}h", a / 3600),
        86_400..31_536_000 => format!("{}d", a / 86_400),
        _ => format!("{}y", a / 31_536_000),
    };
    if d < 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// Dollars as people read them: cents, or four decimals below a dollar.
fn usd(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x >= 1.0 => format!("${x:.2}"),
        Some(x) => format!("${x:.4}"),
        None => "-".into(),
    }
}

/// Aligned columns, the first row a header.
fn render<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The `admin spend` table: scope, id, today, this month, caps.
pub fn spend(data: &Value) -> String {
    let mut rows = vec![["SCOPE", "ID", "TODAY", "DAILY CAP", "MONTH", "MONTHLY CAP"].map(String::from)];
    for s in data.as_array().into_iter().flatten() {
        rows.push([
            escape(s["scope"].as_str().unwrap_or("")).into_owned(),
            escape(s["id"].as_str().unwrap_or("")).into_owned(),
            usd(&s["today_usd"]),
            usd(&s["daily_cap_usd"]),
            usd(&s["month_usd"]),
            usd(&s["monthly_cap_usd"]),
        ]);
    }
    render(&rows)
}

/// The `keys list` table: id, owner, name, caller kind, models, state, spend today, created,
/// expires.
pub fn keys(data: &Value, now: i64) -> String {
    let mut rows = vec![[
        "ID",
        "OWNER",
        "NAME",
        "CALLER",
        "MODELS",
        "STATE",
        "SPENT TODAY",
        "CREATED",
        "EXPIRES",
    ]
    .map(String::from)];
    for k in data.as_array().into_iter().flatten() {
        let text = |f: &str| escape(k[f].as_str().unwrap_or("")).into_owned();
        let time = |f: &str| k[f].as_i64();
        let models = match k["models"].as_array() {
            Some(m) if !m.is_empty() => m
                .iter()
                .map(|x| escape(x.as_str().unwrap_or("?")).into_owned())
                .collect::<Vec<_>>()
                .join(","),
            _ if k["admin"] == true => "(admin)".into(),
            _ => "all".into(),
        };
        let state = match (time("revoked_at"), time("expires_at")) {
            (Some(r), _) => format!("revoked {}", relative(r, now)),
            (None, Some(e)) if e <= now => "expired".into(),
            _ => "active".into(),
        };
        rows.push([
            text("id"),
            text("owner"),
            text("name"),
            if k["admin"] == true {
                "-".into()
            } else {
                text("caller").replace('_', "-")
            },
            models,
            state,
            usd(&k["spend"]["today_usd"]),
            time("created_at").map_or_else(String::new, |t| relative(t, now)),
            time("expires_at").map_or_else(|| "never".into(), |t| relative(t, now)),
        ]);
    }
    render(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spend_table() {
        let t = spend(&json!([
            {"scope": "key", "id": "00aa", "today_usd": 0.5, "month_usd": 12.25, "daily_cap_usd": 1.0, "monthly_cap_usd": null},
        ]));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("SCOPE  ID"), "{t}");
        assert!(
            lines[1].contains("$0.5000") && lines[1].contains("$1.00") && lines[1].contains("$12.25"),
            "{t}"
        );
        assert!(lines[1].ends_with('-'), "{t}");
    }

    #[test]
    fn times_read_relative_to_now() {
        assert_eq!(relative(1000, 1000), "just now");
        assert_eq!(relative(1000 - 7200, 1000), "2h ago");
        assert_eq!(relative(1000 + 3 * 86_400 + 5, 1000), "in 3d");
        assert_eq!(relative(1000 - 90, 1000), "1m ago");
    }

    #[test]
    fn keys_table_is_aligned_and_escaped() {
        let now = 10_000_000;
        let data = json!([
            {"id": "00aa", "owner": "bob", "name": "ci", "caller": "application", "models": [], "admin": false,
             "spend": {"today_usd": 0.0125, "month_usd": 3.5},
             "created_at": now - 86_400, "expires_at": null, "revoked_at": null},
            {"id": "00bb", "owner": "eve\nforged row", "name": "", "caller": "end_user", "models": ["small", "big"],
             "admin": false, "created_at": now - 60, "expires_at": now - 1, "revoked_at": null},
            {"id": "00cc", "owner": "admin", "name": "", "caller": "application", "models": [], "admin": true,
             "created_at": now - 600, "expires_at": null, "revoked_at": now - 120},
        ]);
        let t = keys(&data, now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("ID    OWNER"), "{t}");
        assert!(lines[1].contains("application") && lines[1].contains("all") && lines[1].contains("1d ago"));
        assert!(lines[1].contains("$0.0125"), "{t}");
        assert!(lines[1].ends_with("never"), "{t}");
        assert!(lines[2].contains("eve\\nforged row") && lines[2].contains("end-user") && lines[2].contains("expired"));
        assert!(lines[2].contains("small,big"));
        assert!(lines[3].contains("(admin)") && lines[3].contains("revoked 2m ago"));
        // Columns line up: the CALLER header sits where each row's caller starts.
        let col = lines[0].find("CALLER").unwrap();
        assert!(lines.iter().skip(1).all(|l| ["application", "end-user", "- "]
            .iter()
            .any(|c| l[col..].starts_with(c))));
    }
}

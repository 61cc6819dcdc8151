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

/// The `keys list` table: id, owner, name, caller kind, models, state, created, expires.
pub fn keys(data: &Value, now: i64) -> String {
    let mut rows = vec![["ID", "OWNER", "NAME", "CALLER", "MODELS", "STATE", "CREATED", "EXPIRES"].map(String::from)];
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
            time("created_at").map_or_else(String::new, |t| relative(t, now)),
            time("expires_at").map_or_else(|| "never".into(), |t| relative(t, now)),
        ]);
    }
    let mut widths = [0usize; 8];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

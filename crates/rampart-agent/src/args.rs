//! Argument checks that JSON Schema cannot express: where a URL may go, which directory a path
//! must stay in, that SQL only reads, that a shell command runs only an allowed program.
//! Each parses the value the way the tool will (WHATWG URLs, path components, a SQL parser,
//! shell words), never with a pattern over the raw text.

use serde_json::Value;
use sqlparser::ast::{SetExpr, Statement};
use sqlparser::dialect::GenericDialect;

/// The value at `arg`: a JSON pointer (`/a/0`) or a top-level key.
pub fn lookup<'a>(args: &'a Value, arg: &str) -> Option<&'a Value> {
    if arg.starts_with('/') {
        args.pointer(arg)
    } else {
        args.get(arg)
    }
}

/// A URL whose scheme and host are allowed. `hosts` entries are exact host names or
/// `*.domain` (subdomains of `domain`, not `domain` itself).
pub fn url(value: &str, hosts: &[String], schemes: &[String]) -> Result<(), String> {
    let u = url::Url::parse(value.trim()).map_err(|e| format!("`{value}` is not an absolute URL ({e})"))?;
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(u.scheme())) {
        return Err(format!("scheme `{}` is not allowed", u.scheme()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("credentials in a URL are not allowed".into());
    }
    let host = u
        .host_str()
        .ok_or_else(|| format!("`{value}` has no host"))?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ok = hosts.iter().any(|h| {
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        match h.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == h,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(format!("host `{host}` is not on the allowed list"))
    }
}

/// A path that stays under `prefix` once `.` and `..` are resolved (relative paths are taken
/// from `prefix`). Backslashes count as separators, `~` and NUL are refused. Symbolic links
/// are the tool's to resolve: this checks the name, not the file system.
pub fn path(value: &str, prefix: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err("NUL in a path".into());
    }
    if value.starts_with('~') {
        return Err("home-relative paths are not allowed".into());
    }
    let base: Vec<&str> = components(prefix);
    let mut out: Vec<&str> = if value.starts_with(['/', '\\']) {
        Vec::new()
    } else {
        base.clone()
    };
    for c in components(value) {
        match c {
            "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(format!("`{value}` climbs above the root"));
                }
            }
            c => out.push(c),
        }
    }
    if out.len() >= base.len() && out[..base.len()] == base[..] {
        Ok(())
    } else {
        Err(format!("`{value}` leaves `{prefix}`"))
    }
}

fn components(p: &str) -> Vec<&str> {
    p.split(['/', '\\']).filter(|c| !c.is_empty()).collect()
}

/// SQL that parses and only reads: every statement a query, with no data-changing statement
/// anywhere inside it (PostgreSQL allows `INSERT`/`UPDATE`/`DELETE` in a `WITH`), no
/// `SELECT ... INTO` and no row locks.
pub fn sql_read_only(value: &str) -> Result<(), String> {
    let statements = sqlparser::parser::Parser::parse_sql(&GenericDialect {}, value)
        .map_err(|e| format!("the SQL does not parse ({e})"))?;
    if statements.is_empty() {
        return Err("no SQL statement".into());
    }
    for s in &statements {
        let Statement::Query(q) = s else {
            return Err(format!("`{}` is not a read-only query", first_word(&s.to_string())));
        };
        query_reads_only(q, 0)?;
    }
    Ok(())
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("").to_string()
}

fn query_reads_only(q: &sqlparser::ast::Query, depth: usize) -> Result<(), String> {
    if depth > 64 {
        return Err("query nested too deeply".into());
    }
    if !q.locks.is_empty() {
        return Err("row locks (`FOR UPDATE`/`FOR SHARE`) are not read-only".into());
    }
    if let Some(with) = &q.with {
        for cte in &with.cte_tables {
            query_reads_only(&cte.query, depth + 1)?;
        }
    }
    set_expr_reads_only(&q.body, depth + 1)
}

fn set_expr_reads_only(e: &SetExpr, depth: usize) -> Result<(), String> {
    match e {
        SetExpr::Select(s) => {
            if s.into.is_some() {
                return Err("`SELECT ... INTO` creates a table".into());
            }
            Ok(())
        }
        SetExpr::Query(q) => query_reads_only(q, depth + 1),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr_reads_only(left, depth + 1)?;
            set_expr_reads_only(right, depth + 1)
        }
        SetExpr::Values(_) | SetExpr::Table(_) => Ok(()),
        other => Err(format!("`{}` changes data", first_word(&other.to_string()))),
    }
}

/// A shell command: only programs on `allow`, and no syntax that chains, pipes, redirects or
/// substitutes (`;`, `&`, `|`, `` ` ``, `$(`, `${`, `<`, `>`, newlines).
pub fn shell(value: &str, allow: &[String]) -> Result<(), String> {
    if allow.is_empty() {
        return Err("shell commands are not allowed for this tool".into());
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, ';' | '&' | '|' | '`' | '<' | '>' | '\n' | '\r' | '\0'))
    {
        return Err(format!("shell syntax `{}` is not allowed", c.escape_debug()));
    }
    if value.contains("$(") || value.contains("${") {
        return Err("command or variable substitution is not allowed".into());
    }
    let program = value.split_whitespace().next().ok_or("empty command")?;
    let program = program.trim_matches(['\'', '"']);
    let base = program.rsplit('/').next().unwrap_or(program);
    if program.contains('/') && !allow.iter().any(|a| a == program) {
        return Err(format!("`{program}`: give the program by name, not by path"));
    }
    if allow.iter().any(|a| a == base) {
        Ok(())
    } else {
        Err(format!("program `{base}` is not on the allowed list"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn urls_are_parsed_as_browsers_parse_them() {
        let h = hosts(&["api.example.com", "*.docs.example.org"]);
        let https = vec!["https".to_string()];
        assert!(url("https://api.example.com/v1?q=1", &h, &https).is_ok());
        assert!(url("https://a.docs.example.org/x", &h, &https).is_ok());
        for bad in [
            "https://docs.example.org/",                 // the apex is not a subdomain
            "http://api.example.com/",                   // scheme
            "https://api.example.com@evil.com/",         // userinfo: the host is evil.com
            "https://api.example.com.evil.com/",         // suffix trick
            "https://evil.com/https://api.example.com/", // path trick
            "https://api.example.com:443@evil.com",
            "//api.example.com/",      // relative
            "https://ＡＰＩ.evil.com", // full-width letters normalise to another host
            "javascript:alert(1)",
        ] {
            assert!(url(bad, &h, &https).is_err(), "{bad}");
        }
        // full-width letters that normalise to the allowed host are that host
        assert!(url("https://ａｐｉ.example.com/", &h, &https).is_ok());
    }

    #[test]
    fn paths_stay_in_their_prefix() {
        for ok in ["/srv/data/a.txt", "a/b.txt", "/srv/data/x/../y", "./z"] {
            assert!(path(ok, "/srv/data").is_ok(), "{ok}");
        }
        for bad in [
            "../etc/passwd",
            "/srv/data/../../etc/passwd",
            "/srv/database/x",
            "/etc/passwd",
            "..\\..\\windows",
            "~/.ssh/id_rsa",
            "a/../../b",
            "/srv/data\0/../x",
        ] {
            assert!(path(bad, "/srv/data").is_err(), "{bad}");
        }
    }

    #[test]
    fn sql_must_only_read() {
        for ok in [
            "SELECT * FROM t WHERE a = 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT a FROM t UNION SELECT b FROM u",
            "select count(*) from orders; select 1",
            // a tautology still only reads: row-level access is the database's business
            "SELECT * FROM t WHERE a = '1' OR 1=1; --",
        ] {
            assert!(sql_read_only(ok).is_ok(), "{ok}");
        }
        for bad in [
            "DELETE FROM users",
            "SELECT 1; DROP TABLE users",
            "UPDATE t SET a = 1",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT * INTO new_table FROM t",
            "SELECT * FROM t FOR UPDATE",
            "INSERT INTO t VALUES (1)",
            "",
        ] {
            assert!(sql_read_only(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_commands_are_refused_or_confined() {
        let allow = vec!["ls".to_string(), "grep".to_string()];
        assert!(shell("ls -la /tmp", &allow).is_ok());
        assert!(shell("grep -r 'x y' .", &allow).is_ok());
        for bad in [
            "rm -rf /",
            "ls; rm -rf /",
            "ls && curl evil",
            "ls | sh",
            "ls $(curl evil)",
            "ls `id`",
            "ls > /etc/passwd",
            "/tmp/ls",
            "ls\nrm -rf /",
            "ls ${IFS}",
        ] {
            assert!(shell(bad, &allow).is_err(), "{bad}");
        }
        assert!(shell("ls", &[]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn a_path_passes_exactly_when_it_resolves_inside_the_prefix(parts in proptest::collection::vec("[a-z]{1,3}|\\.\\.|\\.", 0..12)) {
            let p = parts.join("/");
            let mut stack = vec!["srv".to_string(), "data".to_string()];
            let mut above_root = false;
            for c in &parts {
                match c.as_str() {
                    "." => {}
                    ".." => above_root |= stack.pop().is_none(),
                    other => stack.push(other.to_string()),
                }
            }
            let inside = !above_root && stack.len() >= 2 && stack[0] == "srv" && stack[1] == "data";
            proptest::prop_assert_eq!(path(&p, "/srv/data").is_ok(), inside);
        }
    }
}

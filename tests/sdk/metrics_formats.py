"""Rampart's /metrics read by the Prometheus project's own Python parsers, in both formats a
scraper can negotiate: OpenMetrics (what a Prometheus server asks for first) and the
Prometheus text format 0.0.4 (what curl, older scrapers and `Accept: text/plain` get).

Usage: python metrics_formats.py BASE_URL   (the gateway's root, e.g. http://127.0.0.1:8080)
"""
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

base = sys.argv[1].rstrip("/")
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


def scrape(accept):
    req = urllib.request.Request(f"{base}/metrics", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


PROMETHEUS = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
ctype, body = scrape(PROMETHEUS)
check(ctype.startswith("application/openmetrics-text"), f"OpenMetrics when preferred: {ctype}")
families = {f.name: f for f in parse_openmetrics(body)}
check("rampart_requests" in families and families["rampart_requests"].type == "counter", "OpenMetrics parses, counters typed")

for accept in ["text/plain;version=0.0.4", None]:
    ctype, body = scrape(accept)
    check(ctype.startswith("text/plain; version=0.0.4"), f"text format for {accept!r}: {ctype}")
    families = {f.name: f for f in parse_text(body)}
    requests = families.get("rampart_requests")
    check(requests is not None and requests.type == "counter", f"text format parses, counters typed ({accept!r})")
    check(any(s.name == "rampart_requests_total" and s.value >= 1 for s in requests.samples), "counter samples read")

print(f"prometheus parsers: {checks} passed, 0 failed")

#!/usr/bin/env python3
"""Rampart's PII detector and Presidio's pattern recognisers, side by side on the same labelled
data, scored the same way (span overlap, per entity), with throughput from the same run.

Presidio runs with a blank spaCy pipeline (no NER model), so what it brings is its own pattern
recognisers (email, phone via `phonenumbers`, credit card, IBAN, IP, US SSN, US driver licence,
...), which is the comparison the PII bar asks for. It comes from PyPI into a venv under target/
(never committed):
    python3 -m venv target/presidio-venv
    target/presidio-venv/bin/pip install presidio-analyzer
usage: target/presidio-venv/bin/python scripts/pii-compare.py [--data FILE] [--split validation|all]
           [--rampart target/release/rampart]
"""
import argparse, json, subprocess, time

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data/pii/presidio_generated_large.json")
ap.add_argument("--split", default="validation", choices=["validation", "all"])
ap.add_argument("--rampart", default="target/release/rampart")
args = ap.parse_args()

KINDS = {"PERSON": "person", "EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone_number", "CREDIT_CARD": "credit_card",
         "IBAN_CODE": "iban", "US_SSN": "us_ssn", "IP_ADDRESS": "ip_address", "ADDRESS": "address",
         "US_DRIVER_LICENSE": "driver_license"}


def fnv(s):  # the split Rampart's `--split validation` uses (crates/rampart-scan/src/injection/train.rs)
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


docs = json.load(open(args.data))
if args.split == "validation":
    docs = [d for d in docs if fnv(d["full_text"]) % 5 == 0]

import spacy
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import SpacyNlpEngine


class BlankEngine(SpacyNlpEngine):
    def __init__(self):
        super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])
        self.nlp = {"en": spacy.blank("en")}

    def load(self):
        pass


analyzer = AnalyzerEngine(nlp_engine=BlankEngine(), supported_languages=["en"])
# Warm-up outside the timing (it also tries, and fails, to fetch the public suffix list: this
# machine has no network beyond the package registries).
analyzer.analyze(text="warm up jane@example.org https://example.org", language="en")

# Presidio scored twice: at its default threshold (every result, which is what
# `analyzer.analyze` returns) and at 0.5 like Rampart (without NER context words, Presidio's
# phone and driver-licence results stay at their low base scores).
THRESHOLDS = (0.0, 0.5)
per = {t: {} for t in THRESHOLDS}
allc = {t: [0, 0, 0] for t in THRESHOLDS}


def add(t, kind, tp=0, fp=0, fn=0):
    c = per[t].setdefault(kind, [0, 0, 0])
    for i, v in enumerate((tp, fp, fn)):
        c[i] += v
        allc[t][i] += v


nbytes = sum(len(d["full_text"].encode()) for d in docs)
started = time.perf_counter()
results = [analyzer.analyze(text=d["full_text"], language="en") for d in docs]
presidio_s = time.perf_counter() - started
ov = lambda a, b: a[0] < b[1] and b[0] < a[1]
for t in THRESHOLDS:
    for d, res in zip(docs, results):
        gold = [(s["start_position"], s["end_position"], KINDS.get(s["entity_type"])) for s in d["spans"]]
        found = [(r.start, r.end, KINDS.get(r.entity_type)) for r in res if r.score >= t and KINDS.get(r.entity_type)]
        for g in gold:
            if g[2]:
                add(t, g[2], **({"tp": 1} if any(f[2] == g[2] and ov(f, g) for f in found) else {"fn": 1}))
        for f in found:
            if not any(g[2] == f[2] and ov(f, g) for g in gold) and not any(g[2] is None and ov(f, g) for g in gold):
                add(t, f[2], fp=1)

cmd = [args.rampart, "eval", "pii", "--data", args.data, "--json"] + (["--split", "validation"] if args.split == "validation" else [])
ours = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def f1(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


print(f"{len(docs)} documents ({args.split} split of {args.data.split('/')[-1]}), span overlap, score >= 0.5\n")
print("| entity | Rampart P / R / F1 | Presidio, all results | Presidio, score >= 0.5 |")
print("|---|---|---|---|")
for kind in sorted(set(per[0.0]) | set(ours["per_type"])):
    o = ours["per_type"].get(kind)
    ostr = f"{o['precision']:.3f} / {o['recall']:.3f} / {o['f1']:.3f}" if o else "-"
    cols = ["%.3f / %.3f / %.3f" % f1(*per[t][kind]) if kind in per[t] else "-" for t in THRESHOLDS]
    print(f"| {kind} | {ostr} | {cols[0]} | {cols[1]} |")
print(f"| ALL | {ours['precision']:.3f} / {ours['recall']:.3f} / {ours['f1']:.3f} | "
      + " | ".join("%.3f / %.3f / %.3f" % f1(*allc[t]) for t in THRESHOLDS) + " |")
print(f"\nthroughput (one core, same run): Rampart {ours['latency_us_per_kb']:.0f} µs/KB, "
      f"Presidio {presidio_s * 1e6 / (nbytes / 1024):.0f} µs/KB ({presidio_s * 1e6 / (nbytes / 1024) / ours['latency_us_per_kb']:.0f}x)")

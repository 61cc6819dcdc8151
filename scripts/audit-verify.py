#!/usr/bin/env python3
"""Independent verifier for a Rampart audit ledger (SQLite), written from
crates/rampart-audit/FORMAT.md only: recomputes every record hash, checks links, payload
digests and Ed25519 checkpoint signatures. Exit 0 intact, 1 tampered, 2 usage error.

usage: audit-verify.py LEDGER.db --public-key HEX [--checkpoints FILE.jsonl]
"""
import argparse
import hashlib
import json
import sqlite3
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def lp(b):
    return struct.pack(">I", len(b)) + b


def record_hash(r):
    h = hashlib.sha256()
    h.update(b"rampart-audit/record/v1")
    h.update(lp(r["chain"].encode()))
    h.update(struct.pack(">Q", r["seq"]))
    h.update(bytes(r["prev_hash"]))
    h.update(struct.pack(">q", r["ts_ms"]))
    for f in ("kind", "subject", "principal", "model", "decision", "findings"):
        h.update(lp(r[f].encode()))
    h.update(lp(bytes(r["meta"])))
    if r["dek_id"] is not None and r["payload_digest"] is not None:
        h.update(b"\x01" + struct.pack(">q", r["dek_id"]) + bytes(r["payload_digest"]))
    else:
        h.update(b"\x00")
    return h.digest()


def checkpoint_ok(pub, chain, seq, head, ts_ms, sig):
    msg = b"rampart-audit/checkpoint/v1" + lp(chain.encode()) + struct.pack(">Q", seq) + head + struct.pack(">q", ts_ms)
    try:
        pub.verify(sig, msg)
        return True
    except InvalidSignature:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db")
    ap.add_argument("--public-key", required=True, help="hex Ed25519 public key (audit-signing.pub)")
    ap.add_argument("--checkpoints", help="exported checkpoints (JSON Lines)")
    a = ap.parse_args()
    pub_bytes = bytes.fromhex(a.public_key.strip())
    pub = Ed25519PublicKey.from_public_bytes(pub_bytes)
    key_id = pub_bytes[:8].hex()
    db = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    problems = []
    chains = [r[0] for r in db.execute("SELECT chain FROM audit_records UNION SELECT chain FROM audit_checkpoints")]
    for chain in chains:
        cps = {}
        rows = list(db.execute("SELECT seq, head, ts_ms, key_id, signature FROM audit_checkpoints WHERE chain = ?", (chain,)))
        external = []
        if a.checkpoints:
            with open(a.checkpoints) as f:
                external = [json.loads(l) for l in f if l.strip()]
        for c in [dict(r) for r in rows] + [
            {"seq": e["seq"], "head": bytes.fromhex(e["head"]), "ts_ms": e["ts_ms"], "key_id": e["key_id"],
             "signature": bytes.fromhex(e["signature"])} for e in external if e["chain"] == chain]:
            if c["key_id"] != key_id or not checkpoint_ok(pub, chain, c["seq"], bytes(c["head"]), c["ts_ms"], bytes(c["signature"])):
                problems.append((chain, c["seq"], "checkpoint signature does not verify"))
            else:
                cps.setdefault(c["seq"], []).append(bytes(c["head"]))
        expected, prev, n, good = 1, bytes(32), 0, 0
        first = None
        for r in db.execute("SELECT * FROM audit_records WHERE chain = ? ORDER BY seq", (chain,)):
            n += 1
            if first is None:
                if r["seq"] != expected:
                    first = (r["seq"] if r["seq"] < expected else expected, "record missing")
                elif record_hash(r) != bytes(r["hash"]):
                    first = (r["seq"], "contents do not match the hash")
                elif bytes(r["prev_hash"]) != prev:
                    first = (r["seq"], "does not link to the previous record")
                elif r["payload"] is not None and hashlib.sha256(bytes(r["payload"])).digest() != bytes(r["payload_digest"] or b""):
                    first = (r["seq"], "payload changed")
            for head in cps.get(r["seq"], []):
                if head == bytes(r["hash"]):
                    good += 1
                else:
                    problems.append((chain, r["seq"], "signed checkpoint does not match the chain"))
            expected, prev = r["seq"] + 1, bytes(r["hash"])
        if first:
            problems.append((chain, first[0], first[1]))
        beyond = [s for s in cps if s >= expected]
        if beyond:
            problems.append((chain, expected, f"chain truncated: a checkpoint covers record {max(beyond)}"))
        print(f"chain {chain}: {n} records, {good} checkpoint(s) verified")
    for chain, seq, what in sorted(problems, key=lambda p: (p[0], p[1])):
        print(f"TAMPERED chain {chain} record {seq}: {what}")
    if problems:
        return 1
    print("ledger intact")
    return 0


if __name__ == "__main__":
    sys.exit(main())

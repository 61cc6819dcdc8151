#!/usr/bin/env python3
"""Drives the reference `model-signing` package (PyPI) for Rampart's interop tests.

    sign   MODEL SIG --key KEY [--cert CERT [--chain PEM ...]] [--hash sha256|blake2] [--shard-size N]
    verify MODEL SIG (--pub PUB | --trust PEM ...) [--ignore-unsigned] [--hash blake2 [--shard-size N]]

Uses the library API rather than its CLI so that shards, BLAKE2 and certificate chains are
reachable. `verify --hash` sets the hashing explicitly: model-signing 1.1.1 records BLAKE2 as
`blake2b` but its own guess from a signature only accepts `blake2`, so it cannot verify its own
BLAKE2 signatures without being told. Exit status: 0 success, 1 failure (the error on stderr).
"""
import argparse
import pathlib
import sys

import model_signing


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("op", choices=["sign", "verify"])
    p.add_argument("model", type=pathlib.Path)
    p.add_argument("sig", type=pathlib.Path)
    p.add_argument("--key")
    p.add_argument("--cert")
    p.add_argument("--chain", action="append", default=[])
    p.add_argument("--hash", default="sha256")
    p.add_argument("--shard-size", type=int)
    p.add_argument("--pub")
    p.add_argument("--trust", action="append", default=[])
    p.add_argument("--ignore-unsigned", action="store_true")
    a = p.parse_args()
    hc = model_signing.hashing.Config()
    if a.shard_size:
        hc.use_shard_serialization(hashing_algorithm=a.hash, shard_size=a.shard_size)
    else:
        hc.use_file_serialization(hashing_algorithm=a.hash)
    try:
        if a.op == "sign":
            ignored = []
            try:
                ignored.append(a.sig.resolve().relative_to(a.model.resolve()))
            except ValueError:
                pass
            hc.set_ignored_paths(paths=ignored, ignore_git_paths=True)
            cfg = model_signing.signing.Config()
            if a.cert:
                cfg.use_certificate_signer(private_key=a.key, signing_certificate=a.cert, certificate_chain=a.chain)
            else:
                cfg.use_elliptic_key_signer(private_key=a.key)
            cfg.set_hashing_config(hc).sign(a.model, a.sig)
        else:
            cfg = model_signing.verifying.Config()
            if a.pub:
                cfg.use_elliptic_key_verifier(public_key=a.pub)
            else:
                cfg.use_certificate_verifier(certificate_chain=a.trust)
            if a.hash != "sha256":
                cfg.set_hashing_config(hc)
            cfg.set_ignore_unsigned_files(a.ignore_unsigned).verify(a.model, a.sig)
    except Exception as e:  # the reference tool reports every failure as an exception
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Side-by-side: `rampart model scan` vs picklescan, modelscan and fickling on the generated
corpus (scripts/model-corpus.py), plus throughput on large generated model files.

The peer tools come from PyPI into a venv under target/ (never committed):
    python3 -m venv target/compare-venv
    target/compare-venv/bin/pip install picklescan modelscan fickling typing_extensions
With --real-python (the venv scripts/test.sh makes, target/model-venv), the benign files that
numpy, joblib, scikit-learn, pandas, Keras and safetensors really write
(scripts/model-corpus-real.py) join the corpus.
usage: model-compare.py [--rampart target/release/rampart] [--venv target/compare-venv]
                        [--real-python target/model-venv/bin/python] [--large-mb 1024]
Prints a Markdown table (the one in crates/rampart-supply/README.md).
"""
import argparse, json, os, struct, subprocess, sys, time, zipfile

ap = argparse.ArgumentParser()
ap.add_argument("--rampart", default="target/release/rampart")
ap.add_argument("--venv", default="target/compare-venv")
ap.add_argument("--work", default="target/model-compare")
ap.add_argument("--large-mb", type=int, default=1024)
ap.add_argument("--real-python", default=None)
args = ap.parse_args()
# The peer tools write result files into their working directory (fickling's
# safety_results.json): run them in the work dir, with absolute paths.
args.rampart, args.venv, args.work = (os.path.abspath(p) for p in (args.rampart, args.venv, args.work))
os.makedirs(args.work, exist_ok=True)

here = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(args.work, "corpus")
subprocess.run([sys.executable, os.path.join(here, "model-corpus.py"), corpus], check=True, stdout=subprocess.DEVNULL)
manifest = json.load(open(os.path.join(corpus, "MANIFEST.json")))
if args.real_python:
    real = os.path.join(corpus, "real")
    subprocess.run([args.real_python, os.path.join(here, "model-corpus-real.py"), real], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for m in json.load(open(os.path.join(real, "MANIFEST.json"))):
        manifest.append({**m, "file": "real/" + m["file"], "class": "written by the library: " + m["class"]})
    os.remove(os.path.join(real, "MANIFEST.json"))
venv = os.path.join(args.venv, "bin")

# exit code -> verdict, per tool
TOOLS = {
    "rampart": (lambda p: [args.rampart, "model", "scan", "--quiet", p], {0: "clean", 1: "flag", 2: "error"}),
    "picklescan": (lambda p: [f"{venv}/picklescan", "-p", p], {0: "clean", 1: "flag", 2: "error"}),
    "modelscan": (lambda p: [f"{venv}/modelscan", "-p", p], {0: "clean", 1: "flag", 2: "error", 3: "skip", 4: "error"}),
    "fickling": (lambda p: [f"{venv}/fickling", "--check-safety", p], None),
}
try:
    out = subprocess.run([f"{venv}/python", "-c", "import fickling;print(fickling.EXIT_CLEAN, fickling.EXIT_UNSAFE, fickling.EXIT_ERROR)"], capture_output=True, text=True, check=True).stdout.split()
    TOOLS["fickling"] = (TOOLS["fickling"][0], {int(out[0]): "clean", int(out[1]): "flag", int(out[2]): "error"})
except Exception as e:  # noqa: BLE001
    print(f"fickling unavailable: {e}", file=sys.stderr)
    TOOLS.pop("fickling")

results = {t: {} for t in TOOLS}
elapsed = {t: 0.0 for t in TOOLS}
for tool, (cmd, codes) in TOOLS.items():
    for m in manifest:
        path = os.path.join(corpus, m["file"])
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(cmd(path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, cwd=args.work).returncode
        except subprocess.TimeoutExpired:
            rc = -9
        elapsed[tool] += time.perf_counter() - t0
        results[tool][m["file"]] = codes.get(rc, "error")

mal = [m for m in manifest if m["expect"] == "malicious"]
ben = [m for m in manifest if m["expect"] == "benign"]
print(f"Corpus: {len(mal)} malicious, {len(ben)} benign files (scripts/model-corpus.py"
      + (f", {sum(m['file'].startswith('real/') for m in manifest)} of the benign written by the real libraries" if args.real_python else "") + ")\n")
print("| tool | malicious flagged | malicious missed (clean) | malicious: error/unsupported | benign flagged (FP) | benign: error/unsupported | corpus time |")
print("|---|---|---|---|---|---|---|")
for tool in TOOLS:
    r = results[tool]
    flagged = sum(r[m["file"]] == "flag" for m in mal)
    missed = sum(r[m["file"]] == "clean" for m in mal)
    merr = len(mal) - flagged - missed
    fp = sum(r[m["file"]] == "flag" for m in ben)
    berr = sum(r[m["file"]] in ("error", "skip") for m in ben)
    print(f"| {tool} | {flagged}/{len(mal)} | {missed} | {merr} | {fp}/{len(ben)} | {berr} | {elapsed[tool]:.1f}s |")

print("\nPer bypass class (F flagged, . clean, E error, S skipped as unsupported):\n")
print("| file | class | " + " | ".join(TOOLS) + " |")
print("|---|---|" + "---|" * len(TOOLS))
sym = {"flag": "F", "clean": ".", "error": "E", "skip": "S"}
for m in manifest:
    row = " | ".join(sym[results[t][m["file"]]] for t in TOOLS)
    print(f"| {m['file']} ({m['expect'][0].upper()}) | {m['class']} | {row} |")

# ---- throughput on large files ----
large = os.path.join(args.work, "large")
os.makedirs(large, exist_ok=True)
torch_zip = os.path.join(large, "big_state_dict.pt")
n = args.large_mb
if not os.path.exists(torch_zip) or os.path.getsize(torch_zip) < n << 20:
    chunk = os.urandom(1 << 20)
    with zipfile.ZipFile(torch_zip, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        for i in range(n // 64):
            with z.open(f"archive/data/{i}", "w", force_zip64=True) as f:
                for _ in range(64):
                    f.write(chunk)
        z.writestr("archive/version", b"3\n")
big_pickle = os.path.join(large, "big_pickle.pkl")
if not os.path.exists(big_pickle):
    blob = os.urandom(1 << 20)
    with open(big_pickle, "wb") as f:
        f.write(b"\x80\x04]")
        for i in range(n // 4):
            # ("weight", <1 MiB of bytes>) appended to a list: no globals, so it must be clean
            f.write(b"\x8c\x06weight" + b"\x8e" + struct.pack("<Q", len(blob)) + blob + b"\x86a")
        f.write(b".")
# many small storages: per-record cost (a transformer checkpoint has hundreds)
many = os.path.join(large, "many_storages.pt")
if not os.path.exists(many):
    chunk = os.urandom(256 << 10)
    with zipfile.ZipFile(many, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        for i in range(n * 4):
            z.writestr(f"archive/data/{i}", chunk)
        z.writestr("archive/version", b"3\n")
# safetensors and a joblib dump with its arrays inline
st = os.path.join(large, "big.safetensors")
if not os.path.exists(st):
    k = n // 64
    header = {f"w{i}": {"dtype": "F32", "shape": [16 << 20], "data_offsets": [i * (64 << 20), (i + 1) * (64 << 20)]} for i in range(k)}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    chunk = os.urandom(64 << 20)
    with open(st, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _ in range(k):
            f.write(chunk)
jl = os.path.join(large, "big_arrays.joblib")
if not os.path.exists(jl) and args.real_python:
    subprocess.run([args.real_python, "-c", f"import joblib, numpy as np; joblib.dump({{f'w{{i}}': np.random.rand(8 << 20) for i in range({n // 64})}}, {jl!r})"], check=True)
files = [p for p in (torch_zip, many, st, jl, big_pickle) if os.path.exists(p)]
print("\nThroughput (wall time, one run each, same machine, side by side):\n")
print("| tool | " + " | ".join(os.path.basename(p) + f" ({os.path.getsize(p) >> 20} MiB)" for p in files) + " |")
print("|---|" + "---|" * len(files))
for tool, (cmd, codes) in TOOLS.items():
    cells = []
    for p in files:
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(cmd(p), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600, cwd=args.work).returncode
            dt = time.perf_counter() - t0
            cells.append(f"{dt:.2f}s, {os.path.getsize(p) / 1e6 / dt:.0f} MB/s ({codes.get(rc, 'error')})")
        except subprocess.TimeoutExpired:
            cells.append("timeout (600s)")
    print(f"| {tool} | " + " | ".join(cells) + " |")

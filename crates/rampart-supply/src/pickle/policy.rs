//! Default-deny policy over what the pickle VM saw.
//!
//! A global is safe only when it is on [`SAFE_GLOBALS`] (or matched by [`is_torch_type`]):
//! what `torch.save` state dicts, numpy arrays and joblib wrappers actually need. Everything
//! else is a finding. Known-dangerous globals are critical, and so is any path that walks
//! *through* a dangerous module or a dunder attribute (`numpy.testing._private.utils.os.system`,
//! `builtins.__dict__`), because denylists keyed on the module alone have been bypassed that way.

use std::collections::{BTreeMap, HashSet};

use super::vm::{AnomalyKind, Callee, ImportTarget, Trace};
use crate::report::{Finding, Rule, Severity};

/// What real model files import. Exact `module.name` strings.
pub const SAFE_GLOBALS: &[&str] = &[
    // containers and builtin types
    "collections.OrderedDict",
    "collections.defaultdict",
    "collections.Counter",
    "collections.deque",
    "builtins.set",
    "builtins.frozenset",
    "builtins.slice",
    "builtins.complex",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.range",
    "builtins.object",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.str",
    "builtins.list",
    "builtins.tuple",
    "builtins.dict",
    "copyreg._reconstructor",
    "_codecs.encode",
    // PyTorch tensors, parameters and storages
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._tensor._rebuild_from_type_v2",
    "torch.nn.parameter.Parameter",
    "torch.nn.parameter.UninitializedParameter",
    "torch.serialization._get_layout",
    "torch.Tensor",
    "torch.Size",
    "torch.device",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch.UntypedStorage",
    // numpy arrays and scalars
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__generator_ctor",
    // scipy sparse matrices and pandas frames, as scikit-learn and joblib users pickle them
    "scipy.sparse._csr.csr_matrix",
    "scipy.sparse._csc.csc_matrix",
    "scipy.sparse._coo.coo_matrix",
    "scipy.sparse._csr.csr_array",
    "scipy.sparse._csc.csc_array",
    "scipy.sparse.csr.csr_matrix",
    "scipy.sparse.csc.csc_matrix",
    "pandas._libs.internals._unpickle_block",
    "pandas.core.indexes.base._new_Index",
    "pandas.core.internals.blocks.new_block",
    "pandas._libs.tslibs.timestamps._unpickle_timestamp",
    "pandas._libs.tslibs.timedeltas._timedelta_unpickle",
    // joblib's array wrappers (their data is followed by the VM)
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
];

/// Whole modules (and everything under them) that execute code, touch files, processes or the
/// network, or load further untrusted data.
pub const DANGEROUS_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "commands",
    "popen2",
    "sys",
    "shutil",
    "socket",
    "socketserver",
    "ssl",
    "http",
    "httplib",
    "urllib",
    "urllib2",
    "urllib3",
    "requests",
    "httpx",
    "aiohttp",
    "ftplib",
    "smtplib",
    "telnetlib",
    "poplib",
    "imaplib",
    "xmlrpc",
    "webbrowser",
    "pip",
    "setuptools",
    "distutils",
    "ensurepip",
    "venv",
    "site",
    "runpy",
    "importlib",
    "imp",
    "pkgutil",
    "zipimport",
    "marshal",
    "ctypes",
    "cffi",
    "_ctypes",
    "pty",
    "signal",
    "multiprocessing",
    "concurrent",
    "threading",
    "_thread",
    "asyncio",
    "code",
    "codeop",
    "cProfile",
    "profile",
    "trace",
    "doctest",
    "pdb",
    "bdb",
    "timeit",
    "pickle",
    "_pickle",
    "cPickle",
    "pickletools",
    "dill",
    "cloudpickle",
    "shelve",
    "tempfile",
    "glob",
    "pathlib",
    "io",
    "_io",
    "fileinput",
    "linecache",
    "tarfile",
    "zipfile",
    "sqlite3",
    "platform",
    "sysconfig",
    "idlelib",
    "lib2to3",
    "logging.config",
    "_posixsubprocess",
    "posixpath",
    "ntpath",
    "genericpath",
    "mmap",
    "resource",
    "gc",
    "inspect",
    "types",
    "weakref",
    "builtins.__dict__",
    // stdlib tools that run code, compile it or start programs
    "_osx_support",
    "unittest",
    "pytest",
    "_pytest",
    "nose",
    "antigravity",
    "_aix_support",
    "test.support",
    "turtledemo",
    "tkinter",
    "_tkinter",
    "cgitb",
    "zipapp",
    "compileall",
    "py_compile",
    "rlcompleter",
    "_pyrepl",
    "_winapi",
    "winreg",
    "msvcrt",
    // framework entry points that run code, fetch it, or write files
    "scipy.weave",
    "torch.utils.benchmark",
    "torch.utils.bottleneck",
    "torch.utils.collect_env",
    "torch.utils.hipify",
    "torch.utils.tensorboard",
    "torch.testing",
    "torch.ops",
    "torch.classes",
    "torch.onnx",
    "torch.export",
    "torch._export",
    "torch.compiler",
    "torch.multiprocessing",
    "transformers.dynamic_module_utils",
    "transformers.pipelines",
    "transformers.pipeline",
    "numpy.lib._datasource",
    "numpy.DataSource",
    "transformers.utils.hub",
    "huggingface_hub",
    "torch.hub",
    "torch.jit",
    "torch.package",
    "torch.distributed",
    "torch.utils.cpp_extension",
    "torch.utils.data",
    "torch._dynamo",
    "torch._inductor",
    "torch.fx",
    "torch.cuda.memory",
    "torch.serialization.load",
    "torch.load",
    "torch.storage._load_from_bytes",
    "torch._C._jit",
    "numpy.load",
    "numpy.loadtxt",
    "numpy.fromfile",
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.lib.npyio",
    "numpy.ctypeslib",
    "joblib.load",
    "joblib.numpy_pickle.load",
    "joblib._memmapping_reducer",
    "joblib.parallel",
    "keras.utils.get_file",
    "tensorflow.io",
    "tensorflow.compat.v1.io",
    "yaml",
    "jinja2",
    "pydoc",
    "uuid._get_command_stdout",
    "uuid._popen",
    "uuid._find_mac_near_keyword",
    "uuid._find_mac_under_heading",
    "uuid._ifconfig_getnode",
    "uuid._ip_getnode",
    "uuid._arp_getnode",
    "uuid._lanscan_getnode",
    "uuid._netstat_getnode",
    "uuid._ipconfig_getnode",
    "uuid._netbios_getnode",
    "uuid._unix_getnode",
    "uuid._windll_getnode",
];

/// Functions dangerous wherever they come from (`builtins.eval`, re-exports ...).
const DANGEROUS_NAMES: &[&str] = &[
    "eval",
    "exec",
    "execfile",
    "compile",
    "__import__",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "open",
    "input",
    "breakpoint",
    "system",
    "popen",
    "spawnl",
    "spawnv",
    "spawnve",
    "execv",
    "execve",
    "execl",
    "execvp",
    "fork",
    "apply",
    "attrgetter",
    "itemgetter",
    "methodcaller",
    "partial",
    "partialmethod",
    "reduce",
    "check_output",
    "check_call",
    "Popen",
    "run_path",
    "run_module",
    "import_module",
    "resolve_name",
    "load_module",
    "loads",
    "load",
    "runctx",
    "runcall",
    "runstring",
    "runeval",
];

/// Top-level packages whose non-allowlisted globals are only medium: common in legitimate
/// model pickles (scikit-learn estimators, full `torch.save(model)` objects) but still code.
const ML_PACKAGES: &[&str] = &[
    "torch",
    "torchvision",
    "torchaudio",
    "numpy",
    "scipy",
    "sklearn",
    "xgboost",
    "lightgbm",
    "catboost",
    "pandas",
    "transformers",
    "tokenizers",
    "sentencepiece",
    "timm",
    "collections",
    "datetime",
    "decimal",
    "fractions",
    "__main__",
];

/// Of `ML_PACKAGES`, those whose classes (CamelCase names with no capability word) are not
/// reported as info: a `__main__` class is user code, and a sentencepiece processor loads a
/// model file named in its state.
const ML_CLASS_EXCEPTIONS: &[&str] = &["__main__", "sentencepiece"];

const TORCH_DTYPES: &[&str] = &[
    "float32",
    "float",
    "float64",
    "double",
    "float16",
    "half",
    "bfloat16",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "short",
    "int32",
    "int",
    "int64",
    "long",
    "bool",
    "quint8",
    "qint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "strided",
    "sparse_coo",
    "sparse_csr",
    "contiguous_format",
    "channels_last",
    "channels_last_3d",
    "preserve_format",
];

/// `torch.float32`, `torch.FloatStorage`, `numpy.float64` ...: plain type objects.
fn is_torch_type(module: &str, name: &str) -> bool {
    match module {
        "torch" => {
            TORCH_DTYPES.contains(&name)
                || (name.ends_with("Storage") && name.chars().all(|c| c.is_ascii_alphanumeric()) && name.len() < 32)
        }
        "numpy" => matches!(
            name,
            "bool_"
                | "int8"
                | "int16"
                | "int32"
                | "int64"
                | "uint8"
                | "uint16"
                | "uint32"
                | "uint64"
                | "float16"
                | "float32"
                | "float64"
                | "longdouble"
                | "complex64"
                | "complex128"
                | "str_"
                | "bytes_"
                | "object_"
                | "datetime64"
                | "timedelta64"
        ),
        "numpy.dtypes" => name.ends_with("DType") && name.chars().all(|c| c.is_ascii_alphanumeric()),
        _ => false,
    }
}

/// Python 2 module names the C unpickler maps when `fix_imports` is on (the default).
fn py3_module(module: &str) -> &str {
    match module {
        "__builtin__" | "exceptions" => "builtins",
        "copy_reg" => "copyreg",
        "cPickle" => "pickle",
        "urllib2" => "urllib.request",
        "httplib" => "http.client",
        "SocketServer" => "socketserver",
        "Queue" => "queue",
        "thread" => "_thread",
        "commands" => "subprocess",
        other => other,
    }
}

/// User-supplied additions to the allowlist: `module.name` or `module.*`.
#[derive(Clone, Debug, Default)]
pub struct Allow {
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl Allow {
    /// Builds from `--allow` values.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Allow {
        let mut allow = Allow::default();
        for item in items {
            let item = item.as_ref().trim();
            if let Some(prefix) = item.strip_suffix(".*") {
                allow.prefixes.push(format!("{prefix}."));
            } else if !item.is_empty() {
                allow.exact.insert(item.to_string());
            }
        }
        allow
    }

    fn contains(&self, qualified: &str) -> bool {
        self.exact.contains(qualified) || self.prefixes.iter().any(|p| qualified.starts_with(p.as_str()))
    }
}

/// The verdict on one global.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// On the allowlist.
    Safe,
    /// Not on the allowlist; the severity says how far from the allowlist.
    Unknown(Severity),
    /// Known to be dangerous; the string says why.
    Dangerous(String),
}

/// Classifies `module.name` (as written in the pickle).
pub fn classify(module: &str, name: &str, allow: &Allow) -> Verdict {
    let module = py3_module(module);
    let mut parts: Vec<&str> = module.split('.').collect();
    parts.extend(name.split('.'));
    let qualified = parts.join(".");
    if parts.iter().any(|p| p.is_empty()) {
        return Verdict::Dangerous(format!("malformed dotted path `{qualified}`"));
    }
    // Every prefix of the path: `numpy.testing._private.utils.os.system` walks through
    // `numpy.testing` (dangerous), and through `os` as a component.
    for i in 1..=parts.len() {
        let prefix = parts[..i].join(".");
        if DANGEROUS_MODULES.contains(&prefix.as_str()) {
            return Verdict::Dangerous(format!(
                "`{prefix}` can run code or reach files, processes or the network"
            ));
        }
    }
    let attr_parts = &parts[module.split('.').count()..];
    for (i, p) in parts.iter().enumerate() {
        if i > 0 && DANGEROUS_MODULES.contains(p) && attr_parts.contains(p) {
            return Verdict::Dangerous(format!("the dotted name reaches the module `{p}`"));
        }
        if p.len() > 4 && p.starts_with("__") && p.ends_with("__") && *p != "__main__" {
            return Verdict::Dangerous(format!("dunder attribute `{p}` reaches interpreter internals"));
        }
    }
    if let Some(last) = parts.last() {
        if DANGEROUS_NAMES.contains(last) && !SAFE_GLOBALS.contains(&qualified.as_str()) {
            return Verdict::Dangerous(format!("`{last}` executes code or loads untrusted data"));
        }
    }
    if SAFE_GLOBALS.contains(&qualified.as_str()) || is_torch_type(module, name) || allow.contains(&qualified) {
        return Verdict::Safe;
    }
    if let Some(why) = capability(&parts) {
        return Verdict::Dangerous(why);
    }
    if module == "builtins" {
        return Verdict::Unknown(Severity::High);
    }
    let top = parts.first().copied().unwrap_or_default();
    // A class, or Cython's generated `__pyx_unpickle_<Class>` that rebuilds one from its state.
    let class = parts
        .last()
        .is_some_and(|p| p.starts_with(|c: char| c.is_ascii_uppercase()) || p.starts_with("__pyx_unpickle_"));
    if ML_PACKAGES.contains(&top) && !ML_CLASS_EXCEPTIONS.contains(&top) && class {
        // An estimator, layer or frame class of a known ML library: what a scikit-learn or
        // full `torch.save(model)` pickle is made of. Building one calls its constructor or
        // `__setstate__` with data from the file, which runs none of the file's choosing.
        Verdict::Unknown(Severity::Info)
    } else if ML_PACKAGES.contains(&top) {
        Verdict::Unknown(Severity::Medium)
    } else {
        Verdict::Unknown(Severity::High)
    }
}

/// Words in a module or attribute path that name a capability: running code or commands,
/// importing or loading further code or data, reaching the network, writing or reading
/// files. A global outside the allowlist whose path says one of these is judged by what it
/// can do, not by the package it lives in: `torch.utils.benchmark.Timer`,
/// `sklearn.utils._testing.assert_run_python_script` and `line_profiler.LineProfiler.runcall`
/// are code execution whichever module carries them.
const CAPABILITY_WORDS: &[(&str, &str)] = &[
    ("exec", "runs code"),
    ("execute", "runs code"),
    ("eval", "runs code"),
    ("run", "runs code or commands"),
    ("runner", "runs code or commands"),
    ("runctx", "runs code"),
    ("runcall", "runs code"),
    ("compile", "compiles code"),
    ("interpreter", "runs code"),
    ("bytecode", "runs code"),
    ("script", "runs code"),
    ("launch", "starts processes"),
    ("launcher", "starts processes"),
    ("spawn", "starts processes"),
    ("popen", "starts processes"),
    ("system", "runs shell commands"),
    ("shell", "runs shell commands"),
    ("subprocess", "starts processes"),
    ("multiprocessing", "starts processes"),
    ("fork", "starts processes"),
    ("kill", "signals processes"),
    ("command", "runs commands"),
    ("commands", "runs commands"),
    ("cmd", "runs commands"),
    ("profile", "runs code under a profiler"),
    ("profiler", "runs code under a profiler"),
    ("cprofile", "runs code under a profiler"),
    ("benchmark", "runs code to time it"),
    ("bench", "runs code to time it"),
    ("timeit", "runs code to time it"),
    ("timer", "runs code to time it"),
    ("bottleneck", "runs code under a profiler"),
    ("debug", "runs code under a debugger"),
    ("debugger", "runs code under a debugger"),
    ("breakpoint", "runs code under a debugger"),
    ("trace", "runs code under a tracer"),
    ("testing", "test helpers run code and commands"),
    ("import", "imports code"),
    ("importer", "imports code"),
    ("reload", "imports code"),
    ("dynamic", "loads code at run time"),
    ("plugin", "loads code at run time"),
    ("library", "loads native code"),
    ("dlopen", "loads native code"),
    ("cdll", "loads native code"),
    ("load", "loads further code or data"),
    ("loads", "loads further code or data"),
    ("loader", "loads further code or data"),
    ("unpickler", "loads further code or data"),
    ("marshal", "loads code"),
    ("getattr", "reaches any attribute"),
    ("setattr", "changes any attribute"),
    ("attrgetter", "reaches any attribute"),
    ("methodcaller", "calls any method"),
    ("globals", "reaches interpreter internals"),
    ("environ", "changes the environment"),
    ("getenv", "reads the environment"),
    ("putenv", "changes the environment"),
    ("setenv", "changes the environment"),
    ("chdir", "changes the working directory"),
    ("hub", "downloads code or models"),
    ("pretrained", "downloads and loads a model"),
    ("remote", "downloads code"),
    ("download", "reaches the network"),
    ("upload", "reaches the network"),
    ("fetch", "reaches the network"),
    ("url", "reaches the network"),
    ("urlopen", "reaches the network"),
    ("urlretrieve", "reaches the network"),
    ("http", "reaches the network"),
    ("https", "reaches the network"),
    ("request", "reaches the network"),
    ("requests", "reaches the network"),
    ("socket", "reaches the network"),
    ("server", "reaches the network"),
    ("ftp", "reaches the network"),
    ("smtp", "reaches the network"),
    ("webbrowser", "starts processes"),
    ("open", "opens files"),
    ("file", "reads or writes files"),
    ("files", "reads or writes files"),
    ("tofile", "writes files"),
    ("fromfile", "reads files"),
    ("read", "reads files"),
    ("write", "writes files"),
    ("writer", "writes files"),
    ("save", "writes files"),
    ("dump", "writes files"),
    ("remove", "deletes files"),
    ("unlink", "deletes files"),
    ("rmtree", "deletes files"),
    ("mkdir", "writes files"),
    ("makedirs", "writes files"),
    ("chmod", "changes file permissions"),
    ("rename", "moves files"),
    ("memmap", "maps files"),
    ("mmap", "maps files"),
    ("tempfile", "writes files"),
    ("pickle", "loads or writes pickles"),
    ("hdf", "reads or writes files"),
    ("sql", "reaches a database"),
    ("csv", "reads or writes files"),
    ("excel", "reads or writes files"),
    ("parquet", "reads or writes files"),
    ("clipboard", "reads the clipboard"),
    ("genfromtxt", "reads files or URLs"),
    ("fromregex", "reads files"),
    ("savetxt", "writes files"),
    ("savez", "writes files"),
    ("loadmat", "reads files"),
    ("savemat", "writes files"),
    ("mmread", "reads files"),
    ("mmwrite", "writes files"),
    ("pytest", "runs test code"),
    ("tester", "runs test code"),
];

/// Lower-case words of a path component: split at `_`, digits and camel-case humps
/// (`LineProfiler` → `line`, `profiler`; `_run_cprofile` → `run`, `cprofile`).
fn words(part: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in part.split(|c: char| c == '_' || c.is_ascii_digit()) {
        let mut word = String::new();
        let chars: Vec<char> = chunk.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            let hump = c.is_uppercase()
                && i > 0
                && (chars[i - 1].is_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
            if hump && !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            word.extend(c.to_lowercase());
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

/// The capability a dotted path names, if any (see [`CAPABILITY_WORDS`]).
fn capability(parts: &[&str]) -> Option<String> {
    for part in parts {
        for w in words(part) {
            if let Some((word, what)) = CAPABILITY_WORDS.iter().find(|(k, _)| *k == w) {
                return Some(format!("`{part}` {what} (\"{word}\")"));
            }
        }
    }
    None
}

/// Turns a trace into findings for `location`.
pub fn findings(trace: &Trace, location: &str, allow: &Allow) -> Vec<Finding> {
    let mut out = Vec::new();
    // Imports, grouped by what is imported.
    let mut grouped: BTreeMap<(String, String, bool), (u64, u64, &'static str)> = BTreeMap::new();
    for imp in &trace.imports {
        let (key, offset) = match &imp.target {
            ImportTarget::Literal { module, name } => ((module.clone(), name.clone(), true), imp.offset),
            ImportTarget::NonLiteral { module, name } => ((module.clone(), name.clone(), false), imp.offset),
        };
        let e = grouped.entry(key).or_insert((offset, 0, imp.opcode));
        e.1 += 1;
    }
    for ((module, name, literal), (offset, count, opcode)) in grouped {
        let finding = |rule, severity, message| Finding {
            rule,
            severity,
            location: location.to_string(),
            offset: Some(offset),
            message,
            count,
        };
        if !literal {
            out.push(finding(
                Rule::PickleNonLiteralImport,
                Severity::Critical,
                format!("{opcode} imports a computed name: module is {module}, name is {name}"),
            ));
            continue;
        }
        let dotted = if name.contains('.') { " (dotted name)" } else { "" };
        match classify(&module, &name, allow) {
            Verdict::Safe => {}
            Verdict::Unknown(Severity::Info) => out.push(finding(
                Rule::PickleUnknownGlobal,
                Severity::Info,
                format!("imports the class `{module}.{name}`{dotted} of a known ML library (not on the allowlist; building it runs no code of the file's choosing)"),
            )),
            Verdict::Unknown(sev) => out.push(finding(
                Rule::PickleUnknownGlobal,
                sev,
                format!("imports `{module}.{name}`{dotted}, which is not on the allowlist"),
            )),
            Verdict::Dangerous(why) => out.push(finding(
                Rule::PickleDangerousGlobal,
                Severity::Critical,
                format!("imports `{module}.{name}`{dotted}: {why}"),
            )),
        }
    }
    // Calls on computed targets.
    let mut computed: BTreeMap<String, (u64, u64, &'static str)> = BTreeMap::new();
    for call in &trace.calls {
        if let Callee::Computed(what) = &call.callee {
            let e = computed.entry(what.clone()).or_insert((call.offset, 0, call.opcode));
            e.1 += 1;
        }
    }
    for (what, (offset, count, opcode)) in computed {
        out.push(Finding {
            rule: Rule::PickleComputedCall,
            severity: Severity::Critical,
            location: location.to_string(),
            offset: Some(offset),
            message: format!("{opcode} calls {what}"),
            count,
        });
    }
    // Anomalies, one finding per kind.
    let mut kinds: BTreeMap<String, (u64, u64, String, Severity)> = BTreeMap::new();
    for a in &trace.anomalies {
        let severity = match a.kind {
            AnomalyKind::ExtensionImport | AnomalyKind::BuildOnGlobal | AnomalyKind::JoblibArray => Severity::High,
            _ => Severity::Medium,
        };
        let label = match a.kind {
            AnomalyKind::FrameStraddle => {
                "an opcode crosses a FRAME boundary (pure-Python unpicklers reject it, the C unpickler runs it)"
            }
            AnomalyKind::ExtensionImport => "imports through the copyreg extension registry",
            AnomalyKind::BuildOnGlobal => "BUILD overwrites attributes of an imported object",
            AnomalyKind::MethodDispatch => "a container opcode calls a method of a constructed object",
            AnomalyKind::OutOfBandBuffer => "refers to out-of-band buffers",
            AnomalyKind::JoblibArray => "joblib array data cannot be located",
        };
        let e = kinds
            .entry(label.to_string())
            .or_insert((a.offset, 0, a.detail.clone(), severity));
        e.1 += 1;
    }
    for (label, (offset, count, detail, severity)) in kinds {
        out.push(Finding {
            rule: Rule::PickleAnomaly,
            severity,
            location: location.to_string(),
            offset: Some(offset),
            message: format!("{label}: {detail}"),
            count,
        });
    }
    if let Some(b) = &trace.broken {
        let (rule, what) = if b.io {
            (Rule::Unreadable, "cannot be read")
        } else {
            (Rule::PickleBroken, "cannot be fully parsed")
        };
        out.push(Finding {
            rule,
            severity: Severity::High,
            location: location.to_string(),
            offset: Some(b.offset),
            message: format!(
                "pickle {what} ({}); {} opcode(s) before it would run",
                b.reason,
                trace.opcodes.saturating_sub(1)
            ),
            count: 1,
        });
    }
    if trace.dropped_events > 0 {
        out.push(Finding {
            rule: Rule::LimitExceeded,
            severity: Severity::Medium,
            location: location.to_string(),
            offset: None,
            message: format!(
                "{} further imports/calls were counted but not classified",
                trace.dropped_events
            ),
            count: 1,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn sev(module: &str, name: &str) -> Verdict {
        classify(module, name, &Allow::default())
    }

    #[test]
    fn allowlisted() {
        assert_eq!(sev("torch._utils", "_rebuild_tensor_v2"), Verdict::Safe);
        assert_eq!(sev("collections", "OrderedDict"), Verdict::Safe);
        assert_eq!(sev("torch", "FloatStorage"), Verdict::Safe);
        assert_eq!(sev("torch", "bfloat16"), Verdict::Safe);
        assert_eq!(sev("__builtin__", "set"), Verdict::Safe);
        assert_eq!(sev("numpy.core.multiarray", "_reconstruct"), Verdict::Safe);
    }

    #[test]
    fn dangerous() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("__builtin__", "getattr"),
            ("pip", "main"),
            ("pkgutil", "resolve_name"),
            ("asyncio.unix_events", "_UnixSubprocessTransport"),
            ("cProfile", "run"),
            ("_operator", "attrgetter"),
            ("operator", "methodcaller"),
            ("functools", "partial"),
            ("ctypes", "CDLL"),
            ("pty", "spawn"),
            ("uuid", "_get_command_stdout"),
            ("torch.hub", "load"),
            ("torch", "load"),
            ("numpy.testing._private.utils", "runstring"),
            ("numpy", "testing._private.utils.os.system"),
            ("torch.serialization", "os.system"),
            ("builtins", "__dict__"),
            ("collections", "OrderedDict.__init__.__globals__"),
            ("code", "InteractiveInterpreter"),
            ("doctest", "debug_script"),
            ("trace", "Trace"),
            // lesser-known runners and framework entry points, judged by capability
            ("torch.utils.benchmark.utils.timer", "Timer"),
            ("torch.utils.bottleneck.__main__", "run_cprofile"),
            ("torch.utils.collect_env", "run"),
            ("torch.testing._internal.common_utils", "shell"),
            ("sklearn.utils._testing", "assert_run_python_script_without_output"),
            ("line_profiler", "LineProfiler.runcall"),
            ("torch.ops", "load_library"),
            ("numpy", "memmap"),
            ("torch", "UntypedStorage.from_file"),
            ("pandas", "read_pickle"),
            ("pandas.io.pytables", "HDFStore"),
            ("transformers.dynamic_module_utils", "get_class_from_dynamic_module"),
            ("huggingface_hub", "hf_hub_download"),
            ("scipy.weave", "inline"),
            ("_osx_support", "_read_output"),
            ("scipy._lib._testutils", "PytestTester"),
            ("numpy", "genfromtxt"),
            ("unittest", "main"),
        ] {
            assert!(matches!(sev(m, n), Verdict::Dangerous(_)), "{m}.{n}");
        }
    }

    #[test]
    fn unknown() {
        assert_eq!(
            sev("sklearn.linear_model._logistic", "LogisticRegression"),
            Verdict::Unknown(Severity::Info)
        );
        assert_eq!(
            sev("sklearn.utils", "_print_elapsed_time"),
            Verdict::Unknown(Severity::Medium)
        );
        // joblib's legacy wrapper loads a file the pickle names, with pickles allowed
        assert!(matches!(
            sev("joblib.numpy_pickle", "NDArrayWrapper"),
            Verdict::Dangerous(_)
        ));
        assert!(matches!(
            sev("transformers", "AutoModel.from_pretrained"),
            Verdict::Dangerous(_)
        ));
        assert_eq!(sev("evilpkg", "thing"), Verdict::Unknown(Severity::High));
        // the classes a scikit-learn, pandas or PyTorch pickle really holds stay medium
        for (m, n) in [
            ("sklearn.model_selection._split", "train_test_split"),
            ("scipy.sparse._dok", "_dok_base"),
        ] {
            assert_eq!(sev(m, n), Verdict::Unknown(Severity::Medium), "{m}.{n}");
        }
        for (m, n) in [
            ("sklearn.ensemble._forest", "RandomForestClassifier"),
            ("sklearn.gaussian_process._gpr", "GaussianProcessRegressor"),
            ("pandas.core.internals.managers", "BlockManager"),
            ("torch.nn.modules.pooling", "MaxPool2d"),
            ("torch.nn.modules.module", "Module"),
            ("torch.nn.modules.linear", "NonDynamicallyQuantizableLinear"),
            ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
        ] {
            assert_eq!(sev(m, n), Verdict::Unknown(Severity::Info), "{m}.{n}");
        }
        assert_eq!(sev("builtins", "print"), Verdict::Unknown(Severity::High));
        let allow = Allow::new(["sklearn.*"]);
        assert_eq!(
            classify("sklearn.linear_model._logistic", "LogisticRegression", &allow),
            Verdict::Safe
        );
        // an allow entry never un-dangers a dangerous global
        let allow = Allow::new(["os.system"]);
        assert!(matches!(classify("os", "system", &allow), Verdict::Dangerous(_)));
    }
}

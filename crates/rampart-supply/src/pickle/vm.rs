//! A symbolic pickle machine. It walks the opcodes exactly as CPython's C unpickler
//! (`Modules/_pickle.c`) would, keeping a stack, a memo and the MARK fences, but every value is a
//! symbol: an import yields a [`Global`] naming what *would* be imported, a call yields an object
//! remembering who made it. Nothing is ever imported or executed.
//!
//! What it records is a [`Trace`]: every import (with whether its operands were literal
//! strings), every call (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD on an imported object,
//! APPEND/SETITEM dispatched to an object's methods), and every anomaly. The policy decides
//! what is dangerous; this module only tells the truth about the stream.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::BufRead;
use std::rc::Rc;

use super::input::{Input, ReadError, KEEP_STRING};

/// Highest protocol CPython understands.
pub const HIGHEST_PROTOCOL: u8 = 5;
/// Containers keep this many elements for inspection; the rest are only counted.
const KEEP_ITEMS: usize = 256;
/// Nested pickles (joblib object arrays) deeper than this are refused.
const MAX_NESTING: u8 = 4;
/// At most this many events of one kind are kept per stream (the count stays exact).
const MAX_EVENTS: usize = 10_000;

/// How an import's module and name were obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportTarget {
    /// Both operands are literal strings in the stream (possibly via the memo).
    Literal {
        /// Module, as written (before any Python 2 name mapping).
        module: String,
        /// Attribute name; may be dotted (`a.b.c`).
        name: String,
    },
    /// At least one operand was computed (the result of a call, a non-string value...).
    NonLiteral {
        /// What the module operand was.
        module: String,
        /// What the name operand was.
        name: String,
    },
}

/// One import opcode.
#[derive(Clone, Debug)]
pub struct Import {
    /// Offset of the opcode in the file.
    pub offset: u64,
    /// `GLOBAL`, `STACK_GLOBAL` or `INST`.
    pub opcode: &'static str,
    /// What is imported.
    pub target: ImportTarget,
}

/// What a call opcode invokes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Callee {
    /// An imported global.
    Global {
        /// Module.
        module: String,
        /// Name.
        name: String,
    },
    /// Something computed at load time (e.g. the return value of another call).
    Computed(String),
}

/// One call opcode.
#[derive(Clone, Debug)]
pub struct Call {
    /// Offset of the opcode.
    pub offset: u64,
    /// The opcode (`REDUCE`, `NEWOBJ`, `NEWOBJ_EX`, `OBJ`, `INST`, `BUILD`, `APPEND`, ...).
    pub opcode: &'static str,
    /// What is called.
    pub callee: Callee,
}

/// Something legal but suspicious, or a place where unpicklers disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnomalyKind {
    /// An opcode's bytes run past the end of its FRAME: the pure-Python unpickler rejects
    /// this, the C unpickler (what `pickle.load` and `torch.load` use) accepts it.
    FrameStraddle,
    /// EXT1/EXT2/EXT4: an import through the copyreg extension registry.
    ExtensionImport,
    /// BUILD applied to an imported global itself, which overwrites its attributes.
    BuildOnGlobal,
    /// APPEND(S)/SETITEM(S)/ADDITEMS on something that is not a list/dict/set: the unpickler
    /// calls that object's methods.
    MethodDispatch,
    /// NEXT_BUFFER: out-of-band data the loader must supply.
    OutOfBandBuffer,
    /// A joblib array wrapper whose data could not be located.
    JoblibArray,
}

/// One anomaly.
#[derive(Clone, Debug)]
pub struct Anomaly {
    /// Offset of the opcode.
    pub offset: u64,
    /// Kind.
    pub kind: AnomalyKind,
    /// Human-readable detail.
    pub detail: String,
}

/// Why the machine stopped before a clean end.
#[derive(Clone, Debug)]
pub struct Broken {
    /// Offset where parsing failed.
    pub offset: u64,
    /// Reason, for the report.
    pub reason: String,
    /// True when the underlying reader failed (an I/O error, not the pickle's fault).
    pub io: bool,
}

/// Everything the machine saw in one byte stream (one or several concatenated pickles).
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Imports in stream order.
    pub imports: Vec<Import>,
    /// Calls in stream order.
    pub calls: Vec<Call>,
    /// Anomalies in stream order.
    pub anomalies: Vec<Anomaly>,
    /// Set when the stream could not be parsed to its end.
    pub broken: Option<Broken>,
    /// Highest protocol announced by PROTO.
    pub protocol: Option<u8>,
    /// Number of complete pickles (STOP reached).
    pub pickles: u32,
    /// Opcodes executed.
    pub opcodes: u64,
    /// Offset just past the last complete pickle.
    pub end: u64,
    /// Bytes after the last pickle that are not themselves a pickle (legacy PyTorch storages,
    /// joblib padding...), not executed by any unpickler.
    pub trailing: bool,
    /// Imports or calls beyond [`MAX_EVENTS`] that were counted but not kept.
    pub dropped_events: u64,
    /// PyTorch storages named by persistent ids (`('storage', type, key, location, numel)`).
    pub storages: Vec<StorageRef>,
    /// Tensors built on those storages by `torch._utils._rebuild_tensor*`.
    pub views: Vec<TensorView>,
}

/// A PyTorch storage as `data.pkl` describes it; the archive must hold exactly that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRef {
    /// Record name under `data/`.
    pub key: String,
    /// Storage class (`FloatStorage`, ...), which fixes the element size.
    pub kind: String,
    /// Elements.
    pub numel: Option<u64>,
}

/// A tensor over a storage: the elements it reads must lie inside the storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorView {
    /// Offset of the REDUCE.
    pub offset: u64,
    /// Storage key.
    pub key: String,
    /// Storage offset, sizes and strides, in elements.
    pub storage_offset: i64,
    /// Sizes.
    pub size: Vec<i64>,
    /// Strides.
    pub stride: Vec<i64>,
}

/// Knobs for [`scan`].
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Follow joblib's `NumpyArrayWrapper` (raw array bytes inlined after its BUILD).
    pub joblib: bool,
    /// Keep reading pickles after the first STOP (PyTorch legacy files hold five).
    pub multi: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            joblib: true,
            multi: true,
        }
    }
}

#[derive(Debug)]
struct Global {
    module: String,
    name: String,
}

#[derive(Debug)]
struct Obj {
    made_by: Callee,
    args: V,
    state: Option<V>,
}

#[derive(Debug, Default)]
struct Items {
    kept: Vec<V>,
}

impl Items {
    fn push(&mut self, v: V) {
        if self.kept.len() < KEEP_ITEMS {
            self.kept.push(v);
        }
    }
}

/// A symbolic value.
#[derive(Clone, Debug)]
enum V {
    None,
    Bool(bool),
    Int(i64),
    BigInt,
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(Rc<Vec<V>>),
    List(Rc<RefCell<Items>>),
    Dict(Rc<RefCell<Items>>),
    Set(Rc<RefCell<Items>>),
    FrozenSet,
    Global(Rc<Global>),
    Obj(Rc<RefCell<Obj>>),
    /// A persistent-load result; the storage key when the id was a PyTorch storage tuple.
    PersId(Option<Rc<str>>),
    Ext,
    Buffer,
}

impl V {
    fn describe(&self) -> String {
        match self {
            V::None => "None".into(),
            V::Bool(_) => "a bool".into(),
            V::Int(_) | V::BigInt => "an int".into(),
            V::Float => "a float".into(),
            V::Str(s) => format!("the string `{}`", truncate(s, 80)),
            V::Bytes => "a bytes value".into(),
            V::Tuple(_) => "a tuple".into(),
            V::List(_) => "a list".into(),
            V::Dict(_) => "a dict".into(),
            V::Set(_) | V::FrozenSet => "a set".into(),
            V::Global(g) => format!("the global `{}.{}`", g.module, g.name),
            V::Obj(o) => match &o.borrow().made_by {
                Callee::Global { module, name } => format!("the result of calling `{module}.{name}`"),
                Callee::Computed(what) => format!("the result of calling {what}"),
            },
            V::PersId(_) => "a persistent-load result".into(),
            V::Ext => "an extension-registry object".into(),
            V::Buffer => "an out-of-band buffer".into(),
        }
    }

    fn callee(&self) -> Callee {
        match self {
            V::Global(g) => Callee::Global {
                module: g.module.clone(),
                name: g.name.clone(),
            },
            other => Callee::Computed(other.describe()),
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            V::Int(i) => Some(*i),
            V::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// Why one opcode could not run.
enum Halt {
    Read(ReadError),
    Bad(String),
}

impl From<ReadError> for Halt {
    fn from(e: ReadError) -> Self {
        Halt::Read(e)
    }
}

fn bad<T>(msg: impl Into<String>) -> Result<T, Halt> {
    Err(Halt::Bad(msg.into()))
}

/// Runs the machine over `reader`, whose first byte sits at `start` in the file.
pub fn scan<R: BufRead>(reader: R, start: u64, opts: Options) -> Trace {
    let mut input = Input::new(reader, start);
    let mut trace = Trace::default();
    run_stream(&mut input, &mut trace, opts, 0);
    trace
}

/// The first pickle of a legacy (pre-1.6, non-zip) `torch.save` file: protocol 2, the magic
/// number 0x1950a86a20f9469cfc6c as a LONG1.
const TORCH_LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";
/// `torch.load` reads five pickles from a legacy file (magic, protocol, system info, the
/// object, storage keys); raw storage bytes follow and are never unpickled.
const TORCH_LEGACY_PICKLES: u32 = 5;

fn run_stream<R: BufRead>(input: &mut Input<R>, trace: &mut Trace, opts: Options, depth: u8) {
    let mut first = true;
    let legacy_torch = input.starts_with(TORCH_LEGACY_MAGIC);
    let pickles_before = trace.pickles;
    loop {
        let begin = input.pos();
        let (imports, calls) = (trace.imports.len(), trace.calls.len());
        let result = Machine {
            input: &mut *input,
            trace: &mut *trace,
            opts,
            depth,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            frame_end: None,
            containers: Vec::new(),
            objects: Vec::new(),
        }
        .run();
        match result {
            Ok(()) => {
                trace.pickles += 1;
                trace.end = input.pos();
            }
            Err((offset, halt)) => {
                let produced = trace.imports.len() > imports || trace.calls.len() > calls;
                if !first && !produced {
                    // A later "pickle" that breaks before importing or calling anything is just
                    // trailing data (raw storages after a legacy PyTorch file).
                    trace.trailing = true;
                    trace.end = begin;
                    return;
                }
                let (reason, io) = match halt {
                    Halt::Read(ReadError::Eof) => ("the stream ends inside an opcode (truncated)".to_string(), false),
                    Halt::Read(ReadError::LineTooLong) => ("a text argument is longer than 64 KiB".to_string(), false),
                    Halt::Read(ReadError::Io(e)) => (format!("read error: {e}"), true),
                    Halt::Bad(msg) => (msg, false),
                };
                trace.broken = Some(Broken { offset, reason, io });
                return;
            }
        }
        first = false;
        if !opts.multi || depth > 0 {
            return;
        }
        if legacy_torch && trace.pickles - pickles_before >= TORCH_LEGACY_PICKLES {
            trace.trailing = !matches!(input.peek(), Ok(None));
            return;
        }
        // The next pickle need not start with PROTO: the C unpickler accepts any opcode
        // first, so whatever follows is run as a pickle until it breaks without effect.
        match input.peek() {
            Ok(None) | Err(_) => return,
            Ok(Some(_)) => continue,
        }
    }
}

struct Machine<'a, R> {
    input: &'a mut Input<R>,
    trace: &'a mut Trace,
    opts: Options,
    depth: u8,
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: HashMap<u64, V>,
    /// End offset of the current FRAME, if inside one.
    frame_end: Option<u64>,
    /// Every mutable container and object made, so that `Drop` can break the reference
    /// cycles a pickle can build (a list appended to itself) instead of leaking them.
    containers: Vec<Rc<RefCell<Items>>>,
    objects: Vec<Rc<RefCell<Obj>>>,
}

impl<R> Drop for Machine<'_, R> {
    fn drop(&mut self) {
        for c in &self.containers {
            c.borrow_mut().kept.clear();
        }
        for o in &self.objects {
            let mut o = o.borrow_mut();
            o.state = None;
            o.args = V::None;
        }
    }
}

impl<R> Machine<'_, R> {
    /// Stack index of the innermost MARK: nothing below it may be popped.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }
}

impl<R: BufRead> Machine<'_, R> {
    fn run(&mut self) -> Result<(), (u64, Halt)> {
        loop {
            let offset = self.input.pos();
            let op = match self.input.u8() {
                Ok(op) => op,
                Err(e) => return Err((offset, e.into())),
            };
            self.trace.opcodes += 1;
            match self.step(op, offset) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(h) => return Err((offset, h)),
            }
            if let Some(end) = self.frame_end {
                let pos = self.input.pos();
                if pos > end && offset < end {
                    self.anomaly(
                        offset,
                        AnomalyKind::FrameStraddle,
                        format!("opcode 0x{op:02x} at {offset} runs past the FRAME ending at {end}"),
                    );
                }
                if pos >= end {
                    self.frame_end = None;
                }
            }
        }
    }

    fn anomaly(&mut self, offset: u64, kind: AnomalyKind, detail: String) {
        if self.trace.anomalies.len() < MAX_EVENTS {
            self.trace.anomalies.push(Anomaly { offset, kind, detail });
        }
    }

    fn import(&mut self, offset: u64, opcode: &'static str, target: ImportTarget) {
        if self.trace.imports.len() < MAX_EVENTS {
            self.trace.imports.push(Import { offset, opcode, target });
        } else {
            self.trace.dropped_events += 1;
        }
    }

    fn call(&mut self, offset: u64, opcode: &'static str, callee: Callee) {
        if self.trace.calls.len() < MAX_EVENTS {
            self.trace.calls.push(Call { offset, opcode, callee });
        } else {
            self.trace.dropped_events += 1;
        }
    }

    fn items(&mut self, items: Items) -> Rc<RefCell<Items>> {
        let rc = Rc::new(RefCell::new(items));
        self.containers.push(Rc::clone(&rc));
        rc
    }

    fn push(&mut self, v: V) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<V, Halt> {
        if self.stack.len() <= self.fence() {
            return bad("stack underflow");
        }
        self.stack.pop().map_or_else(|| bad("stack underflow"), Ok)
    }

    fn top(&self) -> Result<&V, Halt> {
        if self.stack.len() <= self.fence() {
            return bad("stack underflow");
        }
        self.stack.last().map_or_else(|| bad("stack underflow"), Ok)
    }

    /// Pops everything above the last MARK and the MARK itself.
    fn pop_mark(&mut self) -> Result<Vec<V>, Halt> {
        let Some(mark) = self.marks.pop() else {
            return bad("could not find MARK");
        };
        if mark > self.stack.len() {
            return bad("MARK beyond the stack");
        }
        Ok(self.stack.split_off(mark))
    }

    fn line_str(&mut self) -> Result<String, Halt> {
        let line = self.input.line()?;
        match String::from_utf8(line) {
            Ok(s) => Ok(s),
            Err(_) => bad("text argument is not valid UTF-8"),
        }
    }

    fn string(&mut self, len: u64) -> Result<V, Halt> {
        let (bytes, _) = self.input.bytes(len, KEEP_STRING)?;
        match String::from_utf8(bytes) {
            Ok(s) => Ok(V::Str(s.into())),
            // A cut in the middle of a code point (only when truncated) or raw bytes decoded
            // with the default ASCII/UTF-8 encoding: CPython would raise; keep what we can.
            Err(e) => Ok(V::Str(String::from_utf8_lossy(e.as_bytes()).into_owned().into())),
        }
    }

    fn memo_get(&self, key: u64) -> Result<V, Halt> {
        match self.memo.get(&key) {
            Some(v) => Ok(v.clone()),
            None => bad(format!("memo key {key} not found")),
        }
    }

    fn memo_put(&mut self, key: u64) -> Result<(), Halt> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn global(&mut self, offset: u64, opcode: &'static str, module: String, name: String) -> V {
        self.import(
            offset,
            opcode,
            ImportTarget::Literal {
                module: module.clone(),
                name: name.clone(),
            },
        );
        V::Global(Rc::new(Global { module, name }))
    }

    /// Records `('storage', torch.<Kind>Storage, key, location, numel)` persistent ids.
    fn storage_id(&mut self, id: &V) -> Option<Rc<str>> {
        let V::Tuple(t) = id else { return None };
        let [V::Str(tag), kind, V::Str(key), _, numel, ..] = t.as_slice() else {
            return None;
        };
        if &**tag != "storage" {
            return None;
        }
        let kind = match kind {
            V::Global(g) => g.name.clone(),
            _ => "?".into(),
        };
        let numel = match numel {
            V::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        };
        let r = StorageRef {
            key: key.to_string(),
            kind,
            numel,
        };
        if !self.trace.storages.contains(&r) && self.trace.storages.len() < MAX_EVENTS {
            self.trace.storages.push(r);
        }
        Some(Rc::clone(key))
    }

    /// Records `_rebuild_tensor(_v2/_v3)(storage, offset, size, stride, ...)`.
    fn tensor_view(&mut self, offset: u64, callable: &V, args: &V) {
        let V::Global(g) = callable else { return };
        if g.module != "torch._utils" || !g.name.starts_with("_rebuild_tensor") {
            return;
        }
        let V::Tuple(a) = args else { return };
        let [V::PersId(Some(key)), V::Int(storage_offset), V::Tuple(size), V::Tuple(stride), ..] = a.as_slice() else {
            return;
        };
        let ints = |t: &[V]| -> Option<Vec<i64>> {
            t.iter()
                .map(|v| match v {
                    V::Int(n) => Some(*n),
                    _ => None,
                })
                .collect()
        };
        let (Some(size), Some(stride)) = (ints(size), ints(stride)) else {
            return;
        };
        if self.trace.views.len() < MAX_EVENTS {
            self.trace.views.push(TensorView {
                offset,
                key: key.to_string(),
                storage_offset: *storage_offset,
                size,
                stride,
            });
        }
    }

    fn make_obj(&mut self, offset: u64, opcode: &'static str, callable: &V, args: V) -> V {
        self.tensor_view(offset, callable, &args);
        let made_by = callable.callee();
        self.call(offset, opcode, made_by.clone());
        let o = Rc::new(RefCell::new(Obj {
            made_by,
            args,
            state: None,
        }));
        self.objects.push(Rc::clone(&o));
        V::Obj(o)
    }

    /// One opcode. `Ok(true)` on STOP.
    fn step(&mut self, op: u8, offset: u64) -> Result<bool, Halt> {
        match op {
            // --- protocol and framing ---
            0x80 => {
                let p = self.input.u8()?;
                if p > HIGHEST_PROTOCOL {
                    return bad(format!("unsupported pickle protocol {p}"));
                }
                self.trace.protocol = Some(self.trace.protocol.map_or(p, |q| q.max(p)));
            }
            0x95 => {
                let len = u64::from_le_bytes(self.input.array::<8>()?);
                // The C unpickler only checks that the frame's bytes exist, then reads on
                // linearly; opcodes may cross the boundary (noted as an anomaly in `run`).
                self.frame_end = Some(self.input.pos().saturating_add(len));
            }
            b'.' => {
                let _ = self.pop().or_else(|_| bad("STOP with an empty stack"))?;
                return Ok(true);
            }
            // --- stack manipulation ---
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                // POP removes a MARK when the mark sits on top (C unpickler behaviour).
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.push(v);
            }
            // --- memo ---
            b'p' => {
                let line = self.line_str()?;
                let key = parse_u64(&line).ok_or_else(|| Halt::Bad("PUT with a bad memo key".into()))?;
                self.memo_put(key)?;
            }
            b'q' => {
                let key = u64::from(self.input.u8()?);
                self.memo_put(key)?;
            }
            b'r' => {
                let key = u64::from(u32::from_le_bytes(self.input.array::<4>()?));
                self.memo_put(key)?;
            }
            0x94 => {
                let key = self.memo.len() as u64;
                self.memo_put(key)?;
            }
            b'g' => {
                let line = self.line_str()?;
                let key = parse_u64(&line).ok_or_else(|| Halt::Bad("GET with a bad memo key".into()))?;
                let v = self.memo_get(key)?;
                self.push(v);
            }
            b'h' => {
                let key = u64::from(self.input.u8()?);
                let v = self.memo_get(key)?;
                self.push(v);
            }
            b'j' => {
                let key = u64::from(u32::from_le_bytes(self.input.array::<4>()?));
                let v = self.memo_get(key)?;
                self.push(v);
            }
            // --- scalars ---
            b'N' => self.push(V::None),
            0x88 => self.push(V::Bool(true)),
            0x89 => self.push(V::Bool(false)),
            b'I' => {
                let line = self.line_str()?;
                let v = match line.as_str() {
                    "01" => V::Bool(true),
                    "00" => V::Bool(false),
                    s => {
                        parse_int(s).ok_or_else(|| Halt::Bad(format!("INT with a bad value `{}`", truncate(s, 40))))?
                    }
                };
                self.push(v);
            }
            b'J' => {
                let v = i32::from_le_bytes(self.input.array::<4>()?);
                self.push(V::Int(i64::from(v)));
            }
            b'K' => {
                let v = self.input.u8()?;
                self.push(V::Int(i64::from(v)));
            }
            b'M' => {
                let v = u16::from_le_bytes(self.input.array::<2>()?);
                self.push(V::Int(i64::from(v)));
            }
            b'L' => {
                let line = self.line_str()?;
                let s = line.strip_suffix('L').unwrap_or(&line);
                let v = parse_int(s).ok_or_else(|| Halt::Bad("LONG with a bad value".into()))?;
                self.push(v);
            }
            0x8a => {
                let n = self.input.u8()?;
                let (b, _) = self.input.bytes(u64::from(n), 8)?;
                self.push(small_long(&b, n));
            }
            0x8b => {
                let n = i32::from_le_bytes(self.input.array::<4>()?);
                let Ok(n) = u64::try_from(n) else {
                    return bad("LONG4 with a negative byte count");
                };
                let (b, _) = self.input.bytes(n, 8)?;
                self.push(if n <= 8 { small_long(&b, n as u8) } else { V::BigInt });
            }
            b'F' => {
                let line = self.line_str()?;
                if line.trim().parse::<f64>().is_err() && !matches!(line.trim(), "nan" | "inf" | "-inf") {
                    return bad("FLOAT with a bad value");
                }
                self.push(V::Float);
            }
            b'G' => {
                self.input.array::<8>()?;
                self.push(V::Float);
            }
            // --- strings and bytes ---
            b'S' => {
                let line = self.input.line()?;
                let s =
                    decode_string_literal(&line).ok_or_else(|| Halt::Bad("STRING argument is not quoted".into()))?;
                self.push(V::Str(s.into()));
            }
            b'T' => {
                let n = i32::from_le_bytes(self.input.array::<4>()?);
                let Ok(n) = u64::try_from(n) else {
                    return bad("BINSTRING with a negative length");
                };
                let v = self.string(n)?;
                self.push(v);
            }
            b'U' => {
                let n = self.input.u8()?;
                let v = self.string(u64::from(n))?;
                self.push(v);
            }
            b'V' => {
                let line = self.input.line()?;
                self.push(V::Str(decode_raw_unicode_escape(&line).into()));
            }
            b'X' => {
                let n = u32::from_le_bytes(self.input.array::<4>()?);
                let v = self.string(u64::from(n))?;
                self.push(v);
            }
            0x8c => {
                let n = self.input.u8()?;
                let v = self.string(u64::from(n))?;
                self.push(v);
            }
            0x8d => {
                let n = u64::from_le_bytes(self.input.array::<8>()?);
                let v = self.string(n)?;
                self.push(v);
            }
            b'B' => {
                let n = u32::from_le_bytes(self.input.array::<4>()?);
                self.input.skip(u64::from(n))?;
                self.push(V::Bytes);
            }
            b'C' => {
                let n = self.input.u8()?;
                self.input.skip(u64::from(n))?;
                self.push(V::Bytes);
            }
            0x8e | 0x96 => {
                let n = u64::from_le_bytes(self.input.array::<8>()?);
                self.input.skip(n)?;
                self.push(V::Bytes);
            }
            0x97 => {
                self.anomaly(
                    offset,
                    AnomalyKind::OutOfBandBuffer,
                    "NEXT_BUFFER: out-of-band data".into(),
                );
                self.push(V::Buffer);
            }
            0x98 => {
                self.top()?;
            }
            // --- containers ---
            b')' => self.push(V::Tuple(Rc::new(Vec::new()))),
            b't' => {
                let items = self.pop_mark()?;
                self.push(V::Tuple(Rc::new(items)));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(V::Tuple(Rc::new(items)));
            }
            b']' => {
                let l = self.items(Items::default());
                self.push(V::List(l));
            }
            b'l' => {
                let items = self.pop_mark()?;
                let list = Items {
                    kept: items.into_iter().take(KEEP_ITEMS).collect(),
                };
                let l = self.items(list);
                self.push(V::List(l));
            }
            b'}' => {
                let d = self.items(Items::default());
                self.push(V::Dict(d));
            }
            b'd' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return bad("DICT with an odd number of items");
                }
                let dict = Items {
                    kept: items.into_iter().take(KEEP_ITEMS * 2).collect(),
                };
                let d = self.items(dict);
                self.push(V::Dict(d));
            }
            0x8f => {
                let s = self.items(Items::default());
                self.push(V::Set(s));
            }
            0x91 => {
                self.pop_mark()?;
                self.push(V::FrozenSet);
            }
            b'a' => {
                let v = self.pop()?;
                self.append(offset, "APPEND", vec![v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.append(offset, "APPENDS", items)?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(offset, "SETITEM", vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return bad("SETITEMS with an odd number of items");
                }
                self.set_items(offset, "SETITEMS", items)?;
            }
            0x90 => {
                let items = self.pop_mark()?;
                match self.top()?.clone() {
                    V::Set(set) => {
                        let mut s = set.borrow_mut();
                        items.into_iter().for_each(|v| s.push(v));
                    }
                    other => self.dispatch(offset, "ADDITEMS", &other, "add"),
                }
            }
            // --- imports ---
            b'c' => {
                let module = self.line_str()?;
                let name = self.line_str()?;
                let v = self.global(offset, "GLOBAL", module, name);
                self.push(v);
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let v = match (&module, &name) {
                    (V::Str(m), V::Str(n)) => self.global(offset, "STACK_GLOBAL", m.to_string(), n.to_string()),
                    _ => {
                        let target = ImportTarget::NonLiteral {
                            module: module.describe(),
                            name: name.describe(),
                        };
                        self.import(offset, "STACK_GLOBAL", target);
                        // CPython raises "STACK_GLOBAL requires str"; a subclassed unpickler
                        // may not. Keep going with an opaque global.
                        V::Global(Rc::new(Global {
                            module: "?".into(),
                            name: "?".into(),
                        }))
                    }
                };
                self.push(v);
            }
            0x82..=0x84 => {
                let code = match op {
                    0x82 => u32::from(self.input.u8()?),
                    0x83 => u32::from(u16::from_le_bytes(self.input.array::<2>()?)),
                    _ => i32::from_le_bytes(self.input.array::<4>()?) as u32,
                };
                self.anomaly(
                    offset,
                    AnomalyKind::ExtensionImport,
                    format!("import of extension code {code}"),
                );
                self.push(V::Ext);
            }
            // --- calls ---
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = self.make_obj(offset, "REDUCE", &callable, args);
                self.push(v);
            }
            0x81 => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = self.make_obj(offset, "NEWOBJ", &cls, args);
                self.push(v);
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = self.make_obj(offset, "NEWOBJ_EX", &cls, args);
                self.push(v);
            }
            b'o' => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return bad("OBJ without a class");
                }
                let cls = items.remove(0);
                let v = self.make_obj(offset, "OBJ", &cls, V::Tuple(Rc::new(items)));
                self.push(v);
            }
            b'i' => {
                let module = self.line_str()?;
                let name = self.line_str()?;
                let items = self.pop_mark()?;
                let cls = self.global(offset, "INST", module, name);
                let v = self.make_obj(offset, "INST", &cls, V::Tuple(Rc::new(items)));
                self.push(v);
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?.clone();
                self.build(offset, target, state)?;
            }
            // --- persistent ids ---
            b'P' => {
                self.line_str()?;
                self.push(V::PersId(None));
            }
            b'Q' => {
                let id = self.pop()?;
                let key = self.storage_id(&id);
                self.push(V::PersId(key));
            }
            _ => return bad(format!("unknown opcode 0x{op:02x}")),
        }
        Ok(false)
    }

    fn append(&mut self, offset: u64, opcode: &'static str, items: Vec<V>) -> Result<(), Halt> {
        match self.top()?.clone() {
            V::List(list) => {
                let mut l = list.borrow_mut();
                items.into_iter().for_each(|v| l.push(v));
            }
            other => self.dispatch(offset, opcode, &other, "append/extend"),
        }
        Ok(())
    }

    fn set_items(&mut self, offset: u64, opcode: &'static str, items: Vec<V>) -> Result<(), Halt> {
        match self.top()?.clone() {
            V::Dict(dict) => {
                let mut d = dict.borrow_mut();
                items.into_iter().for_each(|v| d.push(v));
            }
            other => self.dispatch(offset, opcode, &other, "__setitem__"),
        }
        Ok(())
    }

    /// A container opcode on a non-container calls the target's own method.
    fn dispatch(&mut self, offset: u64, opcode: &'static str, target: &V, method: &str) {
        if let V::Obj(o) = target {
            // OrderedDict/defaultdict/Counter/deque: the usual containers of state dicts,
            // whose methods are the builtin ones.
            if let Callee::Global { module, name } = &o.borrow().made_by {
                if module == "collections"
                    && matches!(name.as_str(), "OrderedDict" | "defaultdict" | "Counter" | "deque")
                {
                    return;
                }
            }
        }
        self.anomaly(
            offset,
            AnomalyKind::MethodDispatch,
            format!("{opcode} calls `{method}` on {}", target.describe()),
        );
        if let V::Obj(o) = target {
            let made_by = o.borrow().made_by.clone();
            if let Callee::Global { module, name } = made_by {
                self.call(
                    offset,
                    opcode,
                    Callee::Global {
                        module,
                        name: format!("{name}.{method}"),
                    },
                );
            }
        }
    }

    fn build(&mut self, offset: u64, target: V, state: V) -> Result<(), Halt> {
        match &target {
            V::Obj(o) => {
                o.borrow_mut().state = Some(state);
                let is_wrapper = matches!(&o.borrow().made_by, Callee::Global { module, name }
                    if name == "NumpyArrayWrapper" && module.ends_with("joblib.numpy_pickle"));
                if is_wrapper && self.opts.joblib {
                    self.joblib_array(offset, o)?;
                }
            }
            V::Global(g) => {
                let detail = format!("BUILD sets attributes on the imported `{}.{}`", g.module, g.name);
                self.anomaly(offset, AnomalyKind::BuildOnGlobal, detail);
                self.call(offset, "BUILD", target.callee());
            }
            V::Dict(_) | V::List(_) | V::Set(_) | V::Tuple(_) => {}
            _ => {}
        }
        Ok(())
    }

    /// joblib writes each array's raw bytes straight after its wrapper's BUILD; the loader reads
    /// them there. Skip exactly that many bytes, or, for object arrays, run the nested pickle.
    fn joblib_array(&mut self, offset: u64, o: &Rc<RefCell<Obj>>) -> Result<(), Halt> {
        let Some(state) = o.borrow().state.clone() else {
            return Ok(());
        };
        // joblib commits the current frame before it writes the array, so the wrapper's
        // BUILD ends its frame and the bytes that follow are outside any frame. Its reader is
        // the pure-Python unpickler, which would take the array from after the frame's end if
        // the frame still had bytes: then the two readings disagree.
        if let Some(end) = self.frame_end.take() {
            let pos = self.input.pos();
            if pos < end {
                self.anomaly(
                    offset,
                    AnomalyKind::JoblibArray,
                    format!("array data starts at {pos}, inside a FRAME that ends at {end}: joblib would read it from {end}"),
                );
            }
        }
        let Some(info) = JoblibArray::from_state(&state) else {
            self.anomaly(
                offset,
                AnomalyKind::JoblibArray,
                "joblib array wrapper with an unreadable state".into(),
            );
            return bad("joblib array wrapper with an unreadable state; the array data cannot be located");
        };
        if info.object {
            if self.depth + 1 >= MAX_NESTING {
                return bad("joblib object arrays nested too deeply");
            }
            let nested_opts = Options {
                joblib: false,
                multi: false,
            };
            run_stream(self.input, self.trace, nested_opts, self.depth + 1);
            if self.trace.broken.is_some() {
                return bad("the nested pickle of a joblib object array is broken");
            }
            return Ok(());
        }
        if info.aligned {
            let pad = self.input.u8()?;
            self.input.skip(u64::from(pad))?;
        }
        let Some(len) = info.byte_len else {
            return bad("joblib array size overflows");
        };
        self.input.skip(len)?;
        Ok(())
    }
}

struct JoblibArray {
    object: bool,
    aligned: bool,
    byte_len: Option<u64>,
}

impl JoblibArray {
    fn from_state(state: &V) -> Option<JoblibArray> {
        let V::Dict(d) = state else { return None };
        let d = d.borrow();
        let mut shape = None;
        let mut dtype = None;
        let mut aligned = false;
        for pair in d.kept.chunks(2) {
            let [V::Str(k), v] = pair else { continue };
            match &**k {
                "shape" => shape = Some(v.clone()),
                "dtype" => dtype = Some(v.clone()),
                "numpy_array_alignment_bytes" => aligned = !matches!(v, V::None),
                _ => {}
            }
        }
        let (object, itemsize) = dtype_size(&dtype?)?;
        let elements = match shape? {
            V::Tuple(t) => t
                .iter()
                .try_fold(1u64, |acc, v| acc.checked_mul(u64::try_from(v.as_int()?).ok()?)),
            _ => return None,
        };
        let byte_len = elements.and_then(|n| n.checked_mul(itemsize));
        Some(JoblibArray {
            object,
            aligned,
            byte_len,
        })
    }
}

/// `(is_object, itemsize)` of a pickled `numpy.dtype(...)`.
fn dtype_size(v: &V) -> Option<(bool, u64)> {
    let V::Obj(o) = v else { return None };
    let o = o.borrow();
    let V::Tuple(args) = &o.args else { return None };
    let V::Str(code) = args.first()? else { return None };
    // The dtype's state tuple carries the element size for void/structured types.
    let elsize = match &o.state {
        Some(V::Tuple(t)) if t.len() >= 8 => t.get(5).and_then(V::as_int).filter(|&n| n > 0),
        _ => None,
    };
    let code = code.trim_start_matches(['<', '>', '|', '=']);
    let kind = code.chars().next()?;
    // joblib asks `dtype.hasobject`, and a version 3+ state's flags (index 7) set it on
    // unpickling whatever the type code says: a `V16` with the object flag has its data read
    // by `pickle.load`. Any sign of objects counts (the nested pickle is then run, and raw
    // bytes read that way break it, which is a finding).
    let flagged = match &o.state {
        Some(V::Tuple(t)) if t.len() >= 8 => t.get(7).and_then(V::as_int).is_some_and(|f| f & 1 != 0),
        _ => false,
    };
    if kind == 'O' || code.to_ascii_lowercase().starts_with("object") || flagged {
        return Some((true, 8));
    }
    let digits: String = code.chars().skip(1).take_while(char::is_ascii_digit).collect();
    let n: u64 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let size = match kind {
        'U' => n.checked_mul(4)?,
        'b' | '?' if n == 0 => 1,
        _ => n,
    };
    let size = elsize.and_then(|e| u64::try_from(e).ok()).unwrap_or(size);
    Some((false, size))
}

fn parse_u64(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

fn parse_int(s: &str) -> Option<V> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(V::Int(i));
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(V::BigInt)
}

fn small_long(b: &[u8], n: u8) -> V {
    if n == 0 {
        return V::Int(0);
    }
    if n > 8 {
        return V::BigInt;
    }
    let mut buf = [0u8; 8];
    let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
        0xff
    } else {
        0
    };
    buf.iter_mut().for_each(|x| *x = fill);
    buf[..b.len()].copy_from_slice(b);
    V::Int(i64::from_le_bytes(buf))
}

/// The argument of STRING: a Python `repr` of a str, quoted with ' or ", escapes decoded like
/// `codecs.escape_decode`.
fn decode_string_literal(line: &[u8]) -> Option<String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() < 2 {
        return None;
    }
    let q = line[0];
    if !(q == b'\'' || q == b'"') || line[line.len() - 1] != q {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c != b'\\' || i + 1 >= body.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = body[i + 1];
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\n' => {}
            b'x' if i + 2 <= body.len() => {
                let hex = std::str::from_utf8(&body[i..i + 2]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                let mut k = 0;
                while k < 2 && i < body.len() && (b'0'..=b'7').contains(&body[i]) {
                    v = v * 8 + u32::from(body[i] - b'0');
                    i += 1;
                    k += 1;
                }
                out.push((v & 0xff) as u8);
            }
            other => {
                if !matches!(other, b'\\' | b'\'' | b'"') {
                    out.push(b'\\');
                }
                out.push(other);
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The argument of UNICODE (`raw-unicode-escape`): only `\uXXXX` and `\UXXXXXXXX` are escapes,
/// every other byte is a Latin-1 code point.
fn decode_raw_unicode_escape(line: &[u8]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c == b'\\' && i + 1 < line.len() && (line[i + 1] == b'u' || line[i + 1] == b'U') {
            let n = if line[i + 1] == b'u' { 4 } else { 8 };
            if let Some(ch) = line
                .get(i + 2..i + 2 + n)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                out.push(ch);
                i += 2 + n;
                continue;
            }
        }
        out.push(char::from(c));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn run(bytes: &[u8]) -> Trace {
        scan(bytes, 0, Options::default())
    }

    fn literal(t: &Trace) -> Vec<(String, String)> {
        t.imports
            .iter()
            .filter_map(|i| match &i.target {
                ImportTarget::Literal { module, name } => Some((module.clone(), name.clone())),
                ImportTarget::NonLiteral { .. } => None,
            })
            .collect()
    }

    #[test]
    fn protocol0_global_reduce() {
        let t = run(b"cos\nsystem\n(S'echo hi'\ntR.");
        assert!(t.broken.is_none(), "{:?}", t.broken);
        assert_eq!(literal(&t), vec![("os".into(), "system".into())]);
        assert_eq!(
            t.calls[0].callee,
            Callee::Global {
                module: "os".into(),
                name: "system".into()
            }
        );
        assert_eq!(t.pickles, 1);
    }

    #[test]
    fn stack_global_via_memo_and_string_opcodes() {
        // S'os' p0 0 S'system' p1 0 g0 g1 \x93
        let t = run(b"\x80\x02S'os'\np0\n0S'system'\np1\n0g0\ng1\n\x93)R.");
        assert!(t.broken.is_none(), "{:?}", t.broken);
        assert_eq!(literal(&t), vec![("os".into(), "system".into())]);
    }

    #[test]
    fn non_literal_stack_global() {
        // getattr(...) result used as module name
        let t = run(b"\x80\x04\x8c\x08builtins\x8c\x03str\x93)R\x8c\x06system\x93.");
        assert!(t
            .imports
            .iter()
            .any(|i| matches!(i.target, ImportTarget::NonLiteral { .. })));
    }

    #[test]
    fn broken_after_reduce_keeps_the_call() {
        let t = run(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R\xff\xff");
        assert_eq!(t.calls.len(), 1);
        assert!(t.broken.as_ref().unwrap().reason.contains("unknown opcode"));
    }

    #[test]
    fn obj_then_pop() {
        let t = run(b"\x80\x02(cbuiltins\nexec\nX\x01\x00\x00\x00xo0N.");
        assert!(t.broken.is_none(), "{:?}", t.broken);
        assert_eq!(t.calls[0].opcode, "OBJ");
    }

    #[test]
    fn frame_straddle_is_noted_and_parsing_continues() {
        // FRAME of 3 bytes, then a SHORT_BINUNICODE of 5 bytes crossing it
        let t = run(b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00\x8c\x05hello\x94.");
        assert!(t.broken.is_none(), "{:?}", t.broken);
        assert!(t.anomalies.iter().any(|a| a.kind == AnomalyKind::FrameStraddle));
    }

    #[test]
    fn multi_pickle_and_trailing_data() {
        let t = run(b"\x80\x02K\x01.\x80\x02cos\nsystem\n.\x00\x01\x02");
        assert_eq!(t.pickles, 2);
        assert!(t.trailing);
        assert_eq!(literal(&t).len(), 1);
    }

    #[test]
    fn huge_length_is_truncation_not_allocation() {
        let t = run(b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7fabc");
        assert!(t.broken.unwrap().reason.contains("truncated"));
    }

    #[test]
    fn stack_underflow_below_mark() {
        let t = run(b"\x80\x02K\x01(R.");
        assert!(t.broken.unwrap().reason.contains("underflow"));
    }

    #[test]
    fn inst_is_import_and_call() {
        let t = run(b"(S'ls'\nios\nsystem\n.");
        assert!(t.broken.is_none(), "{:?}", t.broken);
        assert_eq!(literal(&t), vec![("os".into(), "system".into())]);
        assert_eq!(t.calls[0].opcode, "INST");
    }

    #[test]
    fn string_literal_escapes() {
        assert_eq!(decode_string_literal(b"'o\\x73'").unwrap(), "os");
        assert_eq!(decode_string_literal(b"\"a\\'b\"").unwrap(), "a'b");
        assert!(decode_string_literal(b"os").is_none());
    }
}

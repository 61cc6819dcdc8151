//! The scan driver: walks paths, recognises formats from content (never from the file name),
//! unwraps compression and archives, and hands each stream to the checker for its format.

use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::archive::zip::{self, Archive};
use crate::formats::{self, Issue};
use crate::pickle::policy::{self, Allow};
use crate::pickle::vm::{self, Trace};
use crate::report::{FileReport, Finding, Report, Rule, Severity};

/// Knobs for a scan.
#[derive(Clone, Debug)]
pub struct Options {
    /// Extra allowed globals (`module.name` or `module.*`).
    pub allow: Allow,
    /// Archive/compression nesting limit.
    pub max_depth: u8,
    /// Decompressed bytes allowed per file on disk (zip-bomb guard).
    pub max_expanded: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow: Allow::default(),
            max_depth: 6,
            max_expanded: 64 << 30,
        }
    }
}

/// Progress of a multi-file scan, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Files done.
    pub files_done: usize,
    /// Files in all.
    pub files_total: usize,
    /// Bytes done.
    pub bytes_done: u64,
    /// Bytes in all.
    pub bytes_total: u64,
}

/// Scans model files.
#[derive(Clone, Debug, Default)]
pub struct Scanner {
    opts: Options,
}

/// Where a stream came from, which changes how strictly "is this a pickle" is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A file, or an archive member a loader unpickles or might.
    Member,
    /// A PyTorch storage record (`<archive>/data/<key>`): raw tensor bytes, never unpickled.
    Storage,
}

/// State while scanning one file on disk.
struct Ctx {
    findings: Vec<Finding>,
    formats: Vec<String>,
    expanded: u64,
    /// PyTorch storages and tensor views the pickles read so far described.
    storages: Vec<vm::StorageRef>,
    views: Vec<vm::TensorView>,
}

impl Ctx {
    fn format(&mut self, f: impl Into<String>) {
        let f = f.into();
        if !self.formats.contains(&f) {
            self.formats.push(f);
        }
    }

    fn add(&mut self, location: &str, issue: Issue) {
        self.findings.push(Finding {
            rule: issue.rule,
            severity: issue.severity,
            location: location.to_string(),
            offset: issue.offset,
            message: issue.message,
            count: 1,
        });
    }

    fn finding(&mut self, location: &str, rule: Rule, severity: Severity, message: impl Into<String>) {
        self.add(
            location,
            Issue {
                rule,
                severity,
                message: message.into(),
                offset: None,
            },
        );
    }
}

/// What the first bytes say a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Zip,
    SevenZip,
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Lz4,
    Zlib,
    Lzma,
    Npy,
    Safetensors,
    Gguf,
    Hdf5,
    /// An ONNX ModelProto (ir_version first, then a ModelProto field).
    Onnx,
    /// A TensorFlow SavedModel proto (schema version 1, then a MetaGraphDef).
    SavedModel,
    /// Starts with PROTO 0..=5.
    Pickle,
    /// Starts with an opcode a protocol 0/1 pickle can start with.
    MaybePickle,
    Data,
}

const HEAD: usize = 512;

fn sniff(head: &[u8]) -> Kind {
    let b0 = head.first().copied().unwrap_or(0);
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Kind::Zip;
    }
    if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        return Kind::SevenZip;
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Kind::Tar;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Kind::Gzip;
    }
    if head.starts_with(b"BZh") && head.get(3).is_some_and(|c| (b'1'..=b'9').contains(c)) {
        return Kind::Bzip2;
    }
    if head.starts_with(b"\xfd7zXZ\x00") {
        return Kind::Xz;
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Kind::Lz4;
    }
    if head.starts_with(b"\x93NUMPY") {
        return Kind::Npy;
    }
    if head.starts_with(b"GGUF") {
        return Kind::Gguf;
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Kind::Hdf5;
    }
    if head.len() >= 2 && b0 == 0x80 && head[1] <= vm::HIGHEST_PROTOCOL {
        return Kind::Pickle;
    }
    if head.len() >= 9 && head[8] == b'{' {
        let n = u64::from_le_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]);
        // A header length past the end of the file is still a safetensors file (a broken
        // one: the checker reports it), not data.
        if (2..(100 << 20)).contains(&n) {
            return Kind::Safetensors;
        }
    }
    if let Some(kind) = sniff_protobuf(head) {
        return kind;
    }
    if head.len() >= 2 && b0 == 0x78 && (u16::from(b0) * 256 + u16::from(head[1])) % 31 == 0 {
        return Kind::Zlib;
    }
    if head.len() >= 13 && b0 == 0x5d && head[1] == 0 && head[2] == 0 {
        return Kind::Lzma;
    }
    // The C unpickler takes any opcode first: a protocol 2+ body needs no PROTO in front
    // (`\x8c...\x93` imports with no announcement). Whether it is a pickle is for the VM to say.
    if is_opcode(b0) {
        return Kind::MaybePickle;
    }
    Kind::Data
}

/// Every pickle opcode of protocols 0 to 5.
fn is_opcode(b: u8) -> bool {
    matches!(b, 0x80..=0x98) || b"().012FIJKLMNPQRSTUVXabcd}eghijl]opqrst)uGBC".contains(&b)
}

/// Protobuf model files have no magic: ONNX starts with `ir_version` (field 1, 1..=32) and a
/// ModelProto field; a SavedModel with `saved_model_schema_version = 1` and a MetaGraphDef
/// whose first field is a message.
fn sniff_protobuf(head: &[u8]) -> Option<Kind> {
    let (&b0, &b1, &b2) = (head.first()?, head.get(1)?, head.get(2)?);
    if b0 != 0x08 {
        return None;
    }
    if b1 == 1 && b2 == 0x12 {
        // skip the MetaGraphDef's length varint
        let mut i = 3;
        while head.get(i).is_some_and(|b| b & 0x80 != 0) && i < 13 {
            i += 1;
        }
        if matches!(head.get(i + 1), Some(0x0a | 0x12)) {
            return Some(Kind::SavedModel);
        }
    }
    let onnx_field = matches!(b2, 0x12 | 0x1a | 0x22 | 0x28 | 0x32 | 0x3a | 0x42 | 0x72)
        || (matches!(b2, 0xa2 | 0xca) && head.get(3) == Some(&0x01));
    ((1..=32).contains(&b1) && onnx_field).then_some(Kind::Onnx)
}

/// Reads up to `HEAD` bytes, returning them and the reader positioned after them.
fn read_head(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD);
    r.take(HEAD as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// A seekable byte source (a file, a stored zip member, a spooled decompressed stream).
trait Source: Read + Seek {}
impl<T: Read + Seek> Source for T {}

/// A `Read + Seek` view of `[start, start+len)` of an inner reader.
struct Window<'a> {
    inner: &'a mut dyn Source,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.len - self.pos) as usize;
        self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.inner.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek before start")),
        }
    }
}

/// Counts bytes and fails past a budget (decompression bombs).
struct Budget<'a, R> {
    inner: R,
    used: &'a mut u64,
    limit: u64,
}

impl<R: Read> Read for Budget<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.used += n as u64;
        if *self.used > self.limit {
            return Err(io::Error::other("decompressed size limit exceeded"));
        }
        Ok(n)
    }
}

/// Computes CRC-32 and length of what passes through.
struct Crc<R> {
    inner: R,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

impl Scanner {
    /// A scanner with these options.
    pub fn new(opts: Options) -> Scanner {
        Scanner { opts }
    }

    /// Scans files and directories (recursively), calling `progress` after each file.
    pub fn scan_paths(&self, paths: &[PathBuf], progress: &mut dyn FnMut(Progress)) -> Report {
        let started = Instant::now();
        let mut files = Vec::new();
        let mut reports = Vec::new();
        for p in paths {
            collect(p, &mut files, &mut reports);
        }
        let bytes_total: u64 = files.iter().map(|(_, len)| len).sum();
        let mut bytes_done = 0;
        let files_total = files.len();
        for (i, (path, len)) in files.iter().enumerate() {
            reports.push(self.scan_file(path));
            bytes_done += len;
            progress(Progress {
                files_done: i + 1,
                files_total,
                bytes_done,
                bytes_total,
            });
        }
        reports.sort_by(|a, b| a.path.cmp(&b.path));
        Report {
            version: env!("CARGO_PKG_VERSION"),
            files: reports,
            bytes: bytes_total,
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// Scans one file.
    pub fn scan_file(&self, path: &Path) -> FileReport {
        let display = path.display().to_string();
        let mut report = FileReport {
            path: display.clone(),
            formats: Vec::new(),
            bytes: 0,
            findings: Vec::new(),
            error: None,
        };
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                report.error = Some(format!("cannot open: {e}"));
                return report;
            }
        };
        let len = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                report.error = Some(format!("cannot stat: {e}"));
                return report;
            }
        };
        report.bytes = len;
        let mut ctx = Ctx {
            findings: Vec::new(),
            formats: Vec::new(),
            expanded: 0,
            storages: Vec::new(),
            views: Vec::new(),
        };
        if let Err(e) = self.seekable(&mut ctx, &mut file, len, &display, 0, Role::Member) {
            report.error = Some(format!("read error: {e}"));
        }
        let mut findings = ctx.findings;
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.location.cmp(&b.location)));
        report.findings = findings;
        report.formats = ctx.formats;
        report
    }

    /// Scans bytes held in memory (fuzzing, tests, the gateway).
    pub fn scan_bytes(&self, name: &str, bytes: &[u8]) -> FileReport {
        let mut ctx = Ctx {
            findings: Vec::new(),
            formats: Vec::new(),
            expanded: 0,
            storages: Vec::new(),
            views: Vec::new(),
        };
        let mut cur = Cursor::new(bytes);
        let error = self
            .seekable(&mut ctx, &mut cur, bytes.len() as u64, name, 0, Role::Member)
            .err();
        let mut findings = ctx.findings;
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.location.cmp(&b.location)));
        FileReport {
            path: name.to_string(),
            formats: ctx.formats,
            bytes: bytes.len() as u64,
            findings,
            error: error.map(|e| format!("read error: {e}")),
        }
    }

    fn seekable(
        &self,
        ctx: &mut Ctx,
        src: &mut dyn Source,
        len: u64,
        loc: &str,
        depth: u8,
        role: Role,
    ) -> io::Result<()> {
        src.seek(SeekFrom::Start(0))?;
        let head = read_head(src)?;
        let kind = sniff(&head);
        // A zip may carry data in front (miniz and zipfile both find it from the end), so a
        // non-zip head is checked for a trailing zip directory too, unless it is a pickle.
        let is_zip = kind == Kind::Zip
            || (matches!(kind, Kind::Data | Kind::MaybePickle)
                && role == Role::Member
                && zip::looks_like_zip(src, &head, len)?);
        if is_zip {
            return self.zip(ctx, src, len, loc, depth);
        }
        // A pickle with a zip directory at its end is read as a pickle by torch.load (it looks
        // at the first bytes) but as a zip by zipfile-based loaders: check both readings.
        let polyglot = kind == Kind::Pickle
            && role == Role::Member
            && zip::looks_like_zip(src, &head, len)?
            && matches!(zip::Archive::open(src, len), Ok(a) if a.entries.iter().any(|e| !e.hidden));
        src.seek(SeekFrom::Start(head.len() as u64))?;
        self.stream(ctx, head, src, Some(len), loc, depth, role)?;
        if polyglot {
            ctx.finding(
                loc,
                Rule::ArchiveAnomaly,
                Severity::High,
                "pickle/zip polyglot: a pickle that is also a zip archive (loaders disagree on what it is); both readings are checked",
            );
            src.seek(SeekFrom::Start(0))?;
            return self.zip(ctx, src, len, loc, depth);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        ctx: &mut Ctx,
        head: Vec<u8>,
        rest: &mut dyn Read,
        len: Option<u64>,
        loc: &str,
        depth: u8,
        role: Role,
    ) -> io::Result<()> {
        let kind = sniff(&head);
        let mut reader = Cursor::new(head.clone()).chain(rest);
        if depth > self.opts.max_depth && !matches!(kind, Kind::Data) {
            ctx.finding(
                loc,
                Rule::LimitExceeded,
                Severity::High,
                format!("nested deeper than {} levels; not checked", self.opts.max_depth),
            );
            return Ok(());
        }
        match kind {
            Kind::Gzip | Kind::Bzip2 | Kind::Xz | Kind::Lz4 | Kind::Zlib | Kind::Lzma => {
                let name = format!("{kind:?}").to_lowercase();
                ctx.format(name.clone());
                self.decompress(ctx, kind, &mut reader, loc, depth)
            }
            Kind::Zip => {
                // A zip arriving as a stream (inside a tar or compressed): spool it to seek.
                let mut spool = tempfile::spooled_tempfile(64 << 20);
                let n = io::copy(&mut reader, &mut spool)?;
                spool.flush()?;
                self.zip(ctx, &mut spool, n, loc, depth)
            }
            Kind::SevenZip => {
                ctx.format("7z");
                // 7z keeps its index at the end: spool it to seek.
                let mut spool = tempfile::spooled_tempfile(64 << 20);
                io::copy(&mut reader, &mut spool)?;
                spool.seek(SeekFrom::Start(0))?;
                self.sevenz(ctx, spool, loc, depth)
            }
            Kind::Tar => {
                ctx.format("tar");
                self.tar(ctx, &mut reader, loc, depth)
            }
            Kind::Npy => {
                ctx.format("npy");
                self.npy(ctx, &mut reader, len, loc);
                Ok(())
            }
            Kind::Safetensors => {
                ctx.format("safetensors");
                let found = formats::safetensors::check(&mut reader, len)?;
                self.found(ctx, found, loc, depth)
            }
            Kind::Gguf => {
                ctx.format("gguf");
                for issue in formats::gguf::check(&mut reader, len)? {
                    ctx.add(loc, issue);
                }
                Ok(())
            }
            Kind::Hdf5 => {
                ctx.format("hdf5");
                let found = formats::keras::check_h5(&mut reader)?;
                self.found(ctx, found, loc, depth)
            }
            Kind::Onnx => {
                ctx.format("onnx");
                for issue in formats::onnx::check(&mut reader)? {
                    ctx.add(loc, issue);
                }
                Ok(())
            }
            Kind::SavedModel => {
                ctx.format("tensorflow savedmodel");
                for issue in formats::savedmodel::check(&mut reader)? {
                    ctx.add(loc, issue);
                }
                Ok(())
            }
            Kind::MaybePickle | Kind::Data if role == Role::Member && formats::config::textual(&head) => {
                self.text(ctx, kind, &mut reader, loc, depth)
            }
            Kind::Pickle | Kind::MaybePickle => {
                let trace = vm::scan(
                    BufReader::with_capacity(64 * 1024, &mut reader),
                    0,
                    vm::Options::default(),
                );
                if is_pickle(kind, role, &trace) {
                    ctx.format(match trace.protocol {
                        Some(p) => format!("pickle (protocol {p})"),
                        None => "pickle (protocol 0/1)".to_string(),
                    });
                    if trace.imports.iter().any(|i| matches!(&i.target, vm::ImportTarget::Literal { module, name } if name == "NumpyArrayWrapper" && module.ends_with("numpy_pickle"))) {
                        ctx.format("joblib");
                    }
                    ctx.findings.extend(policy::findings(&trace, loc, &self.opts.allow));
                    ctx.storages.extend(trace.storages);
                    ctx.views.extend(trace.views);
                } else {
                    ctx.format("data");
                }
                Ok(())
            }
            Kind::Data => {
                ctx.format("data");
                Ok(())
            }
        }
    }

    /// A text stream: a protocol 0 pickle, a config (JSON or YAML, under any name), or text.
    fn text(&self, ctx: &mut Ctx, kind: Kind, reader: &mut dyn Read, loc: &str, depth: u8) -> io::Result<()> {
        let mut text = Vec::new();
        reader.take(formats::config::MAX_JSON as u64).read_to_end(&mut text)?;
        let complete = text.len() < formats::config::MAX_JSON;
        if kind == Kind::MaybePickle {
            let mut rest = Cursor::new(&text[..]).chain(&mut *reader);
            let trace = vm::scan(
                BufReader::with_capacity(64 * 1024, &mut rest),
                0,
                vm::Options::default(),
            );
            if is_pickle(kind, Role::Member, &trace) {
                ctx.format("pickle (protocol 0/1)");
                ctx.findings.extend(policy::findings(&trace, loc, &self.opts.allow));
                return Ok(());
            }
        }
        let doc = if complete { formats::config::parse(&text) } else { None };
        match doc {
            Some(doc) => {
                ctx.format(doc.kind);
                let found = formats::config::check_document(&doc);
                self.found(ctx, found, loc, depth)
            }
            None if !complete => {
                ctx.format("text");
                ctx.finding(
                    loc,
                    Rule::LimitExceeded,
                    Severity::Medium,
                    format!(
                        "text over {} MiB: not checked as a config",
                        formats::config::MAX_JSON >> 20
                    ),
                );
                Ok(())
            }
            None => {
                ctx.format("text");
                if let Some(key) = formats::config::unparsed_trigger(&text) {
                    ctx.finding(
                        loc,
                        Rule::ConfigCode,
                        Severity::High,
                        format!("names `{key}` but is neither valid JSON nor YAML here: a more lenient loader may act on it, and it was not checked"),
                    );
                }
                Ok(())
            }
        }
    }

    /// Adds a config check's findings and scans the blobs it found embedded in the config.
    fn found(&self, ctx: &mut Ctx, found: formats::config::Found, loc: &str, depth: u8) -> io::Result<()> {
        for issue in found.issues {
            ctx.add(loc, issue);
        }
        for (path, bytes) in found.blobs {
            let at = format!("{loc}#{path}");
            let mut cur = Cursor::new(&bytes[..]);
            let head = read_head(&mut cur)?;
            self.stream_checked(ctx, head, &mut cur, &at, depth + 1)?;
        }
        Ok(())
    }

    fn npy(&self, ctx: &mut Ctx, reader: &mut dyn Read, len: Option<u64>, loc: &str) {
        let header = match formats::numpy::read_header(reader) {
            Ok(h) => h,
            Err(issue) => return ctx.add(loc, issue),
        };
        if header.object {
            // numpy pickles object arrays; `np.load(allow_pickle=True)` runs it.
            let trace = vm::scan(
                BufReader::with_capacity(64 * 1024, reader),
                header.data_offset,
                vm::Options {
                    joblib: false,
                    multi: false,
                },
            );
            ctx.format("pickle");
            ctx.finding(
                loc,
                Rule::EmbeddedCode,
                Severity::Medium,
                format!(
                    "object array (`{}`): its data is a pickle, loaded only with allow_pickle=True",
                    header.descr
                ),
            );
            ctx.findings.extend(policy::findings(&trace, loc, &self.opts.allow));
            return;
        }
        if let (Some(len), Some(want)) = (len, header.data_len()) {
            let have = len.saturating_sub(header.data_offset);
            if have != want {
                ctx.finding(
                    loc,
                    Rule::FormatInvalid,
                    Severity::Medium,
                    format!("npy: shape and dtype need {want} data bytes, the file has {have}"),
                );
            }
        }
    }

    fn decompress(&self, ctx: &mut Ctx, kind: Kind, reader: &mut dyn Read, loc: &str, depth: u8) -> io::Result<()> {
        let limit = self.opts.max_expanded;
        let mut used = ctx.expanded;
        let inner: Box<dyn Read + '_> = match kind {
            Kind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Kind::Zlib => Box::new(flate2::read::ZlibDecoder::new(reader)),
            Kind::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
            Kind::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(reader)),
            Kind::Xz | Kind::Lzma => {
                // lzma-rs decodes into a writer; pipe it through a spooled file.
                let mut spool = tempfile::spooled_tempfile(64 << 20);
                let mut input = BufReader::new(reader);
                let mut budgeted = BudgetWriter {
                    inner: &mut spool,
                    used: &mut used,
                    limit,
                };
                let result = if kind == Kind::Xz {
                    lzma_rs::xz_decompress(&mut input, &mut budgeted).map_err(|e| e.to_string())
                } else {
                    lzma_rs::lzma_decompress(&mut input, &mut budgeted).map_err(|e| e.to_string())
                };
                ctx.expanded = used;
                if let Err(e) = result {
                    ctx.finding(
                        loc,
                        Rule::Unreadable,
                        Severity::High,
                        format!(
                            "{} stream cannot be decompressed: {e}",
                            format!("{kind:?}").to_lowercase()
                        ),
                    );
                }
                spool.seek(SeekFrom::Start(0))?;
                let inner_loc = loc.to_string();
                let head = read_head(&mut spool)?;
                return self.stream_checked(ctx, head, &mut spool, &inner_loc, depth + 1);
            }
            _ => return Ok(()),
        };
        let mut budget = Budget {
            inner,
            used: &mut used,
            limit,
        };
        let head = match read_head(&mut budget) {
            Ok(h) => h,
            Err(e) => {
                ctx.expanded = used;
                ctx.finding(
                    loc,
                    Rule::Unreadable,
                    Severity::High,
                    format!("compressed stream cannot be read: {e}"),
                );
                return Ok(());
            }
        };
        let result = self.stream_checked(ctx, head, &mut budget, loc, depth + 1);
        ctx.expanded = used;
        result
    }

    /// `stream`, with read errors inside a decompressor turned into findings (a corrupt
    /// compressed stream is the file's fault, not an I/O error).
    fn stream_checked(
        &self,
        ctx: &mut Ctx,
        head: Vec<u8>,
        rest: &mut dyn Read,
        loc: &str,
        depth: u8,
    ) -> io::Result<()> {
        match self.stream(ctx, head, rest, None, loc, depth, Role::Member) {
            Ok(()) => Ok(()),
            Err(e) => {
                ctx.finding(
                    loc,
                    Rule::Unreadable,
                    Severity::High,
                    format!("decompressed data cannot be read: {e}"),
                );
                Ok(())
            }
        }
    }

    /// Every file of a 7z archive, decompressed under the expansion budget and scanned as a
    /// member. An archive or member that cannot be read (encrypted, corrupt, an unsupported
    /// codec) is a finding: its content was not checked.
    fn sevenz<R: Read + Seek>(&self, ctx: &mut Ctx, src: R, loc: &str, depth: u8) -> io::Result<()> {
        // Header buffers and decoder dictionaries are bounded (1 GiB each): a hostile header
        // cannot make the scanner allocate what it declares.
        let opened = sevenz_rust2::ArchiveReader::new_with_memory_limit(src, sevenz_rust2::Password::empty(), 1 << 20);
        let mut archive = match opened {
            Ok(a) => a,
            Err(e) => {
                ctx.finding(
                    loc,
                    Rule::Unreadable,
                    Severity::High,
                    format!("7z archive cannot be read: {e}"),
                );
                return Ok(());
            }
        };
        let limit = self.opts.max_expanded;
        let mut used = ctx.expanded;
        let result = archive.for_each_entries(|entry, reader| {
            if entry.is_directory || !entry.has_stream {
                return Ok(true);
            }
            let member = format!("{loc}!{}", entry.name);
            let mut budget = Budget {
                inner: reader,
                used: &mut used,
                limit,
            };
            let scanned = read_head(&mut budget).and_then(|head| {
                self.stream(
                    ctx,
                    head,
                    &mut budget,
                    Some(entry.size),
                    &member,
                    depth + 1,
                    Role::Member,
                )
            });
            if let Err(e) = scanned {
                // The rest of this solid block cannot be decoded either; later blocks can.
                ctx.finding(
                    &member,
                    Rule::Unreadable,
                    Severity::High,
                    format!("7z member cannot be read: {e}"),
                );
                return Ok(false);
            }
            Ok(true)
        });
        ctx.expanded = used;
        if let Err(e) = result {
            ctx.finding(
                loc,
                Rule::Unreadable,
                Severity::High,
                format!("7z archive cannot be read to its end: {e}"),
            );
        }
        Ok(())
    }

    fn tar(&self, ctx: &mut Ctx, reader: &mut dyn Read, loc: &str, depth: u8) -> io::Result<()> {
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                ctx.finding(
                    loc,
                    Rule::Unreadable,
                    Severity::High,
                    format!("tar archive cannot be read: {e}"),
                );
                return Ok(());
            }
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    ctx.finding(
                        loc,
                        Rule::Unreadable,
                        Severity::High,
                        format!("tar entry cannot be read: {e}"),
                    );
                    break;
                }
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            let size = entry.size();
            let member = format!("{loc}!{name}");
            let head = read_head(&mut entry)?;
            if let Err(e) = self.stream(ctx, head, &mut entry, Some(size), &member, depth + 1, Role::Member) {
                ctx.finding(
                    &member,
                    Rule::Unreadable,
                    Severity::High,
                    format!("cannot be read: {e}"),
                );
            }
        }
        Ok(())
    }

    fn zip(&self, ctx: &mut Ctx, src: &mut dyn Source, len: u64, loc: &str, depth: u8) -> io::Result<()> {
        ctx.format("zip");
        if depth > self.opts.max_depth {
            ctx.finding(
                loc,
                Rule::LimitExceeded,
                Severity::High,
                "zip nested too deeply; not checked",
            );
            return Ok(());
        }
        let archive = match Archive::open(src, len) {
            Ok(a) => a,
            Err(zip::ZipError::Io(e)) => return Err(e),
            Err(e) => {
                ctx.finding(
                    loc,
                    Rule::Unreadable,
                    Severity::High,
                    format!("zip cannot be indexed: {e}"),
                );
                return Ok(());
            }
        };
        for a in &archive.anomalies {
            // Severe: two readers load different bytes under one name, or one loads what
            // another hides or refuses.
            let severity = if [
                "local header names",
                "not in the central directory",
                "duplicate",
                "encrypted",
                "NUL byte",
                "renames it",
                "the last one wins",
                "refuses",
                "overlap",
            ]
            .iter()
            .any(|k| a.detail.contains(k))
            {
                Severity::High
            } else {
                Severity::Medium
            };
            let at = match &a.entry {
                Some(e) => format!("{loc}!{e}"),
                None => loc.to_string(),
            };
            ctx.finding(&at, Rule::ArchiveAnomaly, severity, a.detail.clone());
        }
        // PyTorch (miniz) looks members up by their raw names; Python's zipfile (Keras, NumPy,
        // joblib) by its own reading of them, which may differ (see `Entry::names`).
        let raw: Vec<&str> = archive.entries.iter().map(|e| e.name.as_str()).collect();
        let all: Vec<&str> = archive.entries.iter().flat_map(|e| e.names()).collect();
        let torch_prefix: Option<String> = raw.iter().find_map(|n| {
            n.strip_suffix("data.pkl")
                .filter(|p| p.is_empty() || p.ends_with('/'))
                .map(str::to_string)
        });
        if torch_prefix.is_some() {
            ctx.format("pytorch");
        }
        // Keras reads `config.json` first and builds the model from it before it looks for the
        // weights: any archive with a `config.json` gets the Keras checks on it.
        if all.contains(&"config.json")
            && (all.contains(&"metadata.json") || all.iter().any(|n| n.ends_with(".weights.h5")))
        {
            ctx.format("keras");
        }
        if !raw.is_empty() && raw.iter().all(|n| n.ends_with(".npy")) {
            ctx.format("npz");
        }
        let code: Vec<&str> = all
            .iter()
            .copied()
            .filter(|n| is_code_entry(n, torch_prefix.as_deref()))
            .collect();
        if !code.is_empty() {
            ctx.finding(
                loc,
                Rule::EmbeddedCode,
                Severity::Medium,
                format!(
                    "ships {} code file(s) its loader may run (e.g. `{}`)",
                    code.len(),
                    code[0]
                ),
            );
        }
        let (storages_before, views_before) = (ctx.storages.len(), ctx.views.len());
        for entry in &archive.entries {
            let member = format!("{loc}!{}", entry.name);
            // Raw tensor bytes only if every reader agrees that is what the member is.
            let role = match &torch_prefix {
                Some(p) if entry.names().iter().all(|n| is_storage(n, p)) => Role::Storage,
                _ => Role::Member,
            };
            if let Err(e) = self.zip_entry(ctx, src, entry, &member, depth, role) {
                ctx.finding(
                    &member,
                    Rule::Unreadable,
                    Severity::High,
                    format!("cannot be read: {e}"),
                );
            }
        }
        if let Some(prefix) = &torch_prefix {
            let storages: Vec<vm::StorageRef> = ctx.storages.drain(storages_before..).collect();
            let views: Vec<vm::TensorView> = ctx.views.drain(views_before..).collect();
            check_storages(ctx, &archive, prefix, &storages, &views, loc);
        }
        Ok(())
    }

    fn entry_reader<'a>(&self, src: &'a mut dyn Source, entry: &zip::Entry) -> Result<Box<dyn Read + 'a>, String> {
        src.seek(SeekFrom::Start(entry.data_offset))
            .map_err(|e| e.to_string())?;
        let raw = src.take(entry.compressed);
        match entry.method {
            0 => Ok(Box::new(raw)),
            8 => Ok(Box::new(flate2::read::DeflateDecoder::new(raw))),
            12 => Ok(Box::new(bzip2::read::BzDecoder::new(raw))),
            m => Err(format!(
                "compression method {m} is not supported, so this member was not checked"
            )),
        }
    }

    fn zip_entry(
        &self,
        ctx: &mut Ctx,
        src: &mut dyn Source,
        entry: &zip::Entry,
        member: &str,
        depth: u8,
        role: Role,
    ) -> io::Result<()> {
        // Stored entries are windows of the file: nested zips need no copy.
        if entry.method == 0 {
            let mut window = Window {
                inner: &mut *src,
                start: entry.data_offset,
                len: entry.compressed,
                pos: 0,
            };
            let head = read_head(&mut window)?;
            if sniff(&head) == Kind::Zip {
                return self.zip(ctx, &mut window, entry.compressed, member, depth + 1);
            }
        }
        let limit = self.opts.max_expanded;
        let mut used = ctx.expanded;
        let reader = match self.entry_reader(src, entry) {
            Ok(r) => r,
            Err(msg) => {
                ctx.finding(member, Rule::Unreadable, Severity::High, msg);
                return Ok(());
            }
        };
        let mut crc = Crc {
            inner: Budget {
                inner: reader,
                used: &mut used,
                limit,
            },
            hasher: crc32fast::Hasher::new(),
            len: 0,
        };
        let head = read_head(&mut crc)?;
        let kind = sniff(&head);
        // A storage record is raw tensor bytes that no loader parses: its first bytes may look
        // like anything (a zlib header, `\x80\x02`), so it is read as a pickle only when it
        // starts like one and then does something (`is_pickle`).
        let inspect = role == Role::Member || kind == Kind::Pickle;
        let result = if inspect {
            self.stream(ctx, head, &mut crc, Some(entry.size), member, depth + 1, role)
        } else {
            Ok(())
        };
        // Only entries read through are CRC-checked; storages are raw data never executed.
        if inspect && result.is_ok() {
            io::copy(&mut crc, &mut io::sink())?;
            let actual = crc.hasher.clone().finalize();
            if actual != entry.crc32 {
                ctx.finding(member, Rule::ArchiveAnomaly, Severity::High, format!(
                    "CRC-32 mismatch (stored {:08x}, actual {actual:08x}): strict readers refuse this member, PyTorch loads it",
                    entry.crc32
                ));
            }
            if crc.len != entry.size {
                ctx.finding(
                    member,
                    Rule::ArchiveAnomaly,
                    Severity::Medium,
                    format!("size mismatch (stored {}, actual {})", entry.size, crc.len),
                );
            }
        }
        ctx.expanded = used;
        result
    }
}

/// Writer-side budget for decoders that push into a writer.
struct BudgetWriter<'a, W> {
    inner: W,
    used: &'a mut u64,
    limit: u64,
}

impl<W: Write> Write for BudgetWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        *self.used += buf.len() as u64;
        if *self.used > self.limit {
            return Err(io::Error::other("decompressed size limit exceeded"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes per element of a PyTorch storage class (`torch.UntypedStorage` counts bytes).
fn storage_element_size(kind: &str) -> Option<u64> {
    Some(match kind {
        "UntypedStorage" | "ByteStorage" | "CharStorage" | "BoolStorage" | "QInt8Storage" | "QUInt8Storage"
        | "QUInt4x2Storage" | "QUInt2x4Storage" => 1,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "FloatStorage" | "IntStorage" | "QInt32Storage" | "ComplexHalfStorage" => 4,
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "ComplexDoubleStorage" => 16,
        _ => return None,
    })
}

/// What `data.pkl` says about each storage (its record, its size) and each tensor (the
/// elements it reads), against what the archive holds: a loader trusts these numbers.
fn check_storages(
    ctx: &mut Ctx,
    archive: &Archive,
    prefix: &str,
    storages: &[vm::StorageRef],
    views: &[vm::TensorView],
    loc: &str,
) {
    let mut numels = std::collections::HashMap::new();
    for s in storages {
        let name = format!("{prefix}data/{}", s.key);
        let Some(entry) = archive.entries.iter().find(|e| e.name == name) else {
            ctx.finding(
                loc,
                Rule::FormatInvalid,
                Severity::High,
                format!(
                    "data.pkl names the storage `{}`, but the archive has no `{name}`",
                    s.key
                ),
            );
            continue;
        };
        let (Some(numel), Some(size)) = (s.numel, storage_element_size(&s.kind)) else {
            continue;
        };
        numels.insert(s.key.clone(), numel);
        let want = numel.saturating_mul(size);
        if entry.size != want {
            ctx.finding(
                &format!("{loc}!{name}"),
                Rule::FormatInvalid,
                if entry.size < want {
                    Severity::High
                } else {
                    Severity::Medium
                },
                format!(
                    "data.pkl says {numel} × {} ({want} bytes), the record holds {} bytes",
                    s.kind, entry.size
                ),
            );
        }
    }
    for v in views {
        let Some(&numel) = numels.get(&v.key) else { continue };
        if v.size.contains(&0) {
            continue;
        }
        let (mut lo, mut hi) = (i128::from(v.storage_offset), i128::from(v.storage_offset));
        for (&n, &st) in v.size.iter().zip(&v.stride) {
            let reach = i128::from(n - 1) * i128::from(st);
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        if lo < 0 || hi >= i128::from(numel) || v.size.len() != v.stride.len() || v.size.iter().any(|&n| n < 0) {
            ctx.add(
                loc,
                Issue {
                    rule: Rule::FormatInvalid,
                    severity: Severity::High,
                    message: format!(
                        "a tensor on storage `{}` (offset {}, size {:?}, stride {:?}) reads elements {lo}..={hi} of a {numel}-element storage",
                        v.key, v.storage_offset, v.size, v.stride
                    ),
                    offset: Some(v.offset),
                },
            );
        }
    }
}

fn is_storage(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix("data/"))
        .is_some_and(|key| !key.is_empty() && !key.contains('/') && !key.ends_with(".pkl"))
}

fn is_code_entry(name: &str, torch_prefix: Option<&str>) -> bool {
    if name.ends_with(".py") || name.ends_with(".pyc") {
        return true;
    }
    matches!(torch_prefix, Some(p) if name.strip_prefix(p).is_some_and(|r| r.starts_with("code/") && !r.ends_with('/')))
}

/// Judges whether the VM's run means the stream was a pickle.
fn is_pickle(kind: Kind, role: Role, trace: &Trace) -> bool {
    let acted = !trace.imports.is_empty() || !trace.calls.is_empty();
    match (kind, role) {
        // Raw tensor bytes that happen to start with 0x80: only a pickle if it does something.
        (Kind::Pickle, Role::Storage) => acted,
        (Kind::Pickle, Role::Member) => true,
        // Protocol 0/1 has no magic: a complete pickle, or a stream that imports and calls.
        // An import without a call does nothing, and text files (a vocabulary starting with
        // "cats\ndogs\n") parse as one: it takes a call to make a protocol 0/1 stream a pickle.
        _ => {
            (trace.pickles > 0 && trace.opcodes >= 2 && trace.broken.is_none())
                || trace.calls.iter().any(|c| match &c.callee {
                    vm::Callee::Global { module, name } => is_dotted_identifier(module) && is_dotted_identifier(name),
                    vm::Callee::Computed(_) => true,
                })
        }
    }
}

fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            let mut c = p.chars();
            c.next().is_some_and(|f| f.is_alphabetic() || f == '_') && c.all(|x| x.is_alphanumeric() || x == '_')
        })
}

/// Expands directories (recursively, not following directory symlinks). Unreadable paths
/// become error reports.
fn collect(path: &Path, files: &mut Vec<(PathBuf, u64)>, errors: &mut Vec<FileReport>) {
    let error = |e: io::Error| FileReport {
        path: path.display().to_string(),
        formats: Vec::new(),
        bytes: 0,
        findings: Vec::new(),
        error: Some(e.to_string()),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return errors.push(error(e)),
    };
    if meta.is_file() {
        return files.push((path.to_path_buf(), meta.len()));
    }
    if !meta.is_dir() {
        return;
    }
    let mut children = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(Result::ok).collect::<Vec<_>>(),
        Err(e) => return errors.push(error(e)),
    };
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let p = child.path();
        match child.file_type() {
            Ok(t) if t.is_symlink() && p.is_dir() => {}
            _ => collect(&p, files, errors),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn sevenz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = sevenz_rust2::ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
        for (name, data) in members {
            w.push_archive_entry(sevenz_rust2::ArchiveEntry::new_file(name), Some(*data))
                .unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn sevenz_members_are_scanned_and_broken_archives_are_findings() {
        let scanner = Scanner::default();
        let evil = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
        let archive = sevenz(&[("README.md", b"# model\n"), ("weights/model.bin", evil)]);
        let r = scanner.scan_bytes("model.7z", &archive);
        assert_eq!(r.worst(), Some(Severity::Critical), "{:?}", r.findings);
        assert!(
            r.findings
                .iter()
                .any(|f| f.location.contains("model.7z!weights/model.bin")),
            "{:?}",
            r.findings
        );

        let clean = sevenz(&[("README.md", b"# model\n")]);
        assert!(scanner.scan_bytes("ok.7z", &clean).findings.is_empty());

        let truncated = &archive[..archive.len() - 40];
        let r = scanner.scan_bytes("cut.7z", truncated);
        assert!(
            r.findings.iter().any(|f| f.rule == Rule::Unreadable),
            "{:?}",
            r.findings
        );
    }

    #[test]
    fn text_that_parses_as_an_import_is_not_a_pickle() {
        let scanner = Scanner::default();
        for text in [
            &b"cats\ndogs\nbirds\n"[..],
            b"(a) first item\n",
            b"INFO starting\n",
            b"Some notes.\n",
        ] {
            let r = scanner.scan_bytes("vocab.txt", text);
            assert!(
                r.findings.is_empty(),
                "{:?}: {:?}",
                String::from_utf8_lossy(text),
                r.findings
            );
        }
        // but a protocol 0 call with garbage after it is a (broken) pickle
        let r = scanner.scan_bytes("notes.txt", b"cos\nsystem\n(S'id'\ntR\xff");
        assert_eq!(r.worst(), Some(Severity::Critical));
    }
}

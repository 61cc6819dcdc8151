//! Rampart's model supply-chain checks.
//!
//! [`scan::Scanner`] reads model files the way their loaders do and reports what loading them
//! would do: a static, symbolic [`pickle::vm`] that never executes anything, a default-deny
//! [`pickle::policy`], a lenient [`archive::zip`] reader that reports parser differentials, and
//! validators for safetensors, GGUF, NumPy and Keras files in [`formats`]. Formats are always
//! recognised from content, never from the file name. Results are [`report::Report`]s that
//! render as a table, JSON or SARIF.
//!
//! ```
//! use rampart_supply::scan::Scanner;
//! use rampart_supply::report::Severity;
//! // protocol 0: `os.system("id")`, in a file named like a config
//! let report = Scanner::default().scan_bytes("config.json", b"cos\nsystem\n(S'id'\ntR.");
//! assert_eq!(report.worst(), Some(Severity::Critical));
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod archive;
pub mod formats;
pub mod pickle;
pub mod report;
pub mod scan;
pub mod signing;

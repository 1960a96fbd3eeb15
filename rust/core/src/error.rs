//! The typed errors of the core. Bindings map each variant to one Python exception type.

use std::fmt;

/// Everything that can go wrong in `ntkrs-core`. No function of the crate panics on bad input;
/// it returns one of these instead.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// An argument is invalid; `arg` names it, `message` says what is wrong and how to fix it.
    InvalidArgument { arg: &'static str, message: String },
    /// The layer sequence does not describe a valid network.
    InvalidNetwork(String),
    /// The result would not fit in memory: `bytes` is what it would need.
    OutOfMemory {
        bytes: u128,
        available: Option<u64>,
        what: String,
    },
    /// The computation produced a non-finite value (an overflow or a divergent expectation).
    NonFinite(String),
    /// A user-supplied callback (for example an `Elementwise` activation) failed.
    Callback(String),
    /// The computation was cancelled through its [`crate::Control`].
    Cancelled,
    /// Reading or writing a file failed (the message names the file).
    Io(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn arg(arg: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            arg,
            message: message.into(),
        }
    }
}

/// Bytes in human units, for messages.
pub fn human_bytes(bytes: u128) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { arg, message } => write!(f, "{arg}: {message}"),
            Error::InvalidNetwork(m) => write!(f, "invalid network: {m}"),
            Error::OutOfMemory { bytes, available, what } => {
                write!(f, "{what} would need {} of memory", human_bytes(*bytes))?;
                if let Some(a) = available {
                    write!(f, " but only {} is available", human_bytes(*a as u128))?;
                }
                write!(f, "; compute it in blocks (pass x2 in slices) or use dtype=float32")
            }
            Error::NonFinite(m) => write!(f, "{m}"),
            Error::Callback(m) => write!(f, "fn: the activation function failed: {m}"),
            Error::Cancelled => write!(f, "computation cancelled"),
            Error::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

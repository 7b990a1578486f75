//! Errors of the linear crate: every message names the file, line, option or shape at fault.

/// What went wrong, with enough context for one clear message at the command line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A libsvm data file that does not parse; worded like LIBLINEAR's
    /// "Wrong input format at line N", plus the column and the reason.
    #[error("{file}:{line}:{column}: Wrong input format at line {line}: {reason}")]
    Format {
        file: String,
        line: usize,
        column: usize,
        reason: String,
    },
    /// A model file that does not parse.
    #[error("{file}:{line}: wrong model file: {reason}")]
    Model {
        file: String,
        line: usize,
        reason: String,
    },
    /// A bad command-line option or parameter value.
    #[error("option {option}: {reason}")]
    Option { option: String, reason: String },
    /// Data that does not fit the request (shapes, labels, empty sets).
    #[error("{0}")]
    Data(String),
    /// The I/O error is in the message rather than the source chain, so that it is
    /// printed once.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
}

impl Error {
    pub fn io(file: impl AsRef<std::path::Path>, error: std::io::Error) -> Self {
        Error::Io {
            file: file.as_ref().display().to_string(),
            error,
        }
    }

    pub fn option(option: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Option {
            option: option.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

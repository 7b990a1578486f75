//! The one error type of the library: every failure names what it concerns
//! (a block and its option, a file and its line, a layer).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// An invalid option or a shape that does not fit, in a block.
    #[error("{block}: {msg}")]
    Block { block: &'static str, msg: String },
    /// A tensor constructed with data that does not match its shape.
    #[error("tensor: {0}")]
    Shape(String),
    /// A file that cannot be read or parsed; `line` is 1-based where it applies.
    #[error("{path}{}: {msg}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    File {
        path: String,
        line: Option<usize>,
        msg: String,
    },
    /// A problem in a network (description, a layer's wiring, training).
    #[error("layer '{layer}': {msg}")]
    Layer { layer: String, msg: String },
    /// Training produced a NaN or an infinite value.
    #[error("training diverged at epoch {epoch}, batch {batch}: {what}; try a lower learning rate{hint}")]
    Diverged {
        epoch: usize,
        batch: usize,
        what: String,
        /// Where the last good checkpoint is, when there is one.
        hint: String,
    },
    /// A check found that nothing happens in training, and the run was asked to stop.
    #[error("training stopped at epoch {epoch}, batch {batch}, because it stalls: {what}{hint}")]
    Stalled {
        epoch: usize,
        batch: usize,
        what: String,
        /// Where the last checkpoint is, when there is one.
        hint: String,
    },
    /// Anything else the caller asked for that cannot be done.
    #[error("{0}")]
    Invalid(String),
    /// A data-parallel run that cannot go on, found alike by every rank (a batch that
    /// does not split over the ranks, ranks that disagree on options or weights).
    #[error("{0}")]
    Distributed(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A block's error; `block` is the block's name as the user knows it.
    pub fn block(block: &'static str, msg: impl Into<String>) -> Self {
        Error::Block {
            block,
            msg: msg.into(),
        }
    }

    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub fn file(
        path: impl AsRef<std::path::Path>,
        line: Option<usize>,
        msg: impl Into<String>,
    ) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            line,
            msg: msg.into(),
        }
    }

    pub fn layer(layer: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Layer {
            layer: layer.into(),
            msg: msg.into(),
        }
    }
}

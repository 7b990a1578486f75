//! Reading text lines with a letters network, and scoring what it reads.

pub mod eval;
pub mod reader;
pub mod score;

pub use reader::Reader;
pub use score::Tally;

//! Reading a text line with a letters network, and scoring what it reads.

pub mod reader;
pub mod score;

pub use reader::Reader;
pub use score::Tally;

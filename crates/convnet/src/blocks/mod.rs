//! The blocks: each a forward `y = f(x, w)` and a backward
//! `(dz/dx, dz/dw) = f'(x, w, dz/dy)`, side by side, one module each.
//! Option checking and output-size rules live with each block's semantics; the
//! CPU kernels they call sit in [`kernels`] so another backend can add its own.

pub mod activation;
pub mod bnorm;
pub mod concat;
pub mod conv;
pub mod convt;
pub mod dropout;
pub mod kernels;
pub mod loss;
pub mod lrn;
pub mod pool;
pub mod softmax;

use crate::error::{Error, Result};

/// Padding per side, as MatConvNet gives it: top, bottom, left, right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pad {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Pad {
    /// The same padding on all four sides.
    pub fn all(p: usize) -> Self {
        Pad {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }
    pub fn new(top: usize, bottom: usize, left: usize, right: usize) -> Self {
        Pad {
            top,
            bottom,
            left,
            right,
        }
    }
}

/// `floor((len + lo + hi - dilation*(k-1) - 1) / stride) + 1`, or an error naming the
/// block and axis when the (dilated) window does not fit the padded input.
#[allow(clippy::too_many_arguments)]
pub fn out_size(
    block: &'static str,
    axis: &str,
    len: usize,
    lo: usize,
    hi: usize,
    k: usize,
    stride: usize,
    dilation: usize,
) -> Result<usize> {
    if k == 0 || stride == 0 || dilation == 0 {
        return Err(Error::block(
            block,
            format!("{axis}: window {k}, stride {stride} and dilation {dilation} must be positive"),
        ));
    }
    let span = dilation * (k - 1) + 1;
    let padded = len + lo + hi;
    if span > padded {
        return Err(Error::block(
            block,
            format!(
                "{axis}: window of extent {span} (size {k}, dilation {dilation}) exceeds the padded input {padded} ({len} + pad {lo} + {hi})"
            ),
        ));
    }
    Ok((padded - span) / stride + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_size_rule() {
        assert_eq!(out_size("conv", "height", 28, 0, 0, 5, 1, 1).unwrap(), 24);
        assert_eq!(out_size("conv", "height", 7, 1, 2, 3, 2, 2).unwrap(), 3);
        assert_eq!(out_size("pool", "width", 5, 0, 0, 2, 2, 1).unwrap(), 2);
        let e = out_size("conv", "width", 3, 0, 0, 5, 1, 1).unwrap_err();
        assert!(e.to_string().contains("conv: width"), "{e}");
        assert!(out_size("conv", "width", 3, 0, 0, 1, 0, 1).is_err());
    }
}

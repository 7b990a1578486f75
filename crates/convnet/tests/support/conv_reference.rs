//! The convolution by its definition, in f64: the reference the convolution tests
//! measure every fast path against.

use convnet::blocks::conv::{self, ConvOpts};
use convnet::Tensor;

/// A straightforward loop over the definition, in f64, as the reference.
pub fn conv_reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: &ConvOpts) -> Vec<f64> {
    let d = x.dims4().unwrap();
    let ws = w.shape();
    let (c_out, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let y = conv::out_dims(d, ws, o).unwrap();
    let og = c_out / o.groups;
    let mut out = vec![0.0f64; y.len()];
    for n in 0..y.n {
        for oc in 0..c_out {
            let grp = oc / og;
            for i in 0..y.h {
                for j in 0..y.w {
                    let mut s = b.map_or(0.0, |b| b.data()[oc] as f64);
                    for c in 0..cg {
                        for u in 0..kh {
                            for v in 0..kw {
                                let ih = (i * o.stride[0] + u * o.dilation[0]) as isize
                                    - o.pad.top as isize;
                                let iw = (j * o.stride[1] + v * o.dilation[1]) as isize
                                    - o.pad.left as isize;
                                if ih < 0 || iw < 0 || ih >= d.h as isize || iw >= d.w as isize {
                                    continue;
                                }
                                let xv = x.at4(n, grp * cg + c, ih as usize, iw as usize);
                                let wv = w.data()[((oc * cg + c) * kh + u) * kw + v];
                                s += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out[((n * c_out + oc) * y.h + i) * y.w + j] = s;
                }
            }
        }
    }
    out
}

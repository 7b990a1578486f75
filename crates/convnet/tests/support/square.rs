//! A network whose convolution sees the image itself, for the Grad-CAM tests of the
//! library and of the command line: identity and negated identity 3x3 filters (padded,
//! so the maps are the image's size), a ReLU, and a classifier whose class 0 adds up
//! the first map and class 1 the second (zero after the ReLU for a non-negative image).

use convnet::net::{NetDesc, Network};
use convnet::Tensor;

/// Side of the images the network takes.
pub const SIDE: usize = 16;

/// Whether pixel (row, column) is in the bright square of the test images.
pub fn inside(r: usize, c: usize) -> bool {
    (4..8).contains(&r) && (9..13).contains(&c)
}

pub fn square_net() -> Network {
    let desc = NetDesc::parse(
        r#"
name = "square"
input = [16, 16, 1]
classes = 2
[[layer]]
name = "conv1"
type = "conv"
kernel = 3
out = 2
pad = 1
[[layer]]
name = "relu1"
type = "relu"
[[layer]]
name = "fc"
type = "fc"
out = 2
outputs = ["prediction"]
"#,
        "square.toml",
    )
    .unwrap();
    let mut net = Network::new(&desc).unwrap();
    let mut k = vec![0f32; 18];
    k[4] = 1.0;
    k[13] = -1.0;
    net.set_tensor("conv1.weight", Tensor::from_vec(&[2, 1, 3, 3], k).unwrap())
        .unwrap();
    let plane = SIDE * SIDE;
    let mut fc = vec![0f32; 4 * plane];
    fc[..plane].fill(1.0);
    fc[3 * plane..].fill(1.0);
    net.set_tensor("fc.weight", Tensor::from_vec(&[2, 2, 16, 16], fc).unwrap())
        .unwrap();
    net
}

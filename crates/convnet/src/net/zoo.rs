//! Built-in networks, usable wherever a description file is. Each follows the
//! MatConvNet example (or torchvision model) it is named after. [`get`] gives the
//! training form (the loss on `prediction` and `label`; the metrics are added when the
//! network is built), [`deploy`] the form that is shipped (no loss, no dropout, a
//! softmax `prob`); `convnet show NAME` prints the deploy form, and `NetDesc::to_toml`
//! writes either as a description file to edit. The classifier (the layer writing
//! `prediction`) is sized to the data's classes by `finetune::fit_classes`.

use super::desc::{InputDesc, LayerDesc, NetDesc};
use super::init::Init;
use super::layer::LayerKind;
use crate::blocks::conv::ConvOpts;
use crate::blocks::loss::LossKind;
use crate::blocks::lrn::LrnOpts;
use crate::blocks::pool::{PoolMethod, PoolOpts};
use crate::blocks::Pad;

/// The built-in names.
pub const NAMES: &[&str] = &[
    "lenet", "lenet-bn", "cifar", "alexnet", "vgg16", "resnet18", "letters",
];

/// The deploy form of the built-in network `name`, or None.
pub fn get_deploy(name: &str) -> Option<NetDesc> {
    get(name).map(|d| deploy(&d))
}

/// The deploy form of a training description: its test form (no loss, metrics or
/// dropout, see [`super::deploy::test_form`]) with a softmax `prob` reading `prediction`
/// unless a softmax already reads it.
pub fn deploy(desc: &NetDesc) -> NetDesc {
    let (mut out, _) = super::deploy::test_form(desc);
    let softmax_reads_prediction = out
        .layers
        .iter()
        .any(|l| l.kind == LayerKind::Softmax && l.inputs.iter().any(|v| v == "prediction"));
    if !softmax_reads_prediction && super::finetune::classifier(&out).is_some() {
        let mut prob = LayerDesc::new("prob", LayerKind::Softmax);
        prob.inputs = vec!["prediction".into()];
        prob.outputs = vec!["prob".into()];
        out.layers.push(prob);
    }
    out
}

/// The built-in network `name` in its training form, or None.
pub fn get(name: &str) -> Option<NetDesc> {
    let desc = match name {
        "lenet" => lenet(false),
        "lenet-bn" => lenet(true),
        "cifar" => cifar(),
        "alexnet" => alexnet(),
        "vgg16" => vgg16(),
        "resnet18" => resnet18(),
        "letters" => letters(),
        _ => return None,
    };
    let mut desc = desc;
    desc.origin = format!("zoo:{name}");
    // Built-ins are written with explicit wiring where it matters; the rest is the
    // chain default.
    desc.fill_defaults().ok()?;
    Some(desc)
}

/// A description under construction: layers are appended in order.
struct Net {
    desc: NetDesc,
}

impl Net {
    fn new(name: &str, input: [usize; 3], classes: usize, init: Init) -> Self {
        Net {
            desc: NetDesc {
                name: name.into(),
                inputs: vec![InputDesc {
                    name: "input".into(),
                    size: input,
                }],
                classes: (0..classes).map(|c| c.to_string()).collect(),
                init,
                layers: Vec::new(),
                origin: String::new(),
            },
        }
    }

    fn push(&mut self, name: &str, kind: LayerKind) -> &mut LayerDesc {
        self.desc.layers.push(LayerDesc::new(name, kind));
        let l = self.desc.layers.last_mut();
        l.expect("just pushed")
    }

    /// A convolution `[kh, kw, C_in, C_out]` (MatConvNet's order) with a square
    /// stride and padding.
    fn conv(&mut self, name: &str, size: [usize; 4], stride: usize, pad: usize) -> &mut LayerDesc {
        self.conv_g(name, size, stride, pad, 1)
    }

    fn conv_g(
        &mut self,
        name: &str,
        size: [usize; 4],
        stride: usize,
        pad: usize,
        groups: usize,
    ) -> &mut LayerDesc {
        let kind = LayerKind::Conv {
            kernel: Some([size[0], size[1]]),
            out: size[3],
            opts: ConvOpts {
                pad: Pad::all(pad),
                stride: [stride, stride],
                dilation: [1, 1],
                groups,
            },
            bias: true,
        };
        let l = self.push(name, kind);
        l.size_in = Some(size[2]);
        l
    }

    fn pool(&mut self, name: &str, method: PoolMethod, k: usize, stride: usize, pad: Pad) {
        self.push(
            name,
            LayerKind::Pool(PoolOpts {
                method,
                window: [k, k],
                stride: [stride, stride],
                pad,
                count_pad: false,
            }),
        );
    }

    fn relu(&mut self, name: &str) -> &mut LayerDesc {
        self.push(name, LayerKind::Relu { leak: 0.0 })
    }

    /// The softmax log-loss on `prediction` and `label`, giving `objective`.
    fn loss(&mut self) {
        let l = self.push("loss", LayerKind::Loss(LossKind::SoftmaxLog));
        l.inputs = vec!["prediction".into(), "label".into()];
        l.outputs = vec!["objective".into()];
    }

    /// Names the output of the last layer `prediction`.
    fn predicts(&mut self) {
        if let Some(l) = self.desc.layers.last_mut() {
            l.outputs = vec!["prediction".into()];
        }
    }
}

fn without_bias(l: &mut LayerDesc) {
    if let LayerKind::Conv { bias, .. } = &mut l.kind {
        *bias = false;
    }
}

fn bnorm() -> LayerKind {
    LayerKind::BNorm {
        eps: 1e-5,
        momentum: 0.1,
    }
}

/// MatConvNet's cnn_mnist (LeNet): 28x28x1, Gaussian weights of std 0.01. With
/// `bn`, batch normalisation follows the first three convolutions (which then have
/// no bias: the normalisation's own bias replaces it).
fn lenet(bn: bool) -> NetDesc {
    let name = if bn { "lenet-bn" } else { "lenet" };
    let mut n = Net::new(name, [28, 28, 1], 10, Init::Gaussian { std: 0.01 });
    let max = PoolMethod::Max;
    let convs: [(&str, [usize; 4]); 3] = [
        ("conv1", [5, 5, 1, 20]),
        ("conv2", [5, 5, 20, 50]),
        ("conv3", [4, 4, 50, 500]),
    ];
    for (k, (name, size)) in convs.iter().enumerate() {
        let c = n.conv(name, *size, 1, 0);
        if bn {
            without_bias(c);
            n.push(&format!("bn{}", k + 1), bnorm());
        }
        if k < 2 {
            n.pool(&format!("pool{}", k + 1), max, 2, 2, Pad::all(0));
        }
    }
    n.relu("relu1");
    n.conv("conv4", [1, 1, 500, 10], 1, 0);
    n.predicts();
    n.loss();
    n.desc
}

/// The letters reader: 32x32x1 windows, classes a-z and background. Every layer is an
/// unpadded convolution or pooling (or a per-position batch normalisation or dropout),
/// so a window gives a 1x1 output and a 32xW text line gives one prediction per 4 px
/// (the total stride), exactly the window's prediction at each of those positions.
/// Narrow (16, 32, 128 channels; 3.5 MFLOPs a window) so that `convnet ocr train` runs
/// in minutes on two cores. Batch normalisation after each convolution and dropout
/// before the classifier are what carry it across typefaces: with `ocr train`'s defaults
/// on 2 threads, held-out letters went from 94.1% to 96.2% and sentences read with at
/// most one wrong character from 72 to 140 of 255 (on 1 thread: 96.0% and 146; batch
/// normalisation without dropout 96.2% and 135).
fn letters() -> NetDesc {
    let mut n = Net::new("letters", [32, 32, 1], 27, Init::He);
    // The same names as the letters data set, so that a model's classes read a..z, _.
    n.desc.classes = ('a'..='z')
        .map(String::from)
        .chain(["_".to_string()])
        .collect();
    let max = PoolMethod::Max;
    let convs: [[usize; 4]; 3] = [[5, 5, 1, 16], [5, 5, 16, 32], [5, 5, 32, 128]];
    for (k, size) in convs.iter().enumerate() {
        let k = k + 1;
        without_bias(n.conv(&format!("conv{k}"), *size, 1, 0));
        n.push(&format!("bn{k}"), bnorm());
        n.relu(&format!("relu{k}"));
        if k < 3 {
            n.pool(&format!("pool{k}"), max, 2, 2, Pad::all(0));
        }
    }
    n.push("drop3", LayerKind::Dropout { rate: 0.3 });
    n.conv("conv4", [1, 1, 128, 27], 1, 0);
    n.predicts();
    n.loss();
    n.desc
}

/// MatConvNet's cnn_cifar ("lenet" variant): 32x32x3; the first convolution is
/// drawn with std 0.01, the others with 0.05.
fn cifar() -> NetDesc {
    let mut n = Net::new("cifar", [32, 32, 3], 10, Init::Gaussian { std: 0.05 });
    let pad = Pad::new(0, 1, 0, 1);
    n.conv("conv1", [5, 5, 3, 32], 1, 2).init = Some(Init::Gaussian { std: 0.01 });
    n.pool("pool1", PoolMethod::Max, 3, 2, pad);
    n.relu("relu1");
    n.conv("conv2", [5, 5, 32, 32], 1, 2);
    n.relu("relu2");
    n.pool("pool2", PoolMethod::Avg, 3, 2, pad);
    n.conv("conv3", [5, 5, 32, 64], 1, 2);
    n.relu("relu3");
    n.pool("pool3", PoolMethod::Avg, 3, 2, pad);
    n.conv("conv4", [4, 4, 64, 64], 1, 0);
    n.relu("relu4");
    n.conv("conv5", [1, 1, 64, 10], 1, 0);
    n.predicts();
    n.loss();
    n.desc
}

/// AlexNet as in MatConvNet's cnn_imagenet_init (Caffe's variant, with groups of
/// two and MatConvNet's LRN [5 1 0.0001/5 0.75]): 227x227x3, 1000 classes.
fn alexnet() -> NetDesc {
    let mut n = Net::new("alexnet", [227, 227, 3], 1000, Init::Gaussian { std: 0.01 });
    let max = PoolMethod::Max;
    let lrn = LayerKind::Lrn(LrnOpts {
        n: 5,
        kappa: 1.0,
        alpha: 0.0001 / 5.0,
        beta: 0.75,
    });
    n.conv("conv1", [11, 11, 3, 96], 4, 0);
    n.relu("relu1");
    n.push("norm1", lrn.clone());
    n.pool("pool1", max, 3, 2, Pad::all(0));
    n.conv_g("conv2", [5, 5, 48, 256], 1, 2, 2);
    n.relu("relu2");
    n.push("norm2", lrn);
    n.pool("pool2", max, 3, 2, Pad::all(0));
    n.conv("conv3", [3, 3, 256, 384], 1, 1);
    n.relu("relu3");
    n.conv_g("conv4", [3, 3, 192, 384], 1, 1, 2);
    n.relu("relu4");
    n.conv_g("conv5", [3, 3, 192, 256], 1, 1, 2);
    n.relu("relu5");
    n.pool("pool5", max, 3, 2, Pad::all(0));
    n.conv("fc6", [6, 6, 256, 4096], 1, 0);
    n.relu("relu6");
    n.push("drop6", LayerKind::Dropout { rate: 0.5 });
    n.conv("fc7", [1, 1, 4096, 4096], 1, 0);
    n.relu("relu7");
    n.push("drop7", LayerKind::Dropout { rate: 0.5 });
    n.conv("fc8", [1, 1, 4096, 1000], 1, 0);
    n.predicts();
    n.loss();
    n.desc
}

/// MatConvNet's imagenet-vgg-verydeep-16: 224x224x3, 1000 classes, 13 convolutions with
/// their ReLUs, 5 max-poolings, fc6-fc8 with two ReLUs, trained with dropout 0.5 before
/// fc7 and fc8 (Simonyan and Zisserman's recipe). Its deploy form is the 37 layers of
/// the distributed model (dropout and loss gone, a softmax `prob` at the end).
fn vgg16() -> NetDesc {
    let mut n = Net::new("vgg16", [224, 224, 3], 1000, Init::He);
    let stages: [(usize, usize); 5] = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)];
    let mut c_in = 3;
    for (s, &(convs, width)) in stages.iter().enumerate() {
        for k in 1..=convs {
            n.conv(&format!("conv{}_{k}", s + 1), [3, 3, c_in, width], 1, 1);
            n.relu(&format!("relu{}_{k}", s + 1));
            c_in = width;
        }
        n.pool(
            &format!("pool{}", s + 1),
            PoolMethod::Max,
            2,
            2,
            Pad::all(0),
        );
    }
    n.conv("fc6", [7, 7, 512, 4096], 1, 0);
    n.relu("relu6");
    n.push("drop6", LayerKind::Dropout { rate: 0.5 });
    n.conv("fc7", [1, 1, 4096, 4096], 1, 0);
    n.relu("relu7");
    n.push("drop7", LayerKind::Dropout { rate: 0.5 });
    n.conv("fc8", [1, 1, 4096, 1000], 1, 0);
    n.predicts();
    n.loss();
    n.desc
}

/// torchvision's resnet18 as a graph, with its module names (so that parameter
/// names match PyTorch's state dict): 224x224x3, 1000 classes.
fn resnet18() -> NetDesc {
    let mut n = Net::new("resnet18", [224, 224, 3], 1000, Init::He);
    without_bias(n.conv("conv1", [7, 7, 3, 64], 2, 3));
    n.push("bn1", bnorm());
    n.relu("relu");
    n.pool("maxpool", PoolMethod::Max, 3, 2, Pad::all(1));
    let mut x = "maxpool".to_string();
    let mut c_in = 64;
    for (stage, width) in [64usize, 128, 256, 512].into_iter().enumerate() {
        for b in 0..2 {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            x = basic_block(
                &mut n,
                &format!("layer{}.{b}", stage + 1),
                &x,
                c_in,
                width,
                stride,
            );
            c_in = width;
        }
    }
    n.pool("avgpool", PoolMethod::Avg, 7, 1, Pad::all(0));
    n.desc.layers.last_mut().expect("pushed").inputs = vec![x];
    n.conv("fc", [1, 1, 512, 1000], 1, 0);
    n.predicts();
    n.loss();
    n.desc
}

/// A residual block reading variable `x`; returns its output variable.
fn basic_block(n: &mut Net, p: &str, x: &str, c_in: usize, width: usize, stride: usize) -> String {
    let c1 = n.conv(&format!("{p}.conv1"), [3, 3, c_in, width], stride, 1);
    without_bias(c1);
    c1.inputs = vec![x.to_string()];
    n.push(&format!("{p}.bn1"), bnorm());
    n.relu(&format!("{p}.relu1"));
    without_bias(n.conv(&format!("{p}.conv2"), [3, 3, width, width], 1, 1));
    n.push(&format!("{p}.bn2"), bnorm());
    let mut shortcut = x.to_string();
    if stride != 1 || c_in != width {
        let d = n.conv(&format!("{p}.downsample.0"), [1, 1, c_in, width], stride, 0);
        without_bias(d);
        d.inputs = vec![x.to_string()];
        n.push(&format!("{p}.downsample.1"), bnorm());
        shortcut = format!("{p}.downsample.1");
    }
    let add = n.push(&format!("{p}.add"), LayerKind::Sum);
    add.inputs = vec![format!("{p}.bn2"), shortcut];
    n.relu(&format!("{p}.relu2"));
    format!("{p}.relu2")
}

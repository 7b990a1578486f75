//! Description files and the zoo: parsing, errors naming file/line/layer, the TOML
//! round trip, and the `show` table's figures checked by hand.

use convnet::net::{self, summarize, zoo, NetDesc, Network};

fn parse_err(text: &str) -> String {
    NetDesc::parse(text, "nets/t.toml").unwrap_err().to_string()
}

const HEADER: &str = "name = \"t\"\ninput = [8, 8, 1]\nclasses = 3\n";

#[test]
fn every_zoo_net_round_trips_through_toml() {
    for name in zoo::NAMES {
        let d = zoo::get(name).unwrap();
        let text = d.to_toml();
        let mut back =
            NetDesc::parse(&text, "x.toml").unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        back.origin = d.origin.clone();
        for l in &mut back.layers {
            l.line = None;
        }
        assert_eq!(back, d, "{name}");
        assert_eq!(net::resolve(name).unwrap(), d);
    }
    assert!(zoo::get("lenet5").is_none());
}

#[test]
fn chain_defaults_wire_each_layer_to_the_previous_one() {
    let text = format!(
        "{HEADER}\n[[layer]]\nname = \"c\"\ntype = \"conv\"\nkernel = 3\nout = 4\npad = 1\n\n\
         [[layer]]\nname = \"r\"\ntype = \"relu\"\nleak = 0.1\n\n\
         [[layer]]\nname = \"f\"\ntype = \"fc\"\nout = 3\noutputs = [\"prediction\"]\n\n\
         [[layer]]\nname = \"loss\"\ntype = \"softmaxlog\"\noutputs = [\"objective\"]\n"
    );
    let d = NetDesc::parse(&text, "a.toml").unwrap();
    let wiring: Vec<(Vec<String>, Vec<String>)> = d
        .layers
        .iter()
        .map(|l| (l.inputs.clone(), l.outputs.clone()))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(wiring[0], (s(&["input"]), s(&["c"])));
    assert_eq!(wiring[1], (s(&["c"]), s(&["r"])));
    assert_eq!(wiring[2], (s(&["r"]), s(&["prediction"])));
    assert_eq!(wiring[3], (s(&["prediction", "label"]), s(&["objective"])));
    assert_eq!(d.layers[1].line, Some(12));
    assert_eq!(d.classes, vec!["0", "1", "2"]);
    let net = Network::new(&d).unwrap();
    assert_eq!(net.param("f.weight").unwrap().value.shape(), &[3, 4, 8, 8]);
}

#[test]
fn errors_name_the_file_line_and_layer() {
    let layer = |body: &str| {
        format!("{HEADER}\n[[layer]]\nname = \"a\"\ntype = \"relu\"\n\n[[layer]]\n{body}\n")
    };
    // The second [[layer]] header is on line 9.
    let cases = [
        (
            layer("name = \"b\"\ntype = \"convolution\""),
            "unknown type 'convolution'",
        ),
        (
            layer("name = \"b\"\ntype = \"conv\"\nkernel = 3\nout = 2\nstrid = 2"),
            "option 'strid' does not apply to type 'conv'",
        ),
        (
            layer("name = \"b\"\ntype = \"conv\"\nkernel = 3\nout = 2\nstride = 0"),
            "'stride' must be positive",
        ),
        (
            layer("name = \"b\"\ntype = \"pool\"\nkernel = 2\nmethod = \"median\""),
            "'method' must be max or avg",
        ),
        (
            layer("name = \"b\"\ntype = \"dropout\"\nrate = 1.5"),
            "'rate' 1.5 must be in [0, 1)",
        ),
        (
            layer("name = \"b\"\ntype = \"conv\"\nkernel = [3, 3, 3]\nout = 2"),
            "'kernel' must be one number or two",
        ),
        (
            layer("name = \"b\"\ntype = \"relu\"\nleak = \"x\""),
            "invalid type",
        ),
        (
            layer("name = \"b\"\ntype = \"relu\"\nrate = 0.5"),
            "option 'rate' does not apply to type 'relu'",
        ),
    ];
    for (text, want) in cases {
        let e = parse_err(&text);
        assert!(
            e.starts_with("nets/t.toml:9: layer 'b': ") && e.contains(want),
            "{e} (wanted {want})"
        );
    }
    // Wiring errors are found when the network is built, and named the same way.
    let build = |text: String| {
        let d = NetDesc::parse(&text, "nets/t.toml").unwrap();
        Network::new(&d).unwrap_err().to_string()
    };
    let e = build(layer(
        "name = \"b\"\ntype = \"relu\"\ninputs = [\"nowhere\"]",
    ));
    assert!(
        e.starts_with("nets/t.toml:9: layer 'b': input 'nowhere' is neither"),
        "{e}"
    );
    let e = build(format!(
        "{HEADER}\n[[layer]]\nname = \"a\"\ntype = \"sum\"\ninputs = [\"input\", \"b\"]\n\n\
         [[layer]]\nname = \"b\"\ntype = \"relu\"\ninputs = [\"a\"]\n"
    ));
    assert!(
        e.starts_with("nets/t.toml:5: layer 'a': ") && e.contains("cycle"),
        "{e}"
    );
    assert!(e.contains("[\"a\", \"b\"]"), "{e}");
    let e = build(layer("name = \"b\"\ntype = \"conv\"\nsize = [3, 3, 2, 4]"));
    assert!(
        e.starts_with("nets/t.toml:9: layer 'b': 'size' gives 2 input channels"),
        "{e}"
    );
    let e = build(layer("name = \"b\"\ntype = \"conv\"\nkernel = 9\nout = 4"));
    assert!(
        e.starts_with("nets/t.toml:9: layer 'b': conv: height"),
        "{e}"
    );
    let e = build(layer("name = \"b\"\ntype = \"relu\"\noutputs = [\"a\"]"));
    assert!(
        e.contains("output 'a' is already the output of layer 'a'"),
        "{e}"
    );
    let e = build(layer("name = \"b\"\ntype = \"sum\"\ninputs = [\"input\", \"pooled\"]\n\n[[layer]]\nname = \"pooled\"\ntype = \"pool\"\nkernel = 2\nstride = 2\ninputs = [\"input\"]"));
    assert!(
        e.contains("input 1 ('pooled') has size 1x1x4x4 but input 0 has 1x1x8x8"),
        "{e}"
    );
    // Duplicate names and TOML syntax errors.
    let e = parse_err(&layer("name = \"a\"\ntype = \"relu\""));
    assert!(
        e.starts_with("nets/t.toml:9: layer 'a': another layer has the same name"),
        "{e}"
    );
    let e = parse_err(&format!("{HEADER}\n[[layer]]\nname = \"a\"\ntype = relu\n"));
    assert!(e.starts_with("nets/t.toml:7: "), "{e}");
    let e = parse_err("input = [8, 8]\n");
    assert!(e.contains("must be [height, width, channels]"), "{e}");
}

#[test]
fn shared_parameters_must_agree_in_shape() {
    let text = format!(
        "{HEADER}\n[[layer]]\nname = \"a\"\ntype = \"conv\"\nkernel = 3\nout = 2\npad = 1\nparams = [\"w\", \"b\"]\n\n\
         [[layer]]\nname = \"b\"\ntype = \"conv\"\nkernel = 3\nout = 2\npad = 1\nparams = [\"w\", \"b\"]\ninputs = [\"input\"]\n"
    );
    let net = Network::new(&NetDesc::parse(&text, "s.toml").unwrap()).unwrap();
    let names: Vec<&str> = net.params().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["w", "b"]);
    let bad = text.replacen(
        "kernel = 3\nout = 2\npad = 1\nparams",
        "kernel = 1\nout = 2\npad = 0\nparams",
        1,
    );
    let e = Network::new(&NetDesc::parse(&bad, "s.toml").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("s.toml:13: layer 'b': parameter 'w' is shared with layer 'a'"),
        "{e}"
    );
}

#[test]
fn lenet_table_matches_a_hand_count() {
    let s = summarize(&zoo::get("lenet").unwrap(), None).unwrap();
    let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["conv1", "pool1", "conv2", "pool2", "conv3", "relu1", "conv4", "loss"]
    );
    let outs: Vec<[usize; 3]> = s.rows.iter().map(|r| r.out).collect();
    assert_eq!(
        outs[..7],
        [
            [24, 24, 20],
            [12, 12, 20],
            [8, 8, 50],
            [4, 4, 50],
            [1, 1, 500],
            [1, 1, 500],
            [1, 1, 10]
        ]
    );
    // 5*5*1*20+20, 5*5*20*50+50, 4*4*50*500+500, 500*10+10.
    let params: Vec<usize> = s.rows.iter().map(|r| r.params).collect();
    assert_eq!(params, [520, 0, 25_050, 0, 400_500, 0, 5_010, 0]);
    assert_eq!(s.total_params, 431_080);
    // Receptive fields: 5, +1 (jump 2), +4*2, +1*2 (jump 4), +3*4.
    let rf: Vec<usize> = s.rows.iter().map(|r| r.receptive[0]).collect();
    assert_eq!(rf[..5], [5, 6, 14, 16, 28]);
    // conv1: 576 outputs x 20 channels x (25 multiply-adds x 2 + 1 bias add).
    assert_eq!(s.rows[0].flops, 576 * 20 * 51);
    assert_eq!(s.rows[0].kernel, "5");
    assert_eq!(s.rows[1].stride, "2");
    assert_eq!(s.rows[0].act_bytes, 24 * 24 * 20 * 4);
    let bigger = summarize(&zoo::get("lenet").unwrap(), Some([32, 32, 1])).unwrap();
    assert_eq!(bigger.rows[4].out, [2, 2, 500]);
    assert_eq!(bigger.total_params, 431_080);
    assert!(summarize(&zoo::get("lenet").unwrap(), Some([8, 8, 1])).is_err());
}

#[test]
fn zoo_parameter_counts_match_the_published_ones() {
    // VGG-16's deploy form is the distributed 37-layer network; training adds dropout
    // before fc7 and fc8 and the loss, and changes no parameter.
    let vgg = summarize(&zoo::get_deploy("vgg16").unwrap(), None).unwrap();
    assert_eq!(vgg.rows.len(), 37);
    assert_eq!(vgg.total_params, 138_357_544);
    assert_eq!(vgg.rows[36].out, [1, 1, 1000]);
    assert_eq!(vgg.rows[36].kind, "softmax");
    assert!(
        (vgg.total_flops as f64 / 1e9 - 30.97).abs() < 0.005,
        "{}",
        vgg.total_flops
    );
    let train = zoo::get("vgg16").unwrap();
    let kinds: Vec<&str> = train.layers.iter().map(|l| l.kind.type_name()).collect();
    assert_eq!(kinds.len(), 39);
    let tail = [
        "relu",
        "dropout",
        "conv",
        "relu",
        "dropout",
        "conv",
        "softmaxlog",
    ];
    assert_eq!(kinds[32..], tail);
    assert_eq!(summarize(&train, None).unwrap().total_params, 138_357_544);
    // torchvision's resnet18 (parameters, batch-norm buffers excluded).
    let resnet = summarize(&zoo::get("resnet18").unwrap(), None).unwrap();
    assert_eq!(resnet.total_params, 11_689_512);
    assert_eq!(resnet.rows.iter().filter(|r| r.kind == "sum").count(), 8);
    // Caffe's AlexNet with groups of two: 60,965,224.
    let alex = summarize(&zoo::get("alexnet").unwrap(), None).unwrap();
    assert_eq!(alex.total_params, 60_965_224);
    let cifar = summarize(&zoo::get("cifar").unwrap(), None).unwrap();
    let outs: Vec<[usize; 3]> = cifar.rows.iter().map(|r| r.out).collect();
    assert_eq!(outs[2], [16, 16, 32]);
    assert_eq!(outs[11], [1, 1, 10]);
}

#[test]
fn example_files_parse_and_lenet_matches_the_zoo() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nets");
    let mut lenet = NetDesc::load(&dir.join("lenet.toml")).unwrap();
    let zoo_lenet = zoo::get("lenet").unwrap();
    lenet.origin = zoo_lenet.origin.clone();
    lenet.layers.iter_mut().for_each(|l| l.line = None);
    assert_eq!(lenet, zoo_lenet);
    let small = NetDesc::load(&dir.join("small-resnet.toml")).unwrap();
    let s = summarize(&small, None).unwrap();
    assert_eq!(s.rows.last().unwrap().out, [1, 1, 1]);
    assert_eq!(s.rows[s.rows.len() - 2].out, [1, 1, 10]);
    let mut net = Network::from_desc(&small, 1).unwrap();
    let x = convnet::gradcheck::random(&[2, 3, 32, 32], 1);
    let y = convnet::Tensor::from_vec(&[2, 1, 1, 1], vec![3.0, 7.0]).unwrap();
    net.forward(&[("input", &x), ("label", &y)], net::Mode::Train)
        .unwrap();
    net.backward(1.0).unwrap();
    assert!(net.params().all(|p| p.grad.max_abs() > 0.0));
}

#[test]
fn unknown_names_list_the_built_ins() {
    let e = net::resolve("lenet7").unwrap_err().to_string();
    assert!(
        e.contains("'lenet7' is neither a built-in network (lenet, lenet-bn"),
        "{e}"
    );
}

#[test]
fn multipliers_shared_names_and_inits_reach_the_parameters_and_round_trip() {
    let text = format!(
        "{HEADER}init = \"xavier\"\n\n[[layer]]\nname = \"a\"\ntype = \"conv\"\nkernel = 3\nout = 2\n\
         params = [\"w\", \"a.bias\"]\nlr = [1.0, 2.0]\ndecay = [1.0, 0.0]\ninit = \"gaussian\"\nstd = 0.5\n\n\
         [[layer]]\nname = \"b\"\ntype = \"convt\"\nkernel = [2, 3]\nout = 4\nupsample = 2\ncrop = [0, 1, 1, 0]\n\
         groups = 2\nbias = false\n\n[[layer]]\nname = \"c\"\ntype = \"topkerror\"\nk = 3\ninputs = [\"b\", \"label\"]\n"
    );
    let d = NetDesc::parse(&text, "m.toml").unwrap();
    let mut back = NetDesc::parse(&d.to_toml(), "m.toml").unwrap();
    back.layers
        .iter_mut()
        .zip(&d.layers)
        .for_each(|(b, a)| b.line = a.line);
    assert_eq!(back, d);
    let net = Network::new(&d).unwrap();
    let p: Vec<(&str, f32, f32)> = net
        .params()
        .map(|p| (p.name.as_str(), p.lr_mult, p.decay_mult))
        .collect();
    assert_eq!(
        p,
        [
            ("w", 1.0, 1.0),
            ("a.bias", 2.0, 0.0),
            ("b.weight", 1.0, 1.0)
        ]
    );
    assert_eq!(net.param("b.weight").unwrap().value.shape(), &[2, 2, 2, 3]);
    let e = parse_err(&text.replace("lr = [1.0, 2.0]", "lr = [1.0]"));
    assert!(
        e.contains("'lr' has 1 entries but a conv layer has 2 parameters"),
        "{e}"
    );
}

#[test]
fn every_zoo_network_has_a_training_form_and_a_deploy_form() {
    use convnet::net::LayerKind;
    for name in zoo::NAMES {
        let train = zoo::get(name).unwrap();
        let deploy = zoo::get_deploy(name).unwrap();
        let has = |d: &NetDesc, f: &dyn Fn(&LayerKind) -> bool| d.layers.iter().any(|l| f(&l.kind));
        assert!(
            has(&train, &|k| k.is_objective()),
            "{name}: no loss to train"
        );
        assert!(!has(&deploy, &|k| matches!(
            k,
            LayerKind::Loss(_) | LayerKind::Dropout { .. }
        )));
        let last = deploy.layers.last().unwrap();
        assert_eq!(last.kind, LayerKind::Softmax, "{name}");
        assert_eq!(last.inputs, ["prediction"], "{name}");
        // Dropout's readers now read its input: the deploy form is wired and sized.
        let (t, d) = (
            summarize(&train, None).unwrap(),
            summarize(&deploy, None).unwrap(),
        );
        assert_eq!(t.total_params, d.total_params, "{name}");
        // Sized to a data set's three classes, the classifier scores three.
        let mut fitted = train.clone();
        let three: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let remade = net::finetune::fit_classes(&mut fitted, &three).unwrap();
        assert_eq!(
            remade.as_deref(),
            net::finetune::classifier(&train),
            "{name}"
        );
        let s = summarize(&fitted, None).unwrap();
        let row = s
            .rows
            .iter()
            .find(|r| Some(r.name.as_str()) == remade.as_deref());
        assert_eq!(row.unwrap().out, [1, 1, 3], "{name}");
    }
    for name in ["alexnet", "vgg16"] {
        let d = zoo::get(name).unwrap();
        let at = |l: &str| d.layers.iter().position(|k| k.name == l).unwrap();
        assert_eq!(at("drop6") + 1, at("fc7"), "{name}");
        assert_eq!(at("drop7") + 1, at("fc8"), "{name}");
    }
    // A deploy form runs and gives probabilities.
    let mut net = Network::from_desc(&zoo::get_deploy("lenet").unwrap(), 1).unwrap();
    let x = convnet::gradcheck::random(&[2, 1, 28, 28], 3);
    net.forward(&[("input", &x)], net::Mode::Test).unwrap();
    let p = net.var("prob").unwrap();
    assert!((p.data()[..10].iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

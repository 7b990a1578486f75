//! The CUDA backend's own kernels against the CPU blocks they mirror, strict FP32,
//! within 1e-4 relative. Compiling the kernels needs NVRTC only (no GPU): that test runs
//! wherever the library is installed (scripts/install-test-refs.sh). The rest need a GPU
//! and print "skipped: no GPU" where none is visible.
#![cfg(feature = "cuda")]

use convnet::blocks::{activation, dropout, loss, loss::LossKind};
use convnet::device::cuda::{self, nvrtc, ClassMetric, Gpu};
use convnet::device::{Device, DeviceError};
use convnet::train::solver::{ParamSlot, Solver, SolverKind};
use convnet::Tensor;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Where a missing reference must fail the test rather than skip it (CI).
fn refs_required() -> bool {
    std::env::var("CONVNET_REQUIRE_REFS").is_ok_and(|v| v == "1")
}

#[test]
fn every_kernel_compiles_to_ptx_with_nvrtc() {
    if !nvrtc::present() {
        assert!(!refs_required(), "NVRTC (libnvrtc.so.13) is missing: run scripts/install-test-refs.sh and put its lib folder on LD_LIBRARY_PATH");
        println!("skipped: NVRTC (libnvrtc.so.13) not found");
        return;
    }
    let names = nvrtc::kernel_names();
    assert!(names.len() >= 12, "kernels found in the source: {names:?}");
    for arch in nvrtc::TEST_ARCHS {
        let ptx = match nvrtc::compile(arch) {
            Ok(p) => p.to_src(),
            Err(e) => panic!("{arch}: {}", e.on(Device::Cuda(0))),
        };
        for name in &names {
            assert!(
                ptx.contains(&format!(".entry {name}(")),
                "{arch}: no entry {name} in the PTX"
            );
        }
        let target = arch.replace("compute_", "sm_");
        assert!(
            ptx.contains(&format!(".target {target}")),
            "{arch}: wrong target"
        );
    }
}

#[test]
fn a_machine_without_the_driver_gets_an_error_naming_it() {
    if cuda::driver_present() {
        println!("skipped: the CUDA driver library is present here");
        return;
    }
    let e = Device::Cuda(0).check().unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, DeviceError::MissingLibrary { .. }), "{text}");
    assert!(
        text.contains("cuda:0") && text.contains("libcuda.so"),
        "{text}"
    );
}

/// GPU 0, or None after printing why the test is skipped.
fn gpu() -> Option<Gpu> {
    if !cuda::driver_present() {
        println!("skipped: no GPU (no CUDA driver library)");
        return None;
    }
    match Gpu::open(0) {
        Ok(g) => Some(g),
        Err(DeviceError::NoDevice { .. }) => {
            println!("skipped: no GPU (the driver sees no device)");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.gen_range(-3.0f32..3.0)).collect()).unwrap()
}

/// GPU and CPU results within 1e-4 relative (absolute below 1).
fn assert_close(what: &str, gpu: &Tensor, cpu: &Tensor) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}");
    for (i, (&g, &c)) in gpu.data().iter().zip(cpu.data()).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 * c.abs().max(1.0),
            "{what}: element {i}: GPU {g}, CPU {c}"
        );
    }
}

fn assert_close_scalar(what: &str, g: f32, c: f32) {
    assert!(
        (g - c).abs() <= 1e-4 * c.abs().max(1.0),
        "{what}: GPU {g}, CPU {c}"
    );
}

#[test]
fn a_bad_device_index_and_too_much_memory_are_errors() {
    let Some(g) = gpu() else { return };
    let e = Device::Cuda(4096).check().unwrap_err();
    assert!(matches!(e, DeviceError::BadIndex { .. }), "{e}");
    assert!(e.to_string().contains("cuda:4096"), "{e}");
    // 2^42 floats: 16 TiB, more than any GPU holds.
    let e = g
        .zeros(&[1 << 22, 1 << 20])
        .err()
        .expect("16 TiB allocated?");
    assert!(e.to_string().contains("out of GPU memory"), "{e}");
}

#[test]
fn activations_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let x = random(&[4, 3, 5, 7], 1);
    let dy = random(&[4, 3, 5, 7], 2);
    let (gx, gdy) = (g.upload(&x).unwrap(), g.upload(&dy).unwrap());
    for leak in [0.0, 0.1] {
        let y = g.download(&g.relu_forward(&gx, leak).unwrap()).unwrap();
        assert_close("relu", &y, &activation::relu_forward(&x, leak));
        let dx = g
            .download(&g.relu_backward(&gx, leak, &gdy).unwrap())
            .unwrap();
        assert_close(
            "relu backward",
            &dx,
            &activation::relu_backward(&x, leak, &dy).unwrap(),
        );
    }
    let y = g.download(&g.sigmoid_forward(&gx).unwrap()).unwrap();
    assert_close("sigmoid", &y, &activation::sigmoid_forward(&x));
    let dx = g.download(&g.sigmoid_backward(&gx, &gdy).unwrap()).unwrap();
    assert_close(
        "sigmoid backward",
        &dx,
        &activation::sigmoid_backward(&x, &dy).unwrap(),
    );
    let y = g.download(&g.tanh_forward(&gx).unwrap()).unwrap();
    assert_close("tanh", &y, &activation::tanh_forward(&x));
    let dx = g.download(&g.tanh_backward(&gx, &gdy).unwrap()).unwrap();
    assert_close(
        "tanh backward",
        &dx,
        &activation::tanh_backward(&x, &dy).unwrap(),
    );
    assert!(g
        .relu_backward(&gx, 0.0, &g.upload(&random(&[4, 3], 3)).unwrap())
        .is_err());
}

#[test]
fn dropout_matches_its_host_reference_and_the_cpu_product() {
    let Some(g) = gpu() else { return };
    let shape = [8, 16, 9, 9];
    let (rate, seed) = (0.3f32, 42u64);
    let mask = g
        .download(&g.dropout_mask(&shape, rate, seed).unwrap())
        .unwrap();
    let keep = 1.0 / (1.0 - rate);
    let dropped = mask.data().iter().filter(|&&m| m == 0.0).count() as f32 / mask.len() as f32;
    assert!((dropped - rate).abs() < 0.02, "dropped fraction {dropped}");
    for (i, &m) in mask.data().iter().enumerate() {
        let want = if cuda::dropout_uniform(seed, i as u64) < rate {
            0.0
        } else {
            keep
        };
        assert_eq!(m, want, "element {i}");
    }
    let x = random(&shape, 4);
    let y = g
        .download(
            &g.times_mask(&g.upload(&x).unwrap(), &g.upload(&mask).unwrap())
                .unwrap(),
        )
        .unwrap();
    assert_close("dropout", &y, &dropout::forward(&x, &mask).unwrap());
    assert!(g.dropout_mask(&shape, 1.0, seed).is_err());
}

#[test]
fn solver_updates_match_the_cpu() {
    let Some(g) = gpu() else { return };
    for kind in [SolverKind::Sgd { momentum: 0.9 }, SolverKind::adam()] {
        let (rate, decay, batch) = (0.05f32, 0.002f32, 16);
        let mut w = random(&[257], 5).into_vec();
        let mut cpu = Solver::new(kind, decay).unwrap();
        let mut gw = g
            .upload(&Tensor::from_vec(&[257], w.clone()).unwrap())
            .unwrap();
        let mut state: Vec<_> = kind
            .state_names()
            .iter()
            .map(|_| g.zeros(&[257]).unwrap())
            .collect();
        for step in 1..=5u64 {
            let grad = random(&[257], 10 + step);
            let mut slots = [ParamSlot {
                value: &mut w,
                grad: grad.data(),
                lr_mult: 1.0,
                decay_mult: 1.0,
            }];
            cpu.step(&mut slots, rate, batch).unwrap();
            let gg = g.upload(&grad).unwrap();
            g.solver_update(kind, &mut gw, &gg, &mut state, rate, decay, batch, step)
                .unwrap();
        }
        let want = Tensor::from_vec(&[257], w).unwrap();
        assert_close(&format!("{kind:?}"), &g.download(&gw).unwrap(), &want);
    }
}

#[test]
fn softmax_log_loss_and_class_errors_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let x = random(&[3, 7, 2, 3], 6);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let labels: Vec<f32> = (0..18).map(|_| rng.gen_range(0..7) as f32).collect();
    let labels = Tensor::from_vec(&[3, 1, 2, 3], labels).unwrap();
    let weights: Vec<f32> = (0..18).map(|i| [1.0, 0.5, 0.0][i % 3]).collect();
    let weights = Tensor::from_vec(&[3, 1, 2, 3], weights).unwrap();
    let (gx, gl, gw) = (
        g.upload(&x).unwrap(),
        g.upload(&labels).unwrap(),
        g.upload(&weights).unwrap(),
    );
    for (w, gw) in [(None, None), (Some(&weights), Some(&gw))] {
        for kind in [
            LossKind::SoftmaxLog,
            LossKind::ClassError,
            LossKind::TopKError(3),
        ] {
            let metric = ClassMetric::of(kind).unwrap();
            let got = g.class_loss(&gx, &gl, gw, metric).unwrap();
            let want = loss::forward(&x, &labels, w, kind).unwrap();
            assert_close_scalar(&format!("{kind:?}, weights {}", w.is_some()), got, want);
        }
        let dx = g
            .download(&g.softmax_log_loss_backward(&gx, &gl, gw, 0.25).unwrap())
            .unwrap();
        let want = loss::backward(&x, &labels, w, LossKind::SoftmaxLog, 0.25).unwrap();
        assert_close("softmax log-loss backward", &dx, &want);
    }
    let mut bad = labels.clone();
    bad.data_mut()[4] = 7.0;
    let e = g
        .class_loss(&gx, &g.upload(&bad).unwrap(), None, ClassMetric::SoftmaxLog)
        .unwrap_err();
    assert!(e.to_string().contains("image 0, location 4"), "{e}");
}

//! Running the `convnet` binary from the command-line tests.
#![allow(dead_code)] // each test file uses its own subset

use std::process::{Command, Output};

pub fn convnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The standard output of a command that must succeed.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}", stderr(&o));
    stdout(&o)
}

//! Compiles `kernels/fused.cu` to PTX when the `cuda` feature is on (the fused GPU kernels of
//! `src/fused/`). Needs `nvcc` (from `CUDA_HOME`/`CUDA_PATH`/`CUDA_ROOT` or `PATH`), which
//! the `cuda` feature needs anyway for candle's own kernels. `CUDA_COMPUTE_CAP` (e.g. `90`)
//! picks the PTX target, as for candle; default 80 (the oldest with bf16 tensor cores), which
//! the driver compiles for newer cards at load.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels/fused.cu");
    for var in ["CUDA_COMPUTE_CAP", "CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("fused.ptx");
    let nvcc = ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"]
        .iter()
        .filter_map(env::var_os)
        .map(|home| PathBuf::from(home).join("bin").join("nvcc"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let cap: u32 = env::var("CUDA_COMPUTE_CAP")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(80)
        .max(80);
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17"])
        .arg(format!("-arch=compute_{cap}"))
        .arg("-o")
        .arg(&out)
        .arg("kernels/fused.cu")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("nvcc failed ({s}) compiling kernels/fused.cu"),
        Err(e) => panic!(
            "the `cuda` feature needs the CUDA toolkit's nvcc ({}: {e}); set CUDA_HOME",
            nvcc.display()
        ),
    }
}

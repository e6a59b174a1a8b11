//! Embed the PAD web app: `web-ui/dist` when it has been built, a placeholder page
//! otherwise (so `cargo build` works before `npm run build`). Text files are embedded
//! gzipped (`name.gz` in place of `name`) where that saves a tenth or more: the binary is
//! smaller, and browsers take them as they are.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Files worth compressing, by extension.
const TEXT: &[&str] = &[
    "html",
    "js",
    "css",
    "svg",
    "json",
    "txt",
    "map",
    "webmanifest",
];

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes)?;
    enc.finish()
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
            continue;
        }
        let text = entry
            .path()
            .extension()
            .is_some_and(|e| TEXT.iter().any(|t| e.eq_ignore_ascii_case(t)));
        let bytes = std::fs::read(entry.path())?;
        let packed = if text { gzip(&bytes)? } else { Vec::new() };
        if text && packed.len() * 10 <= bytes.len() * 9 {
            let mut name = target.into_os_string();
            name.push(".gz");
            std::fs::write(name, packed)?;
        } else {
            std::fs::write(&target, bytes)?;
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

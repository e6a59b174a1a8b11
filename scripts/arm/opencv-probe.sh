#!/usr/bin/env bash
# Prove that the opencv crate cross-builds against the arm64 sysroot's OpenCV
# (Debian 12: 4.6) and runs under qemu: a throwaway crate in the cache dir
# draws into a Mat, encodes it as PNG, decodes it again and checks a pixel.
#
# Usage: scripts/arm/opencv-probe.sh   (after scripts/arm/sysroot.sh)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/arm/env.sh
. "$here/env.sh"
TARGET=aarch64-unknown-linux-gnu
probe="$BRANCHD_CACHE/opencv-probe"
export CARGO_TARGET_DIR="$BRANCHD_CACHE/target-opencv-probe"

mkdir -p "$probe/src"
cat >"$probe/Cargo.toml" <<'TOML'
[package]
name = "opencv-probe"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
opencv = { version = "0.95", default-features = false, features = ["imgproc", "imgcodecs", "videoio"] }

[workspace]
TOML
cat >"$probe/src/main.rs" <<'RUST'
use opencv::{core, imgcodecs, imgproc, prelude::*, videoio};

fn main() -> opencv::Result<()> {
    let mut img = core::Mat::new_rows_cols_with_default(16, 24, core::CV_8UC3, core::Scalar::all(0.0))?;
    let green = core::Scalar::new(0.0, 255.0, 0.0, 0.0);
    imgproc::rectangle(&mut img, core::Rect::new(4, 4, 8, 8), green, -1, imgproc::LINE_8, 0)?;
    let mut png = core::Vector::<u8>::new();
    imgcodecs::imencode(".png", &img, &mut png, &core::Vector::new())?;
    let back = imgcodecs::imdecode(&png, imgcodecs::IMREAD_COLOR)?;
    let px = *back.at_2d::<core::Vec3b>(8, 8)?;
    assert_eq!((back.cols(), back.rows()), (24, 16));
    assert_eq!(px.0, [0, 255, 0]);
    let cap = videoio::VideoCapture::default()?;
    println!(
        "opencv {} on {}: png {} bytes, decoded {}x{}, pixel {:?}, VideoCapture ok (opened: {})",
        core::CV_VERSION,
        std::env::consts::ARCH,
        png.len(),
        back.cols(),
        back.rows(),
        px.0,
        cap.is_opened()?
    );
    Ok(())
}
RUST

cd "$probe"
cargo build --release --target "$TARGET" --quiet
out="$(qemu-aarch64-static -L "$BRANCHD_SYSROOT" "$CARGO_TARGET_DIR/$TARGET/release/opencv-probe")"
echo "$out"
[[ "$out" == "opencv 4."*" on aarch64: "* ]] || { echo "opencv probe: unexpected output" >&2; exit 1; }

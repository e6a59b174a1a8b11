//! Arbitrary uploads into the image intake: the header check (`image::sniff`) must never
//! panic and accept only a JPEG or PNG of a size the box decodes; the decoder (OpenCV,
//! behind the same check) must refuse whatever the header check refuses, and an image it
//! decodes must have the size the header gave (turned by the EXIF orientation at most),
//! so the size limit checked on the header holds for the pixels. Decoding is only tried
//! for headers of at most 64 K pixels, to keep each run short.
#![no_main]

use branchd::image::{Format, MAX_PIXELS, MAX_SIDE, decode, sniff};
use libfuzzer_sys::fuzz_target;
use opencv::prelude::MatTraitConst;

fuzz_target!(|data: &[u8]| {
    let (format, w, h) = match sniff(data) {
        Ok(header) => header,
        Err(e) => {
            assert_eq!(decode(data).err(), Some(e));
            return;
        }
    };
    assert!((1..=MAX_SIDE).contains(&w) && (1..=MAX_SIDE).contains(&h));
    assert!(u64::from(w) * u64::from(h) <= MAX_PIXELS);
    match format {
        Format::Png => assert!(data.starts_with(b"\x89PNG\r\n\x1a\n")),
        Format::Jpeg => assert!(data.starts_with(&[0xFF, 0xD8])),
    }
    if u64::from(w) * u64::from(h) > 1 << 16 {
        return;
    }
    if let Ok(img) = decode(data) {
        let (rows, cols) = (img.rows(), img.cols());
        let (w, h) = (w as i32, h as i32);
        assert!(
            (cols, rows) == (w, h) || (cols, rows) == (h, w),
            "decoded {cols}x{rows}, the header said {w}x{h}"
        );
    }
});

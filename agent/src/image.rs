//! Image intake: recognise the format and size from the header before decoding, refuse
//! what the box should not decode, then decode with OpenCV (which applies the EXIF
//! orientation of JPEG photos).

use opencv::core::Mat;
use opencv::prelude::*;

/// The largest image side accepted, in pixels.
pub const MAX_SIDE: u32 = 10_000;
/// The largest image accepted, in pixels.
pub const MAX_PIXELS: u64 = 40_000_000;

/// An image format the box reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
}

/// Why an upload is not a usable image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Neither JPEG nor PNG.
    #[error("not a JPEG or PNG image")]
    NotAnImage,
    /// The header ends early or is inconsistent.
    #[error("the {0} header is truncated or malformed")]
    BadHeader(&'static str),
    /// A side is zero.
    #[error("the image is empty ({0}x{1})")]
    Empty(u32, u32),
    /// Too large to decode on the box.
    #[error(
        "the image is {0}x{1} pixels; at most {MAX_SIDE} per side and {MAX_PIXELS} in all are accepted"
    )]
    TooLarge(u32, u32),
    /// The decoder gave up (truncated or corrupt data).
    #[error("the image data is truncated or corrupt")]
    Corrupt,
}

/// Format and size read from the header only.
pub fn sniff(bytes: &[u8]) -> Result<(Format, u32, u32), ImageError> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        // IHDR is the first chunk: length(4) "IHDR"(4) width(4) height(4)
        if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
            return Err(ImageError::BadHeader("PNG"));
        }
        let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        return check_size(Format::Png, w, h);
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        loop {
            // skip fill bytes, find a marker
            while i < bytes.len() && bytes[i] == 0xFF && bytes.get(i + 1) == Some(&0xFF) {
                i += 1;
            }
            if i + 4 > bytes.len() || bytes[i] != 0xFF {
                return Err(ImageError::BadHeader("JPEG"));
            }
            let marker = bytes[i + 1];
            let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
            let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
            if is_sof {
                if i + 9 > bytes.len() || len < 7 {
                    return Err(ImageError::BadHeader("JPEG"));
                }
                let h = u32::from(u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]));
                let w = u32::from(u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]));
                return check_size(Format::Jpeg, w, h);
            }
            if marker == 0xD9 || marker == 0xDA || len < 2 {
                return Err(ImageError::BadHeader("JPEG"));
            }
            i += 2 + len;
        }
    }
    Err(ImageError::NotAnImage)
}

fn check_size(f: Format, w: u32, h: u32) -> Result<(Format, u32, u32), ImageError> {
    if w == 0 || h == 0 {
        return Err(ImageError::Empty(w, h));
    }
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(ImageError::TooLarge(w, h));
    }
    Ok((f, w, h))
}

/// Decode to BGR u8, upright per the EXIF orientation.
pub fn decode(bytes: &[u8]) -> Result<Mat, ImageError> {
    let (format, _, _) = sniff(bytes)?;
    // libjpeg fills a truncated scan with grey and only warns: require the end marker
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    if format == Format::Jpeg && !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err(ImageError::Corrupt);
    }
    let buf = Mat::from_slice(bytes).map_err(|_| ImageError::Corrupt)?;
    let img = opencv::imgcodecs::imdecode(&buf, opencv::imgcodecs::IMREAD_COLOR)
        .map_err(|_| ImageError::Corrupt)?;
    if img.empty() || img.rows() == 0 || img.cols() == 0 {
        return Err(ImageError::Corrupt);
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn text_is_not_an_image() {
        assert_eq!(sniff(b"hello world"), Err(ImageError::NotAnImage));
        assert_eq!(decode(b"").err(), Some(ImageError::NotAnImage));
    }

    #[test]
    fn a_zero_by_zero_png_is_refused_before_decoding() {
        assert_eq!(sniff(&png_header(0, 0)), Err(ImageError::Empty(0, 0)));
    }

    #[test]
    fn huge_dimensions_are_refused_before_decoding() {
        assert_eq!(
            sniff(&png_header(60_000, 60_000)),
            Err(ImageError::TooLarge(60_000, 60_000))
        );
        assert_eq!(
            sniff(&png_header(9_000, 9_000)),
            Err(ImageError::TooLarge(9_000, 9_000))
        );
    }

    #[test]
    fn a_header_only_png_does_not_decode() {
        assert_eq!(decode(&png_header(20, 20)).err(), Some(ImageError::Corrupt));
    }

    #[test]
    fn truncated_jpeg_headers_are_malformed() {
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF]),
            Err(ImageError::BadHeader("JPEG"))
        );
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J']),
            Err(ImageError::BadHeader("JPEG"))
        );
    }

    #[test]
    fn an_encoded_png_round_trips() {
        let img = Mat::new_rows_cols_with_default(
            12,
            34,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(200.0),
        )
        .unwrap();
        let mut buf = opencv::core::Vector::<u8>::new();
        opencv::imgcodecs::imencode(".png", &img, &mut buf, &opencv::core::Vector::new()).unwrap();
        let bytes = buf.to_vec();
        assert_eq!(sniff(&bytes), Ok((Format::Png, 34, 12)));
        let back = decode(&bytes).unwrap();
        assert_eq!((back.cols(), back.rows()), (34, 12));
        assert_eq!(
            decode(&bytes[..bytes.len() / 2]).err(),
            Some(ImageError::Corrupt)
        );
    }

    /// A JPEG with an EXIF APP1 segment saying "rotate 90° clockwise to view".
    fn jpeg_with_orientation(w: i32, h: i32, orientation: u8) -> Vec<u8> {
        let img = Mat::new_rows_cols_with_default(
            h,
            w,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(90.0),
        )
        .unwrap();
        let mut buf = opencv::core::Vector::<u8>::new();
        opencv::imgcodecs::imencode(".jpg", &img, &mut buf, &opencv::core::Vector::new()).unwrap();
        let jpeg = buf.to_vec();
        let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        exif.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0, orientation, 0, 0]);
        exif.extend_from_slice(&[0, 0, 0, 0]);
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&exif);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn a_jpeg_is_turned_upright_by_its_exif_orientation() {
        let plain = jpeg_with_orientation(40, 20, 1);
        let m = decode(&plain).unwrap();
        assert_eq!((m.cols(), m.rows()), (40, 20));
        let turned = jpeg_with_orientation(40, 20, 6);
        assert_eq!(sniff(&turned), Ok((Format::Jpeg, 40, 20)));
        let m = decode(&turned).unwrap();
        assert_eq!((m.cols(), m.rows()), (20, 40));
    }
}

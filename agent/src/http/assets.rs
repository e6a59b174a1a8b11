//! The PAD web app, embedded in the binary at build time and served at `/`. Text files are
//! embedded gzipped (see `build.rs`): sent so to a client that takes gzip (every browser),
//! unpacked for one that does not.

use std::io::Read;

use include_dir::{Dir, include_dir};
use warp::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

static WEB: Dir<'_> = include_dir!("$OUT_DIR/web");

/// Whether the embedded app is the real build (not the placeholder page).
pub fn is_real_build() -> bool {
    WEB.get_file("assets").is_some() || WEB.get_dir("assets").is_some()
}

/// Whether an `Accept-Encoding` header takes gzip (`gzip` or `*`, not with `q=0`).
fn takes_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The app's file at `path` (`/` is the page), if there is one, encoded for a client that
/// sent `headers`.
pub fn serve(path: &str, headers: &HeaderMap) -> Option<warp::reply::Response> {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if path.ends_with(".gz") {
        return None;
    }
    let (body, packed) = match WEB.get_file(path) {
        Some(f) => (f.contents(), false),
        None => (WEB.get_file(format!("{path}.gz"))?.contents(), true),
    };
    let gzip_sent = packed && takes_gzip(headers);
    let body = if packed && !gzip_sent {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut plain)
            .ok()?;
        plain.into()
    } else {
        bytes::Bytes::from_static(body)
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if gzip_sent {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if packed {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    // Vite puts content hashes in asset names: those never change. The page itself must be
    // revalidated so a new build is picked up.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    async fn body(resp: warp::reply::Response) -> Vec<u8> {
        use http_body_util::BodyExt as _;
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn the_page_goes_gzipped_to_a_client_that_takes_it_and_plain_to_one_that_does_not() {
        let plain = serve("/", &HeaderMap::new()).expect("index.html");
        assert_eq!(plain.headers()[header::CONTENT_TYPE], "text/html");
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(
            plain.headers()[header::VARY],
            "accept-encoding",
            "it is embedded packed"
        );
        let page = body(plain).await;
        assert!(String::from_utf8(page.clone()).unwrap().contains("<html"));

        let packed = serve("/", &accepting("deflate, gzip;q=0.8, br")).unwrap();
        assert_eq!(packed.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(packed.headers()[header::CONTENT_TYPE], "text/html");
        let gz = body(packed).await;
        assert!(gz.len() < page.len());
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, page);

        for refusing in ["gzip;q=0", "br", "identity"] {
            let r = serve("/", &accepting(refusing)).unwrap();
            assert!(
                r.headers().get(header::CONTENT_ENCODING).is_none(),
                "{refusing}"
            );
        }
        assert!(serve("/index.html.gz", &HeaderMap::new()).is_none());
        assert!(serve("/no/such/file.js", &HeaderMap::new()).is_none());
    }
}

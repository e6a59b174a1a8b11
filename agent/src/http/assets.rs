//! The PAD web app, embedded in the binary at build time and served at `/`.

use include_dir::{Dir, include_dir};
use warp::http::{HeaderValue, Response, StatusCode, header};

static WEB: Dir<'_> = include_dir!("$OUT_DIR/web");

/// Whether the embedded app is the real build (not the placeholder page).
pub fn is_real_build() -> bool {
    WEB.get_file("assets").is_some() || WEB.get_dir("assets").is_some()
}

/// The app's file at `path` (`/` is the page), if there is one.
pub fn serve(path: &str) -> Option<warp::reply::Response> {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let file = WEB.get_file(path)?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut resp = Response::new(file.contents().to_vec().into());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
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

    #[test]
    fn the_index_page_is_embedded() {
        let page = serve("/").expect("index.html");
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html");
        assert!(serve("/no/such/file.js").is_none());
    }
}

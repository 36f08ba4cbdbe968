//! The console's static files, embedded in the binary at build time (no
//! Node or npm at run time or build time: the front end is plain ES modules,
//! with its few libraries vendored under `assets/vendor/`).

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Serves a file, or `index.html` for the console's own routes (`/topics/x`),
/// so that a reload or a shared link opens the right page.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if let Some(found) = file(path) {
        return found;
    }
    if path.starts_with("api/") || path.contains('.') {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    file("index.html").unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found\n").into_response())
}

fn file(path: &str) -> Option<Response> {
    let path = if path.is_empty() { "index.html" } else { path };
    let asset = Assets::get(path)?;
    let mime = asset.metadata.mimetype().to_string();
    // index.html names the modules it loads; it must never be cached, the
    // modules may be briefly (a new binary is a restart away).
    let cache = if path == "index.html" {
        "no-cache"
    } else {
        "public, max-age=300"
    };
    Some(
        (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, cache.to_string()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            ],
            asset.data.into_owned(),
        )
            .into_response(),
    )
}

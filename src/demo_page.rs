//! The live seat-map page at `/demo`. The page's source lives in `demo/` at the repository root;
//! its bundled script (`demo/dist/demo.js`, rebuilt with `npm run build` there) is compiled into
//! the binary, so the server needs no files or Node.js at run time.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX_HTML: &str = include_str!("../demo/index.html");
const STYLE_CSS: &str = include_str!("../demo/style.css");
const SCRIPT_JS: &str = include_str!("../demo/dist/demo.js");

/// The page talks only to this origin (GraphQL over HTTP and WebSocket); nothing else may load.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Routes of the demo page, to be merged into the app's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/demo", get(index))
        .route("/demo/", get(index))
        .route("/demo/demo.js", get(script))
        .route("/demo/demo.css", get(style))
}

async fn index() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            // The page names its assets without a version: always revalidate so a new build shows.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        INDEX_HTML,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        SCRIPT_JS,
    )
}

async fn style() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        STYLE_CSS,
    )
}

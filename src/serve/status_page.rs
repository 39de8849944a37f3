//! The `/status` page for people: an HTML shell (the server-rendered tables, readable without
//! script) plus `/status/app.js` and `/status/app.css`, embedded in the binary, that draw each
//! scenario's run history as ticks, uptime, latency sparklines, waterfalls and filters from the
//! JSON document and refresh it in place. No external assets; served under a
//! `Content-Security-Policy` that allows only this origin's script and style.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::serve::history::RETAINED_RUNS;
use crate::serve::http::App;

/// The policy of the page and its assets: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const APP_JS: &str = include_str!("status_page.js");
const APP_CSS: &str = include_str!("status_page.css");

/// `/status?history=N`: the N newest runs of each scenario (default and most: all retained).
#[derive(Debug, Default, Deserialize)]
pub struct StatusQuery {
    history: Option<usize>,
}

impl StatusQuery {
    pub fn history_limit(&self) -> usize {
        self.history.unwrap_or(RETAINED_RUNS).min(RETAINED_RUNS)
    }
}

fn with_policy(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The page: the script draws into `#app` and hides `#static` once it has the JSON document.
pub fn page(app: &Arc<App>) -> Response {
    let tables = app.status_html();
    let body = tables
        .split_once("<body>")
        .and_then(|(_, rest)| rest.rsplit_once("</body>"))
        .map(|(inner, _)| inner)
        .unwrap_or_default();
    let html = format!(
        concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<meta name=\"color-scheme\" content=\"light dark\">",
            "<title>flowprobe status</title><link rel=\"icon\" href=\"data:,\">",
            "<link rel=\"stylesheet\" href=\"/status/app.css\">",
            "<script src=\"/status/app.js\" defer></script></head>\n",
            "<body><main id=\"app\" aria-live=\"polite\" hidden></main>\n",
            "<div id=\"static\">{}</div></body></html>\n"
        ),
        body
    );
    with_policy("text/html; charset=utf-8", html)
}

pub async fn app_js() -> Response {
    with_policy("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> Response {
    with_policy("text/css; charset=utf-8", APP_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_limit_is_bounded() {
        assert_eq!(StatusQuery::default().history_limit(), RETAINED_RUNS);
        let q = |n| StatusQuery { history: Some(n) }.history_limit();
        assert_eq!(q(0), 0);
        assert_eq!(q(7), 7);
        assert_eq!(q(100_000), RETAINED_RUNS);
    }

    #[test]
    fn the_assets_use_no_inline_code_and_no_other_origin() {
        for asset in [APP_JS, APP_CSS] {
            let asset = asset.replace("\"http://www.w3.org/2000/svg\"", "");
            assert!(!asset.contains("http://") && !asset.contains("https://"));
        }
        assert!(!APP_JS.contains("innerHTML") && !APP_JS.contains("eval("));
        assert!(!APP_JS.contains(".setAttribute(\"style\""));
    }
}

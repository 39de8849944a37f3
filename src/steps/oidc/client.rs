//! HTTP clients of the `oidc` step: one for the back channel (discovery, JWKS, token,
//! userinfo) and one browser-like client (its own cookie jar, redirects not followed) for the
//! front channel; both with the step's TLS settings. Transport errors become reasons.

use std::sync::{Arc, Mutex};

use openidconnect::{HttpClientError, HttpRequest, HttpResponse};

use crate::outcome::Reason;
use crate::secrets::Redactor;
use crate::steps::http::{apply_tls, classify, error_chain, TlsSpec};
use crate::steps::{StepContext, StepError};

/// Builds a client; `jar` makes it a browser (cookies kept across its requests).
pub fn build(
    tls: Option<&TlsSpec>,
    ctx: &StepContext<'_>,
    jar: Option<Arc<reqwest::cookie::Jar>>,
) -> Result<reqwest::Client, StepError> {
    let mut b = crate::steps::trust::with_system_roots(reqwest::Client::builder())
        .use_rustls_tls()
        .connect_timeout(ctx.timeout)
        .timeout(ctx.timeout)
        // Each hop is recorded by the step, and OAuth requires not following redirects on
        // the back channel (oauth2's SSRF advice).
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("flowprobe/", env!("CARGO_PKG_VERSION")));
    if let Some(jar) = jar {
        b = b.cookie_provider(jar);
    }
    if let Some(tls) = tls {
        b = apply_tls(b, tls, ctx.resolver)?;
    }
    b.build()
        .map_err(|e| StepError::new(Reason::Config, format!("cannot build HTTP client: {e}")))
}

/// A transport failure of the request to `what` (discovery, token, ...), with its reason.
pub fn transport_error(what: &str, url: &str, e: &reqwest::Error) -> StepError {
    StepError::new(
        classify(e),
        format!("{what}: {}: {}", strip_query(url), error_chain(e)),
    )
}

/// A URL without query and fragment: what hop logs and messages show (codes, states and
/// token hints travel in queries).
pub fn strip_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

/// A back-channel answer.
pub struct Fetched {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GETs a JSON document.
pub async fn fetch_json(
    http: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<Fetched, StepError> {
    let resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| transport_error(what, url, &e))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport_error(what, url, &e))?
        .to_vec();
    Ok(Fetched { status, body })
}

/// The back-channel client as openidconnect's HTTP client, remembering the status of the
/// last answer (oauth2 drops it from its errors, and a 502 is not an `invalid_grant`), with
/// the run's redactor for what its answers show.
#[derive(Clone)]
pub struct Recording {
    pub client: reqwest::Client,
    pub last_status: Arc<Mutex<Option<u16>>>,
    pub redactor: Redactor,
}

impl Recording {
    pub fn new(client: reqwest::Client, redactor: Redactor) -> Self {
        Recording {
            client,
            last_status: Arc::default(),
            redactor,
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.last_status.lock().ok().and_then(|s| *s)
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Recording {
    type Error = HttpClientError<reqwest::Error>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let resp = self.client.call(request).await?;
            if let Ok(mut s) = self.last_status.lock() {
                *s = Some(resp.status().as_u16());
            }
            Ok(resp)
        })
    }
}

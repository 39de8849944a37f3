//! CPU per http and https probe with a new connection each (TLS handshake each for https): the
//! step on the transport against a reqwest client built per probe (the step before the
//! transport).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use flowprobe::secrets::Redactor;
use flowprobe::steps::http::{HttpSpec, TlsSpec};
use flowprobe::steps::{Cleanups, Kind, Shared, StepContext};
use flowprobe::template::{Expr, RenderError, Resolve};
use flowprobe::trace::{SpanContext, SpanId, TraceId};

struct NoVars;

impl Resolve for NoVars {
    fn resolve(&self, _: &Expr) -> Result<String, RenderError> {
        Err(RenderError("no values".into()))
    }
}

/// A server thread answering every connection `200 ok` and closing it; over TLS with `tls`.
fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(c) = conn else { continue };
            match &tls {
                None => answer(c),
                Some(cfg) => {
                    let Ok(s) = rustls::ServerConnection::new(cfg.clone()) else {
                        continue;
                    };
                    let mut stream = rustls::StreamOwned::new(s, c);
                    answer(&mut stream);
                    stream.conn.send_close_notify();
                    let _ = stream.flush();
                }
            }
        }
    });
    port
}

fn answer(mut c: impl Read + Write) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
}

/// A self-signed certificate for 127.0.0.1: the server's configuration and the CA file.
fn tls_server(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).expect("write the CA file");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .expect("server config");
    (Arc::new(cfg), ca.display().to_string())
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One probe through the step as it was: a reqwest client built for it, system roots added.
async fn reqwest_probe(url: &str, roots: &[reqwest::Certificate], ca: Option<&str>) {
    let mut b = roots
        .iter()
        .fold(
            reqwest::Client::builder().tls_built_in_root_certs(false),
            |b, c| b.add_root_certificate(c.clone()),
        )
        .use_rustls_tls()
        .tls_info(true)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("CA file");
        for c in reqwest::Certificate::from_pem_bundle(&pem).expect("PEM") {
            b = b.add_root_certificate(c);
        }
    }
    let client = b.build().expect("client");
    let resp = client.get(url).send().await.expect("answer");
    assert_eq!(resp.status(), 200);
    resp.bytes().await.expect("body");
}

pub fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (server_tls, ca) = tls_server(dir.path());
    let plain = format!("http://127.0.0.1:{}/", serve(None));
    let https = format!("https://127.0.0.1:{}/", serve(Some(server_tls)));
    compare(c, &rt, "http_step", &plain, None);
    compare(c, &rt, "https_step", &https, Some(&ca));
}

/// CPU per probe and wall time of the step on the transport and of the reqwest client per probe.
fn compare(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    url: &str,
    ca: Option<&str>,
) {
    let spec = HttpSpec {
        url: Some(url.to_string()),
        tls: ca.map(|f| TlsSpec {
            ca_file: Some(f.to_string()),
            ..TlsSpec::default()
        }),
        ..HttpSpec::default()
    };
    let (redactor, cleanups, shared, run) = (
        Redactor::new(),
        Cleanups::default(),
        Shared::default(),
        Shared::default(),
    );
    let ctx = StepContext {
        resolver: &NoVars,
        redactor: &redactor,
        timeout: Duration::from_secs(5),
        cookies: Arc::default(),
        cleanups: &cleanups,
        shared: &shared,
        run: &run,
        trace: SpanContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
        },
    };
    let probe = || async {
        let obs = spec.execute(&ctx).await.expect("probe");
        assert_eq!(obs.status, Some(200));
    };
    let roots: Vec<reqwest::Certificate> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .filter_map(|d| reqwest::Certificate::from_der(d).ok())
        .collect();
    let after = per_probe(&|| rt.block_on(probe()));
    let before = per_probe(&|| rt.block_on(reqwest_probe(url, &roots, ca)));
    println!(
        "{name} CPU per probe (new connection each, client thread): transport {after:.1} µs, \
         reqwest client per probe {before:.1} µs ({:.1}x)",
        before / after
    );
    c.bench_function(&format!("{name}/transport"), |b| {
        b.iter(|| rt.block_on(probe()))
    });
    c.bench_function(&format!("{name}/reqwest_client_per_probe"), |b| {
        b.iter(|| rt.block_on(reqwest_probe(url, &roots, ca)))
    });
}

/// The calling thread's CPU time per call of `f`, over 2000 calls after one warm-up.
fn per_probe(f: &dyn Fn()) -> f64 {
    const N: u32 = 2000;
    f();
    let t = thread_cpu();
    for _ in 0..N {
        f();
    }
    (thread_cpu() - t).as_secs_f64() * 1e6 / f64::from(N)
}

//! Engine overhead without I/O: template rendering, assertion parsing and evaluation, and a
//! whole step's worth of engine work (render url + headers, 2 captures, 5 assertions).
//! Goal: under 20 µs per step.
//!
//! And the http step against a local TCP server that answers 200 and closes, a new connection
//! per probe: the step on the transport (`http_step/transport`) and, for comparison, what the
//! step did before it (`http_step/reqwest_client_per_probe`: a reqwest client built per probe
//! with the system roots). Besides criterion's wall times it prints the CPU time the probing
//! thread spends per probe (the server runs on its own thread).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use flowprobe::assert::{eval_query, parse_assertion, parse_capture};
use flowprobe::observation::Observation;
use flowprobe::template::{render, Expr, RenderError, Resolve, Template};

struct Ctx;

impl Resolve for Ctx {
    fn resolve(&self, e: &Expr) -> Result<String, RenderError> {
        Ok(match e {
            Expr::Var(v) if v == "ingress" => "https://shop.example.test".into(),
            Expr::Step { step, .. } if step == "login" => "eyJhbGciOiJSUzI1NiJ9.payload.sig".into(),
            Expr::RunId => "0123456789abcdef".into(),
            _ => "x".into(),
        })
    }
}

fn observation() -> Observation {
    let items: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"id":{i},"name":"item-{i}","price":{}.5}}"#, i * 3))
        .collect();
    let body = format!(
        r#"{{"sub":"user-1","email":"a@example.test","items":[{}],"next":null}}"#,
        items.join(",")
    );
    let mut o = Observation::default();
    o.status = Some(200);
    o.headers = vec![
        ("content-type".into(), "application/json".into()),
        ("x-request-id".into(), "abc-123".into()),
    ];
    o.body = body.into_bytes();
    o.duration = Duration::from_millis(42);
    o
}

const URL: &str = "${{ vars.ingress }}/api/items?run=${{ run.id }}";
const AUTH: &str = "Bearer ${{ steps.login.access_token }}";
const ASSERTIONS: [&str; 5] = [
    "status == 200",
    r#"header "Content-Type" startsWith "application/json""#,
    r#"jsonpath "$.sub" == "user-1""#,
    r#"jsonpath "$.items" count >= 10"#,
    "duration < 300ms",
];

fn benches(c: &mut Criterion) {
    c.bench_function("template/render_two_exprs", |b| {
        b.iter(|| render(black_box(URL), &Ctx).expect("renders"))
    });
    let parsed = Template::parse(URL).expect("parses");
    c.bench_function("template/render_preparsed", |b| {
        b.iter(|| parsed.render(&Ctx).expect("renders"))
    });
    c.bench_function("assert/parse", |b| {
        b.iter(|| parse_assertion(black_box(ASSERTIONS[2])).expect("parses"))
    });
    let compiled: Vec<_> = ASSERTIONS
        .iter()
        .map(|a| parse_assertion(a).expect("parses"))
        .collect();
    let obs = observation();
    c.bench_function("assert/check_status", |b| {
        b.iter(|| compiled[0].check(black_box(&obs), &Ctx))
    });
    c.bench_function("assert/check_jsonpath_cached_body", |b| {
        b.iter(|| compiled[2].check(black_box(&obs), &Ctx))
    });
    let captures = [
        parse_capture(r#"jsonpath "$.items[0].id""#).expect("parses"),
        parse_capture(r#"header "X-Request-Id""#).expect("parses"),
    ];
    // A whole step: fresh observation (so the JSON body is parsed once, as in a real step),
    // render url + header, two captures, five assertions.
    c.bench_function("step/engine_overhead", |b| {
        b.iter_batched(
            observation,
            |obs| {
                let url = render(URL, &Ctx).expect("renders");
                let auth = render(AUTH, &Ctx).expect("renders");
                let caps: Vec<_> = captures
                    .iter()
                    .map(|q| eval_query(q, &obs).expect("query").to_json())
                    .collect();
                let checks: Vec<_> = compiled.iter().map(|a| a.check(&obs, &Ctx)).collect();
                assert!(checks.iter().all(|c| c.passed));
                (url, auth, caps, checks)
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = engine;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches, http_probe::benches
}

#[path = "engine/http_probe.rs"]
mod http_probe;
criterion_main!(engine);

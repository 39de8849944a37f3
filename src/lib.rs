//! flowprobe: a synthetic end-to-end user-flow prober.
//!
//! A scenario is a YAML file of steps that do what a real user does — log in through the IdP,
//! upload a file, read the cache, call the API through the ingress — with assertions and
//! captures in one small grammar:
//!
//! ```yaml
//! name: storefront
//! vars:
//!   base: https://shop.example.com
//! steps:
//!   - name: home
//!     http: {url: "${{ vars.base }}/"}
//!     assert: ["status == 200", "duration < 500ms"]
//! ```
//!
//! [`scenario::load_paths`] validates files (every error, with file:line:column),
//! [`run::run_scenario`] runs one and returns a [`outcome::ScenarioOutcome`], and the
//! reporters in [`report`] read that outcome.

pub mod assert;
pub mod cli;
pub mod fault;
pub mod labels;
pub mod observation;
pub mod otlp;
pub mod outcome;
pub mod prom_float;
pub mod report;
pub mod run;
pub mod scenario;
pub mod secrets;
pub mod serve;
pub mod slo;
pub mod steps;
pub mod suggest;
pub mod template;
pub mod trace;
pub mod units;

//! The scenario format: the model as written, its deserialization with source locations, the
//! checks that report every problem at its line and column, and the validated scenario the
//! rest of flowprobe runs.

mod check;
mod compile;
pub mod diagnostic;
pub mod load;
pub mod location;
pub mod model;
pub mod ranges;
mod step_de;
pub mod validated;
pub mod yaml;

pub use compile::{DEFAULT_SCENARIO_TIMEOUT, DEFAULT_STEP_TIMEOUT};
pub use diagnostic::Diagnostic;
pub use load::{load_bytes, load_paths, LoadOptions};
pub use model::Scenario;
pub use validated::{CompiledCapture, CompiledStep, LoadedScenario};

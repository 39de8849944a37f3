//! The scenario format: serde model, source locations, diagnostics, and the loader that
//! validates everything before anything runs.

pub mod diagnostic;
pub mod load;
pub mod location;
pub mod model;
pub mod ranges;
pub mod yaml;

pub use diagnostic::Diagnostic;
pub use load::{
    load_bytes, load_paths, CompiledCapture, CompiledStep, LoadOptions, LoadedScenario,
};
pub use model::Scenario;

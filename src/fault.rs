//! Test-only fault injection: makes a named step panic, to prove that a bug inside a step is a
//! failed run (reason `internal`) and never a pass. Compiled in only for unit tests and with the
//! `fault-injection` cargo feature; in a normal build it does nothing.

/// Environment variable naming the step that panics when the hook is compiled in.
pub const PANIC_STEP_ENV: &str = "FLOWPROBE_FAULT_PANIC_STEP";

/// Panics when `step` is the step named by [`PANIC_STEP_ENV`].
#[cfg(any(test, feature = "fault-injection"))]
pub fn maybe_panic(step: &str) {
    if std::env::var(PANIC_STEP_ENV).is_ok_and(|name| name == step) {
        panic!("fault injection: step `{step}` panicked on purpose");
    }
}

/// Does nothing: fault injection is not compiled in.
#[cfg(not(any(test, feature = "fault-injection")))]
#[inline(always)]
pub fn maybe_panic(_step: &str) {}

//! How a run is stopped from outside: [`RunControl`] (cancel token, clean-up grace, shared
//! state) and the watch on it that times the clean-up grace from the moment of the cancel.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::steps::Shared;

/// How a run can be stopped from outside (shutdown) and how long its clean-up may take then.
#[derive(Debug, Clone)]
pub struct RunControl {
    /// Cancelling stops the step in flight and skips the rest; `finally` and clean-ups still run.
    pub cancel: CancellationToken,
    /// Time `finally` steps and clean-up actions get after a cancel, all together.
    pub cleanup_grace: Duration,
    /// What steps keep between runs (caches); one for every run of the process.
    pub shared: Arc<Shared>,
}

/// Default of `--cleanup-grace`.
pub const DEFAULT_CLEANUP_GRACE: Duration = Duration::from_secs(10);

impl Default for RunControl {
    fn default() -> Self {
        RunControl {
            cancel: CancellationToken::new(),
            cleanup_grace: DEFAULT_CLEANUP_GRACE,
            shared: Arc::default(),
        }
    }
}

/// Watches a run's cancel token and remembers when it was first seen cancelled, so that the
/// clean-up grace counts from the cancel, not from each clean-up step.
pub(super) struct Stop<'a> {
    control: &'a RunControl,
    at: OnceLock<Instant>,
}

impl<'a> Stop<'a> {
    pub fn new(control: &'a RunControl) -> Self {
        Stop {
            control,
            at: OnceLock::new(),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        let yes = self.control.cancel.is_cancelled();
        if yes {
            self.at.get_or_init(Instant::now);
        }
        yes
    }

    /// Resolves when the run is cancelled.
    pub async fn cancelled(&self) {
        self.control.cancel.cancelled().await;
        self.at.get_or_init(Instant::now);
    }

    /// Resolves when the clean-up grace after a cancel has run out.
    pub async fn cleanup_over(&self) {
        self.cancelled().await;
        let at = *self.at.get_or_init(Instant::now);
        match at.checked_add(self.control.cleanup_grace) {
            Some(end) => tokio::time::sleep_until(end).await,
            None => std::future::pending().await,
        }
    }
}

//! Serve mode's scheduler: each scenario on a fixed grid of its `schedule.interval` (first runs
//! spread over the interval by a stable hash of the name, each start delayed by a random jitter),
//! never overlapping itself, under a global concurrency cap, replaced in place on reload, and
//! drained on shutdown. Everything uses tokio's clock so tests can pause time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rand::Rng;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::outcome::ScenarioOutcome;
use crate::scenario::LoadedScenario;

/// Interval of a scenario without a `schedule:`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// FNV-1a, 64 bit: a hash that is the same in every process and release (std's is randomized),
/// so every replica agrees on shards and start offsets.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: decorrelates the start offset from the shard number.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where in its interval a scenario's grid starts: deterministic, spread evenly over names.
pub fn start_offset(name: &str, interval: Duration) -> Duration {
    let nanos = interval.as_nanos().max(1);
    let pick = u128::from(mix(stable_hash(name))) % nanos;
    Duration::from_nanos(u64::try_from(pick).unwrap_or(u64::MAX))
}

/// `--shard INDEX/COUNT`: this replica runs the scenarios whose name hashes to INDEX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// True when `name` belongs to this shard.
    pub fn contains(&self, name: &str) -> bool {
        stable_hash(name) % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/3; got `{s}`");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A scenario's timing in serve mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub jitter: Duration,
}

impl Timing {
    /// The scenario's `schedule:`, else [`DEFAULT_INTERVAL`] without jitter. A zero interval
    /// is raised to 1 ms so the loop cannot spin.
    pub fn of(sc: &LoadedScenario) -> Timing {
        let (interval, jitter) = match &sc.schedule {
            Some(s) => (
                s.interval.0,
                s.jitter.as_ref().map(|j| j.0).unwrap_or_default(),
            ),
            None => (DEFAULT_INTERVAL, Duration::ZERO),
        };
        Timing {
            interval: interval.max(Duration::from_millis(1)),
            jitter,
        }
    }
}

/// What the scheduler tells its owner (metrics, /status, benchmarks).
#[derive(Debug)]
pub enum Event<'a> {
    /// The next run of `name` is due at `at`.
    Scheduled { name: &'a str, at: Instant },
    /// A run started `lag` after it was due (waiting for a concurrency permit included).
    Started {
        name: &'a str,
        due: Instant,
        lag: Duration,
    },
    /// A run came due while the previous one was still running (or waiting): not started.
    Skipped { name: &'a str },
    /// A run finished (shared, so readers keep it without copying).
    Finished { outcome: &'a Arc<ScenarioOutcome> },
}

/// Runs one scenario (the runner in production, a fake in tests).
pub type RunFn =
    Arc<dyn Fn(Arc<LoadedScenario>) -> BoxFuture<'static, ScenarioOutcome> + Send + Sync>;
/// Receives every [`Event`]; must be quick (it runs on the scheduling path).
pub type EventFn = Arc<dyn Fn(Event<'_>) + Send + Sync>;

/// The production [`RunFn`]: the scenario runner, stoppable through `control`.
pub fn runner(control: crate::run::RunControl) -> RunFn {
    Arc::new(move |sc: Arc<LoadedScenario>| {
        let control = control.clone();
        Box::pin(async move {
            let redactor = crate::secrets::Redactor::new();
            crate::run::run_scenario_with(&sc, 1, &redactor, &control).await
        })
    })
}

/// State shared by the scheduler, its loops and its runs.
struct Shared {
    epoch: Instant,
    permits: Arc<Semaphore>,
    run: RunFn,
    on_event: EventFn,
    /// Cloned by every run; `None` once shutting down (no new run starts).
    inflight: Mutex<Option<mpsc::Sender<()>>>,
    stopping: watch::Sender<bool>,
}

/// One scheduled scenario.
struct Entry {
    fingerprint: u64,
    /// Set while a run is waiting for a permit or running; survives reloads, so a changed
    /// scenario does not overlap its previous version's run.
    busy: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// The scheduler. Dropping it aborts the scheduling loops (in-flight runs continue).
pub struct Scheduler {
    shared: Arc<Shared>,
    entries: Mutex<HashMap<String, Entry>>,
    drained: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Scheduler {
    /// A scheduler whose grids start now, running at most `max_concurrency` scenarios at once.
    pub fn new(max_concurrency: usize, run: RunFn, on_event: EventFn) -> Scheduler {
        let (tx, rx) = mpsc::channel(1);
        let (stopping, _) = watch::channel(false);
        Scheduler {
            shared: Arc::new(Shared {
                epoch: Instant::now(),
                permits: Arc::new(Semaphore::new(max_concurrency.max(1))),
                run,
                on_event,
                inflight: Mutex::new(Some(tx)),
                stopping,
            }),
            entries: Mutex::new(HashMap::new()),
            drained: tokio::sync::Mutex::new(rx),
        }
    }

    /// Schedules exactly `set`: new scenarios start, removed ones stop (a run in flight
    /// finishes), changed ones get a new loop on the same grid, unchanged ones are untouched.
    pub fn apply(&self, set: Vec<Arc<LoadedScenario>>) {
        let mut entries = lock(&self.entries);
        let keep: std::collections::HashSet<&str> = set.iter().map(|s| s.name()).collect();
        entries.retain(|name, e| {
            let stays = keep.contains(name.as_str());
            if !stays {
                e.task.abort();
            }
            stays
        });
        for sc in set {
            let fingerprint = stable_hash(&format!("{sc:?}"));
            let busy = match entries.get(sc.name()) {
                Some(e) if e.fingerprint == fingerprint => continue,
                Some(e) => {
                    e.task.abort();
                    e.busy.clone()
                }
                None => Arc::new(AtomicBool::new(false)),
            };
            let name = sc.name().to_string();
            let task = tokio::spawn(scenario_loop(sc, busy.clone(), self.shared.clone()));
            entries.insert(
                name,
                Entry {
                    fingerprint,
                    busy,
                    task,
                },
            );
        }
    }

    /// Names of the scheduled scenarios, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.entries).keys().cloned().collect();
        v.sort();
        v
    }

    /// Stops scheduling, cancels runs still waiting for a permit, and waits up to `grace` for
    /// runs in flight (their `finally` steps included). True when all finished in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        for (_, e) in lock(&self.entries).drain() {
            e.task.abort();
        }
        self.shared.stopping.send_replace(true);
        drop(lock(&self.shared.inflight).take());
        self.wait_drained(grace).await
    }

    /// Waits up to `limit` for the runs in flight to end (after [`Scheduler::shutdown`]).
    pub async fn wait_drained(&self, limit: Duration) -> bool {
        let mut rx = self.drained.lock().await;
        tokio::time::timeout(limit, rx.recv()).await.is_ok()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        for e in lock(&self.entries).values() {
            e.task.abort();
        }
    }
}

/// Clears a scenario's busy flag when its run ends, however it ends.
struct BusyGuard(Arc<AtomicBool>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Index of the first grid point at or after `now`.
fn next_index(first: Instant, interval: Duration, now: Instant) -> u32 {
    if now <= first {
        return 0;
    }
    let behind = now - first;
    let k = behind.as_nanos().div_ceil(interval.as_nanos().max(1));
    u32::try_from(k).unwrap_or(u32::MAX)
}

async fn scenario_loop(sc: Arc<LoadedScenario>, busy: Arc<AtomicBool>, shared: Arc<Shared>) {
    let timing = Timing::of(&sc);
    let first = shared.epoch + start_offset(sc.name(), timing.interval);
    let mut k = next_index(first, timing.interval, Instant::now());
    loop {
        let grid = first + timing.interval * k;
        let jitter = if timing.jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::thread_rng().gen_range(Duration::ZERO..=timing.jitter)
        };
        let due = grid + jitter;
        (shared.on_event)(Event::Scheduled {
            name: sc.name(),
            at: due,
        });
        tokio::time::sleep_until(due).await;
        if busy.swap(true, Ordering::SeqCst) {
            (shared.on_event)(Event::Skipped { name: sc.name() });
        } else {
            start_run(sc.clone(), due, BusyGuard(busy.clone()), &shared);
        }
        // After a stall (a suspended process) go on from now instead of firing a burst.
        k = (k + 1).max(next_index(first, timing.interval, Instant::now()));
    }
}

fn start_run(sc: Arc<LoadedScenario>, due: Instant, busy: BusyGuard, shared: &Arc<Shared>) {
    let Some(inflight) = lock(&shared.inflight).clone() else {
        return;
    };
    let shared = shared.clone();
    let mut stopping = shared.stopping.subscribe();
    tokio::spawn(async move {
        let _inflight = inflight;
        let _busy = busy;
        let permit = tokio::select! {
            p = shared.permits.clone().acquire_owned() => p,
            _ = stopping.wait_for(|s| *s) => return,
        };
        let Ok(_permit) = permit else {
            return;
        };
        (shared.on_event)(Event::Started {
            name: sc.name(),
            due,
            lag: Instant::now().saturating_duration_since(due),
        });
        let span = tracing::info_span!("run", scenario = %sc.name());
        let outcome = Arc::new((shared.run)(sc.clone()).instrument(span).await);
        (shared.on_event)(Event::Finished { outcome: &outcome });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load::load_source;
    use crate::scenario::LoadOptions;

    fn scenario(name: &str, schedule: &str) -> Arc<LoadedScenario> {
        let src = format!(
            "name: {name}\n{schedule}\nsteps:\n  - name: s\n    http: {{url: \"http://127.0.0.1:9/\"}}\n"
        );
        let sc = load_source("test.yaml", &src, &LoadOptions::default()).expect("valid scenario");
        Arc::new(sc)
    }

    fn outcome(name: &str) -> ScenarioOutcome {
        crate::outcome::fixtures::run(name, Vec::new())
    }

    /// What a fake run and the events saw, in paused time.
    #[derive(Default, Clone)]
    struct Log {
        /// (name, start, end) of each run, relative to the test start.
        runs: Vec<(String, Duration, Duration)>,
        skipped: HashMap<String, u32>,
        running: usize,
        max_running: usize,
        lags: Vec<Duration>,
    }

    /// A scheduler whose fake runs take `took(name)`, logging into `log`.
    fn fake(cap: usize, took: fn(&str) -> Duration, log: Arc<Mutex<Log>>) -> Scheduler {
        let t0 = Instant::now();
        let run_log = log.clone();
        let run: RunFn = Arc::new(move |sc: Arc<LoadedScenario>| {
            let log = run_log.clone();
            Box::pin(async move {
                let start = Instant::now();
                {
                    let mut l = lock(&log);
                    l.running += 1;
                    l.max_running = l.max_running.max(l.running);
                }
                tokio::time::sleep(took(sc.name())).await;
                let mut l = lock(&log);
                l.running -= 1;
                l.runs
                    .push((sc.name().to_string(), start - t0, Instant::now() - t0));
                outcome(sc.name())
            })
        });
        let ev_log = log;
        let on_event: EventFn = Arc::new(move |e: Event<'_>| {
            let mut l = lock(&ev_log);
            match e {
                Event::Skipped { name } => *l.skipped.entry(name.to_string()).or_default() += 1,
                Event::Started { lag, .. } => l.lags.push(lag),
                _ => {}
            }
        });
        Scheduler::new(cap, run, on_event)
    }

    /// A copy of the log (no lock held across an await).
    fn snap(log: &Mutex<Log>) -> Log {
        lock(log).clone()
    }

    /// Tokio's timer fires on whole milliseconds.
    fn near(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) <= Duration::from_millis(1)
    }

    fn starts(log: &Mutex<Log>, name: &str) -> Vec<Duration> {
        let mut v: Vec<Duration> = lock(log)
            .runs
            .iter()
            .filter(|r| r.0 == name)
            .map(|r| r.1)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        // Published FNV-1a 64 test vectors: the value must never change between releases.
        assert_eq!(stable_hash(""), 0xcbf29ce484222325);
        assert_eq!(stable_hash("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(stable_hash("foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn shards_split_names_disjointly_and_completely() {
        let names: Vec<String> = (0..3000).map(|i| format!("scenario-{i}")).collect();
        for count in [1u32, 2, 3, 7] {
            let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
            let mut sizes = vec![0usize; count as usize];
            for n in &names {
                let owners: Vec<&Shard> = shards.iter().filter(|s| s.contains(n)).collect();
                assert_eq!(
                    owners.len(),
                    1,
                    "{n} is in {} shards of {count}",
                    owners.len()
                );
                sizes[owners[0].index as usize] += 1;
            }
            let even = names.len() / count as usize;
            for s in sizes {
                assert!(
                    s > even * 8 / 10 && s < even * 12 / 10,
                    "uneven shards: {s} vs {even}"
                );
            }
        }
    }

    #[test]
    fn shard_syntax() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn start_offsets_are_deterministic_and_spread() {
        let interval = Duration::from_secs(60);
        let offsets: Vec<Duration> = (0..6000)
            .map(|i| start_offset(&format!("s-{i}"), interval))
            .collect();
        let again: Vec<Duration> = (0..6000)
            .map(|i| start_offset(&format!("s-{i}"), interval))
            .collect();
        assert_eq!(offsets, again);
        // 60 one-second bins of ~100 each: none empty, none crowded.
        let mut bins = [0u32; 60];
        for o in &offsets {
            assert!(*o < interval);
            bins[o.as_secs() as usize] += 1;
        }
        assert!(bins.iter().all(|b| (50..=150).contains(b)), "{bins:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn first_runs_spread_over_the_interval_then_keep_the_grid() {
        let log = Arc::new(Mutex::new(Log::default()));
        let s = fake(1000, |_| Duration::from_millis(10), log.clone());
        let set: Vec<_> = (0..200)
            .map(|i| scenario(&format!("s-{i}"), "schedule: {interval: 10s}"))
            .collect();
        s.apply(set);
        tokio::time::sleep(Duration::from_millis(35_000)).await;
        let mut firsts = Vec::new();
        for i in 0..200 {
            let name = format!("s-{i}");
            let st = starts(&log, &name);
            assert!(st.len() >= 3, "{name}: {st:?}");
            assert!(
                near(st[0], start_offset(&name, Duration::from_secs(10))),
                "{name}: {st:?}"
            );
            for w in st.windows(2) {
                assert_eq!(w[1] - w[0], Duration::from_secs(10), "{name}: {st:?}");
            }
            firsts.push(st[0]);
        }
        // Not a thundering herd: no 100ms slot holds more than a few of the 200 first runs.
        let mut slots = [0u32; 100];
        for f in &firsts {
            slots[(f.as_millis() / 100) as usize] += 1;
        }
        assert!(slots.iter().all(|n| *n <= 10), "{slots:?}");
        assert!(slots.iter().filter(|n| **n > 0).count() > 60, "{slots:?}");
        s.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_delays_each_start_within_its_bound() {
        let log = Arc::new(Mutex::new(Log::default()));
        let s = fake(10, |_| Duration::from_millis(1), log.clone());
        s.apply(vec![scenario("j", "schedule: {interval: 10s, jitter: 2s}")]);
        tokio::time::sleep(Duration::from_secs(400)).await;
        let st = starts(&log, "j");
        let first = start_offset("j", Duration::from_secs(10));
        assert!(st.len() >= 38, "{} runs", st.len());
        let mut delays = Vec::new();
        for (k, t) in st.iter().enumerate() {
            let grid = first + Duration::from_secs(10) * k as u32;
            assert!(
                *t >= grid && *t <= grid + Duration::from_millis(2001),
                "run {k} at {t:?}, grid {grid:?}"
            );
            delays.push(*t - grid);
        }
        // Random, not a constant shift: the delays cover both halves of the jitter range.
        assert!(
            delays.iter().any(|d| *d < Duration::from_secs(1)),
            "{delays:?}"
        );
        assert!(
            delays.iter().any(|d| *d > Duration::from_secs(1)),
            "{delays:?}"
        );
        s.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_run_is_never_overlapped_and_skips_are_counted() {
        let log = Arc::new(Mutex::new(Log::default()));
        // Runs take 25s on a 10s interval: of every three ticks two come while it runs.
        let s = fake(10, |_| Duration::from_secs(25), log.clone());
        s.apply(vec![scenario("slow", "schedule: {interval: 10s}")]);
        let first = start_offset("slow", Duration::from_secs(10));
        tokio::time::sleep(first + Duration::from_millis(69_500)).await;
        let l = snap(&log);
        let mut runs: Vec<_> = l.runs.iter().map(|r| (r.1, r.2)).collect();
        runs.sort();
        for w in runs.windows(2) {
            assert!(w[1].0 >= w[0].1, "overlap: {runs:?}");
        }
        // Ticks at +0 +10 ... +60: runs start at +0, +30, +60 (the one at +60 is still
        // running); the four ticks between are skipped.
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(l.running, 1);
        assert_eq!(l.skipped.get("slow"), Some(&4));
        let st = starts(&log, "slow");
        assert!(
            near(st[0], first) && st[1] - st[0] == Duration::from_secs(30),
            "{st:?}"
        );
        s.shutdown(Duration::from_secs(60)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_concurrency_cap_holds_and_is_used() {
        let log = Arc::new(Mutex::new(Log::default()));
        let s = fake(3, |_| Duration::from_secs(2), log.clone());
        // 12 scenarios whose first runs fall within a short time of each other.
        let set: Vec<_> = (0..12)
            .map(|i| scenario(&format!("c-{i}"), "schedule: {interval: 1s}"))
            .collect();
        s.apply(set);
        tokio::time::sleep(Duration::from_secs(30)).await;
        let l = snap(&log);
        assert_eq!(l.max_running, 3);
        // Capacity 3 runs / 2s: ~45 runs in 30s, whichever scenarios get the permits.
        assert!((40..=46).contains(&l.runs.len()), "{} runs", l.runs.len());
        // Waiting for a permit shows up as lag.
        assert!(l.lags.iter().any(|d| *d >= Duration::from_secs(1)));
        s.shutdown(Duration::from_secs(10)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_runs_in_flight_and_cancels_waiting_ones() {
        let log = Arc::new(Mutex::new(Log::default()));
        let s = fake(1, |_| Duration::from_secs(5), log.clone());
        s.apply(vec![
            scenario("a", "schedule: {interval: 1s}"),
            scenario("b", "schedule: {interval: 1s}"),
        ]);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(lock(&log).running, 1);
        let t = Instant::now();
        assert!(s.shutdown(Duration::from_secs(30)).await);
        assert!(t.elapsed() <= Duration::from_secs(5));
        let l = snap(&log);
        assert_eq!(l.running, 0);
        assert_eq!(
            l.runs.len(),
            1,
            "the waiting run must not start: {:?}",
            l.runs
        );
        // Nothing is scheduled any more.
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(lock(&log).runs.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_reports_a_run_that_outlives_the_grace() {
        let log = Arc::new(Mutex::new(Log::default()));
        let s = fake(1, |_| Duration::from_secs(50), log.clone());
        s.apply(vec![scenario("a", "schedule: {interval: 1s}")]);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!s.shutdown(Duration::from_secs(3)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn apply_keeps_unchanged_loops_and_stops_removed_ones() {
        let log = Arc::new(Mutex::new(Log::default()));
        let s = fake(10, |_| Duration::from_secs(15), log.clone());
        s.apply(vec![
            scenario("keep", "schedule: {interval: 10s}"),
            scenario("gone", "schedule: {interval: 10s}"),
            scenario("change", "schedule: {interval: 10s}"),
        ]);
        tokio::time::sleep(Duration::from_secs(12)).await;
        // "change" is running (15s runs); its new version must not overlap it.
        s.apply(vec![
            scenario("keep", "schedule: {interval: 10s}"),
            scenario("change", "schedule: {interval: 5s}"),
            scenario("new", "schedule: {interval: 10s}"),
        ]);
        assert_eq!(s.names(), vec!["change", "keep", "new"]);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let keep = starts(&log, "keep");
        for w in keep.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_secs(20), "{keep:?}");
        }
        assert_eq!(
            starts(&log, "gone").len(),
            1,
            "a removed scenario runs no more"
        );
        assert!(!starts(&log, "new").is_empty());
        let l = snap(&log);
        let mut change: Vec<_> = l
            .runs
            .iter()
            .filter(|r| r.0 == "change")
            .map(|r| (r.1, r.2))
            .collect();
        change.sort();
        for w in change.windows(2) {
            assert!(w[1].0 >= w[0].1, "overlap across reload: {change:?}");
        }
        s.shutdown(Duration::from_secs(60)).await;
    }
}

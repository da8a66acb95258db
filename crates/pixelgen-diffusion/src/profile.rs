//! Opt-in stage timing of the models' forward passes, for finding where GPU time goes.
//!
//! Off by default and then free (one relaxed atomic load per scope). When on, every scope
//! synchronises the device before and after its work, so its wall time is the time of its
//! kernels; that makes the whole forward slower (launches are no longer overlapped), so use it
//! for the breakdown, not for the total.
//!
//! ```
//! pixelgen_diffusion::profile::set_enabled(true);
//! // ... run a UNet or VAE forward ...
//! for stage in pixelgen_diffusion::profile::take() {
//!     println!("{:<20} {:>8.2} ms {:>5} calls", stage.name, stage.total_ms, stage.calls);
//! }
//! # pixelgen_diffusion::profile::set_enabled(false);
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Device;

use crate::error::Result;

static ENABLED: AtomicBool = AtomicBool::new(false);
static STAGES: Mutex<Vec<Stage>> = Mutex::new(Vec::new());

/// Accumulated time of one named stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Stage name (e.g. `conv3x3`, `attention`).
    pub name: &'static str,
    /// Total wall time in milliseconds, device synchronised.
    pub total_ms: f64,
    /// Number of calls.
    pub calls: u64,
}

/// Turns stage timing on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether stage timing is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Returns the stages timed so far (in first-seen order) and clears them.
pub fn take() -> Vec<Stage> {
    match STAGES.lock() {
        Ok(mut s) => std::mem::take(&mut *s),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    }
}

/// Runs `f`, timing it under `name` when profiling is on.
pub(crate) fn scope<T>(
    name: &'static str,
    device: &Device,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if !enabled() {
        return f();
    }
    device.synchronize()?;
    let start = Instant::now();
    let out = f()?;
    device.synchronize()?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let mut stages = match STAGES.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    match stages.iter_mut().find(|s| s.name == name) {
        Some(s) => {
            s.total_ms += ms;
            s.calls += 1;
        }
        None => stages.push(Stage {
            name,
            total_ms: ms,
            calls: 1,
        }),
    }
    Ok(out)
}

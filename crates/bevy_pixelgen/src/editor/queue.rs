//! The editor's queue: its requests with live preview, elapsed time and an ETA.

use std::time::Duration;

use bevy::asset::{Assets, Handle};
use bevy::ecs::message::MessageReader;
use bevy::ecs::resource::Resource;
use bevy::ecs::system::{Res, ResMut};
use bevy::image::Image;
use bevy::time::{Real, Time};

use crate::messages::SpriteProgress;
use crate::request::{Ticket, TicketId};
use crate::worker::to_bevy_image;

/// One request in the editor's queue and what is known about its progress.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    /// The request.
    pub ticket: Ticket,
    /// For "variations": the gallery item it varies.
    pub variation_of: Option<TicketId>,
    /// When it was submitted (real time since the app started).
    pub submitted: Duration,
    /// Sampling steps done and in the run (0 of 0 until the first step).
    pub step: usize,
    /// Steps in the run.
    pub total: usize,
    /// The first step seen: its number and when it arrived.
    pub first_step: Option<(usize, Duration)>,
    /// When the latest step arrived.
    pub last_step_at: Option<Duration>,
    /// The engine's latest preview of the running generation, as an image asset.
    pub preview: Option<Handle<Image>>,
}

impl QueueEntry {
    /// A new entry for `ticket`, submitted at `now`.
    pub fn new(ticket: Ticket, now: Duration) -> Self {
        Self {
            ticket,
            variation_of: None,
            submitted: now,
            step: 0,
            total: 0,
            first_step: None,
            last_step_at: None,
            preview: None,
        }
    }

    /// Time since the request was submitted (queue wait included).
    pub fn elapsed(&self, now: Duration) -> Duration {
        now.saturating_sub(self.submitted)
    }

    /// The measured sampling rate in steps per second (`None` until two steps were seen).
    pub fn steps_per_second(&self) -> Option<f64> {
        steps_per_second(self.first_step?, (self.step, self.last_step_at?))
    }

    /// Estimated time left at the measured rate (`None` until the rate is known).
    pub fn eta(&self, now: Duration) -> Option<Duration> {
        eta(
            self.first_step?,
            (self.step, self.last_step_at?),
            self.total,
            now,
        )
    }

    /// Progress as a fraction in 0..=1.
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            (self.step as f32 / self.total as f32).clamp(0.0, 1.0)
        }
    }
}

/// Requests the editor submitted that are still shown in its queue.
#[derive(Resource, Debug, Clone, Default)]
pub struct EditorQueue {
    /// Entries in submission order.
    pub entries: Vec<QueueEntry>,
}

impl EditorQueue {
    /// The entry of request `id`.
    pub fn get(&self, id: TicketId) -> Option<&QueueEntry> {
        self.entries.iter().find(|e| e.ticket.id() == id)
    }

    /// Removes and returns the entry of request `id`.
    pub fn take(&mut self, id: TicketId) -> Option<QueueEntry> {
        let pos = self.entries.iter().position(|e| e.ticket.id() == id)?;
        Some(self.entries.remove(pos))
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Steps per second between two `(step, time)` observations (`None` without progress).
pub fn steps_per_second(first: (usize, Duration), last: (usize, Duration)) -> Option<f64> {
    let steps = last.0.checked_sub(first.0).filter(|&s| s > 0)?;
    let secs = last.1.saturating_sub(first.1).as_secs_f64();
    (secs > 0.0).then(|| steps as f64 / secs)
}

/// Time left for `total` steps: the steps after `last` at the rate measured from `first` to
/// `last`, less the time since `last` arrived (never below zero).
pub fn eta(
    first: (usize, Duration),
    last: (usize, Duration),
    total: usize,
    now: Duration,
) -> Option<Duration> {
    let rate = steps_per_second(first, last)?;
    let remaining = total.saturating_sub(last.0) as f64 / rate;
    let since = now.saturating_sub(last.1).as_secs_f64();
    Some(Duration::from_secs_f64((remaining - since).max(0.0)))
}

/// Formats a duration for the panel: `4.2 s`, `1 m 05 s`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = d.as_secs();
        format!("{} m {:02} s", whole / 60, whole % 60)
    }
}

/// Records each step's time and turns its preview into an image asset on the entry.
pub(super) fn track_progress(
    mut progress: MessageReader<SpriteProgress>,
    mut queue: ResMut<EditorQueue>,
    time: Res<Time<Real>>,
    mut images: Option<ResMut<Assets<Image>>>,
) {
    let now = time.elapsed();
    for m in progress.read() {
        let Some(entry) = queue.entries.iter_mut().find(|e| e.ticket.id() == m.ticket) else {
            continue;
        };
        entry.step = m.step;
        entry.total = m.total;
        if entry.first_step.is_none() {
            entry.first_step = Some((m.step, now));
        }
        entry.last_step_at = Some(now);
        if let (Some(preview), Some(images)) = (&m.preview, images.as_deref_mut()) {
            let image = to_bevy_image(preview.as_ref().clone());
            match &entry.preview {
                Some(h) => {
                    if let Err(e) = images.insert(h.id(), image) {
                        bevy::log::warn!("pixelgen editor: cannot update a preview: {e}");
                    }
                }
                None => entry.preview = Some(images.add(image)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn eta_follows_the_measured_step_rate() {
        // Steps 2 (at 1 s) and 6 (at 3 s) of 10: 2 steps/s, 4 steps left -> 2 s.
        let (first, last) = ((2, secs(1.0)), (6, secs(3.0)));
        assert_eq!(steps_per_second(first, last), Some(2.0));
        assert_eq!(eta(first, last, 10, secs(3.0)), Some(secs(2.0)));
        // Half a second later, 1.5 s are left; long after, never below zero.
        assert_eq!(eta(first, last, 10, secs(3.5)), Some(secs(1.5)));
        assert_eq!(eta(first, last, 10, secs(60.0)), Some(Duration::ZERO));
        // One observation, or no time between two, gives no rate.
        assert_eq!(steps_per_second(first, first), None);
        assert_eq!(eta((2, secs(1.0)), (4, secs(1.0)), 10, secs(2.0)), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(short_duration(secs(2.0)), "2.0 s");
        assert_eq!(short_duration(secs(65.4)), "1 m 05 s");
    }
}

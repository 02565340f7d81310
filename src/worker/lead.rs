//! When a worker's checkpoint is due by time: [`Lead`], how much earlier than
//! `state.checkpoint_interval` an exactly-once checkpoint starts.

use std::time::Duration;

/// Exactly-once: how much earlier than its interval a checkpoint starts, so that its outputs are
/// committed about one `state.checkpoint_interval` after the interval's first record rather than
/// one interval plus the checkpoint's write (100–400 ms for thousands of customers). It follows
/// the writes' durations: up at once to a longer one, down by an eighth of the difference per
/// checkpoint, and never more than half the interval, so an interval still coalesces a
/// customer's events into one write. At-least-once delivers batch by batch, so its checkpoints
/// keep the whole interval (zero lead).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct Lead(Option<Duration>);

impl Lead {
    /// Takes in a checkpoint that took `took` from asked for to durable.
    pub fn observe(&mut self, took: Duration) {
        self.0 = Some(match self.0 {
            Some(lead) if took < lead => lead - (lead - took) / 8,
            _ => took,
        });
    }

    /// The time from an interval's first record to its checkpoint, for an interval of `every`.
    /// Before any checkpoint was timed, the lead is an eighth of the interval (about what writing
    /// one takes here at 1 s).
    pub fn shorten(&self, every: Duration) -> Duration {
        every - self.0.unwrap_or(every / 8).min(every / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_follows_the_writes_up_at_once_down_slowly_and_within_half_the_interval() {
        let second = Duration::from_secs(1);
        let ms = Duration::from_millis;
        let mut lead = Lead::default();
        assert_eq!(lead.shorten(second), ms(875), "none timed yet: an eighth");
        lead.observe(ms(400));
        assert_eq!(lead.shorten(second), ms(600));
        lead.observe(ms(80));
        assert_eq!(lead.shorten(second), ms(640), "down by an eighth of 320 ms");
        lead.observe(Duration::from_secs(3));
        assert_eq!(
            lead.shorten(second),
            ms(500),
            "never more than half the interval"
        );
        assert_eq!(lead.shorten(Duration::ZERO), Duration::ZERO);
        assert_eq!(Lead::default().shorten(Duration::ZERO), Duration::ZERO);
    }
}

//! How many restarts an actor may take: at most `max` within any `window`. A failure that a
//! restart cures (a transient error, an injected panic) costs a restart; one that does not (out of
//! memory, a batch that always fails) exhausts the budget in seconds, and the run stops with a
//! checkpoint instead of restarting forever.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

pub struct RestartBudget<K> {
    max: u32,
    window: Duration,
    recent: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq> RestartBudget<K> {
    pub fn new(max: u32, window: Duration) -> Self {
        RestartBudget {
            max,
            window,
            recent: HashMap::new(),
        }
    }

    /// Records a failure of `who` at `now`: whether a restart is still within the budget, and
    /// the failures counted in the window (this one included).
    pub fn allow(&mut self, who: K, now: Instant) -> (bool, usize) {
        let times = self.recent.entry(who).or_default();
        while times
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.window)
        {
            times.pop_front();
        }
        times.push_back(now);
        (times.len() <= self.max as usize, times.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_restarts_per_window_and_per_actor() {
        let mut b = RestartBudget::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(b.allow("replay", t0), (true, 1));
        assert_eq!(b.allow("replay", t0 + s(1)), (true, 2));
        // Another actor has its own budget.
        assert_eq!(b.allow("trainer", t0 + s(2)), (true, 1));
        assert_eq!(b.allow("replay", t0 + s(3)), (false, 3));
        // Failures older than the window no longer count.
        assert_eq!(b.allow("replay", t0 + s(62)), (true, 2));
        let mut none = RestartBudget::new(0, Duration::from_secs(60));
        assert_eq!(none.allow("x", t0), (false, 1));
    }
}

//! Random fault injection that replays: one seeded draw per AWS call, so a
//! given seed and request order always fail the same calls.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Throttle,
    Error,
}

#[derive(Debug)]
pub struct Faults {
    throttle_percent: u32,
    error_percent: u32,
    seed: u64,
    rng: StdRng,
}

impl Faults {
    pub fn new(throttle_percent: u32, error_percent: u32, seed: u64) -> Faults {
        Faults {
            throttle_percent: throttle_percent.min(100),
            error_percent: error_percent.min(100),
            seed,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Changes the rates; the random sequence continues where it was.
    pub fn set(&mut self, throttle_percent: u32, error_percent: u32) {
        self.throttle_percent = throttle_percent.min(100);
        self.error_percent = error_percent.min(100);
    }

    pub fn rates(&self) -> (u32, u32) {
        (self.throttle_percent, self.error_percent)
    }

    /// Restarts the random sequence from the seed.
    pub fn reseed(&mut self) {
        self.rng = StdRng::seed_from_u64(self.seed);
    }

    /// Draws once: throttling takes the first `throttle_percent` of the
    /// range, errors the next `error_percent`.
    pub fn draw(&mut self) -> Verdict {
        if self.throttle_percent == 0 && self.error_percent == 0 {
            return Verdict::Pass;
        }
        let roll = self.rng.random_range(0..100u32);
        if roll < self.throttle_percent {
            Verdict::Throttle
        } else if roll < self.throttle_percent + self.error_percent {
            Verdict::Error
        } else {
            Verdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_fails_the_same_calls() {
        let run = |seed| {
            let mut f = Faults::new(30, 20, seed);
            (0..200).map(|_| f.draw()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let verdicts = run(7);
        let throttled = verdicts.iter().filter(|v| **v == Verdict::Throttle).count();
        assert!(
            (30..90).contains(&throttled),
            "{throttled} of 200 throttled at 30%"
        );
    }

    #[test]
    fn extremes_are_exact() {
        let mut always = Faults::new(100, 0, 1);
        assert!((0..50).all(|_| always.draw() == Verdict::Throttle));
        let mut errors = Faults::new(0, 100, 1);
        assert!((0..50).all(|_| errors.draw() == Verdict::Error));
        let mut never = Faults::new(0, 0, 1);
        assert!((0..50).all(|_| never.draw() == Verdict::Pass));
    }
}

//! Fault injection: random faults that replay (one seeded draw per AWS
//! call, so a given seed and request order always fail the same calls),
//! and faults scripted for one operation, the first N times it is called.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

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

/// What a scripted fault does to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Scripted {
    /// Forward the call to moto, which carries it out, then answer the
    /// service's own 5xx as if it had failed: the caller never learns that
    /// it worked (a response lost on the way back).
    LoseResponse,
    /// Forward the call to moto, which carries it out, then close the
    /// connection without answering.
    DropConnection,
    /// Answer with this AWS error without forwarding: the call is refused
    /// and nothing happens.
    Refuse {
        status: u16,
        code: String,
        #[serde(default)]
        message: String,
    },
}

/// Faults scripted per `service:Operation`: each applies to the next
/// `times` calls of its operation, then the operation passes again.
#[derive(Debug, Default)]
pub struct Script {
    faults: BTreeMap<String, (Scripted, u32)>,
}

impl Script {
    /// Makes the next `times` calls of `operation` (as [`crate::Stats`]
    /// counts them, e.g. `ec2:CreateVpc`) meet `fault`; 0 clears it.
    pub fn set(&mut self, operation: &str, fault: Scripted, times: u32) {
        if times == 0 {
            self.faults.remove(operation);
        } else {
            self.faults.insert(operation.to_string(), (fault, times));
        }
    }

    /// The fault this call of `operation` meets, if any, using one of its times.
    pub fn take(&mut self, operation: &str) -> Option<Scripted> {
        let (fault, left) = self.faults.get_mut(operation)?;
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            self.faults.remove(operation);
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripted_fault_applies_the_first_n_times_only() {
        let mut script = Script::default();
        script.set("ec2:CreateVpc", Scripted::LoseResponse, 2);
        assert_eq!(script.take("ec2:CreateSubnet"), None);
        assert_eq!(script.take("ec2:CreateVpc"), Some(Scripted::LoseResponse));
        assert_eq!(script.take("ec2:CreateVpc"), Some(Scripted::LoseResponse));
        assert_eq!(script.take("ec2:CreateVpc"), None);
        script.set("s3:PutBucketTagging", Scripted::DropConnection, 5);
        script.set("s3:PutBucketTagging", Scripted::DropConnection, 0);
        assert_eq!(script.take("s3:PutBucketTagging"), None);
    }

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

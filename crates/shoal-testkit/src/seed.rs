//! The seed of a test run: every random choice of a scenario (workload
//! operations, values, fault schedule) comes from it, so a failing run is
//! replayed by setting `SHOAL_SEED` to the value it printed.
//!
//! Timing still varies between runs (real processes, real sockets), so a
//! replay repeats the same *decisions*, not the same interleaving.

use anyhow::{anyhow, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The environment variable that fixes the seed.
pub const SEED_ENV: &str = "SHOAL_SEED";

/// A run's seed. Sub-seeds for independent random streams come from
/// [`Seed::derive`], so adding a client or a fault kind does not shift the
/// choices of the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed(u64);

impl Seed {
    /// Reads `SHOAL_SEED`, or picks a random seed when it is unset, and prints
    /// `SHOAL_SEED=<n>` to stderr (the test harness shows it when a test fails).
    ///
    /// A set but unparsable `SHOAL_SEED` is an error rather than a silent
    /// random seed: whoever set it expects a replay.
    pub fn from_env() -> Result<Seed> {
        let seed = match std::env::var(SEED_ENV) {
            Ok(text) => Seed::parse(&text)?,
            Err(std::env::VarError::NotPresent) => Seed(rand::random()),
            Err(e) => return Err(anyhow!("{SEED_ENV}: {e}")),
        };
        eprintln!("{SEED_ENV}={} (set it to replay this run)", seed.0);
        Ok(seed)
    }

    /// Parses the decimal form printed by [`Seed::from_env`].
    pub fn parse(text: &str) -> Result<Seed> {
        text.trim()
            .parse::<u64>()
            .map(Seed)
            .map_err(|e| anyhow!("{SEED_ENV} must be an unsigned 64-bit integer, got {text:?}: {e}"))
    }

    /// A fixed seed (unit tests, replays from code).
    pub const fn new(value: u64) -> Seed {
        Seed(value)
    }

    pub fn value(self) -> u64 {
        self.0
    }

    /// A generator for this seed.
    pub fn rng(self) -> StdRng {
        StdRng::seed_from_u64(self.0)
    }

    /// The seed of an independent stream named by `stream` (e.g. one per
    /// client). SplitMix64 finalizer over seed and stream: cheap, and nearby
    /// inputs give unrelated outputs.
    pub fn derive(self, stream: u64) -> Seed {
        let mut z = self.0 ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Seed(z ^ (z >> 31))
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn same_seed_same_choices() {
        let (mut a, mut b, mut c) = (Seed::new(7).rng(), Seed::new(7).rng(), Seed::new(8).rng());
        let first: Vec<u64> = (0..8).map(|_| a.gen()).collect();
        let again: Vec<u64> = (0..8).map(|_| b.gen()).collect();
        let other: Vec<u64> = (0..8).map(|_| c.gen()).collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn derived_streams_differ_and_are_stable() {
        let seed = Seed::new(42);
        assert_ne!(seed.derive(0), seed.derive(1));
        assert_ne!(seed.derive(0), seed);
        assert_eq!(seed.derive(3), Seed::new(42).derive(3));
    }

    #[test]
    fn parse_accepts_printed_form_and_rejects_garbage() {
        assert_eq!(Seed::parse(" 18446744073709551615 ").unwrap().value(), u64::MAX);
        let err = Seed::parse("abc").unwrap_err().to_string();
        assert!(err.contains("SHOAL_SEED"), "{err}");
        assert!(Seed::parse("-1").is_err());
    }
}

//! Progressive delivery on one host: the new version gets a share of new requests in steps
//! (`traffic-steps: 5,25,50`), each step judged on the requests it actually served before the
//! next one starts.
//!
//! - this file: the types a canary is described by (a [`Share`] of traffic, the
//!   [`TrafficSteps`], the [`CanarySpec`] a plan carries).
//! - `accesslog`: the access log nginx writes through the include we own, read by window;
//!   `traffic`: what a window's lines say about each slot.
//! - `judge`: a step's verdict from those figures and the probes of the new slot, held to
//!   the plan's `limits`.
//! - `estimate`: the new slot's error rate from the kernel's counts, where the log cannot
//!   tell the slots apart (nftables mode, an app that does not name its slot); `slow`: its
//!   p95 latency the same way; `one_sided`: the test on counts both (and the watch) use.
//! - `watch`: the watch's verdict on the users' requests after the switch.
//! - `receipt`: what a run cost the users, from the log.
//!
//! How a split is made is the switch's business ([`crate::switch`]): weighted `server` lines
//! in reload mode, a DNAT rule picking the slot by a random number per new connection in
//! nftables mode. The engine's steps are in `deploy/canary.rs`.

mod accesslog;
mod estimate;
mod judge;
mod latency;
mod limits;
mod one_sided;
mod receipt;
mod slow;
mod traffic;
mod watch;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::serde_millis;
use crate::error::{Error, Result};
use crate::input::Fraction;

pub use accesslog::{AccessLog, log_directives};
pub use estimate::{Estimate, estimate};
pub use judge::{Verdict, judge};
pub use limits::Thresholds;
pub use one_sided::Baseline;
pub use receipt::Receipt;
pub use slow::{SlowEstimate, estimate_slow};
pub use traffic::{SlotTraffic, StepTraffic};
pub use watch::{TrafficVerdict, judge_window, p95_limit};

/// A share of new requests, in percent, that a split sends to the new slot: 1 to 99 (0 is
/// no split, 100 is the switch itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Share(u8);

impl Share {
    /// The share in percent.
    pub fn percent(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Share {
    type Error = Error;

    fn try_from(n: u8) -> Result<Self> {
        if (1..=99).contains(&n) {
            Ok(Share(n))
        } else {
            Err(Error::invalid(
                "share",
                format!("{n}: a share of traffic is a percentage from 1 to 99"),
            ))
        }
    }
}

impl FromStr for Share {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let n: u8 = s.trim().trim_end_matches('%').parse().map_err(|_| {
            Error::invalid(
                "share",
                format!("{s:?}: expected a percentage from 1 to 99"),
            )
        })?;
        Share::try_from(n)
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl Serialize for Share {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Share::try_from(u8::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The shares a canary goes through before the switch, strictly rising; the switch to 100%
/// follows the last one (a trailing `100` in the input says so and is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSteps(Vec<Share>);

impl TrafficSteps {
    /// The steps, in order.
    pub fn shares(&self) -> &[Share] {
        &self.0
    }

    /// The steps that come after `share` (all of them for `None`).
    pub fn after(&self, share: Option<Share>) -> impl Iterator<Item = Share> + '_ {
        self.0.iter().copied().filter(move |s| Some(*s) > share)
    }
}

impl FromStr for TrafficSteps {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| Error::invalid("traffic-steps", why);
        let mut words: Vec<&str> = s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        if words
            .last()
            .is_some_and(|w| w.trim_end_matches('%') == "100")
        {
            words.pop();
        }
        if words.is_empty() {
            return Err(bad(format!(
                "{s:?}: expected rising percentages below 100, such as 5,25,50"
            )));
        }
        let mut shares: Vec<Share> = Vec::new();
        for word in words {
            let share: Share = word
                .parse()
                .map_err(|_| bad(format!("{word:?}: each step is a percentage from 1 to 99 (the switch to 100% follows the last)")))?;
            if shares.last().is_some_and(|last| *last >= share) {
                return Err(bad(format!(
                    "{s:?}: the steps must rise ({share} comes after {})",
                    shares.last().expect("checked")
                )));
            }
            shares.push(share);
        }
        Ok(TrafficSteps(shares))
    }
}

impl fmt::Display for TrafficSteps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self.0.iter().map(|s| s.0.to_string()).collect();
        f.write_str(&words.join(","))
    }
}

impl Serialize for TrafficSteps {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for TrafficSteps {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// How a deploy moves traffic to the new version in steps, and how each step is judged
/// (the absolute ceilings are the watch's `max-error-rate` and `max-p95-ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// The shares, in order.
    pub steps: TrafficSteps,
    /// How long each step lasts.
    #[serde(with = "serde_millis")]
    pub step_duration: Duration,
    /// The step after which the run stops, leaving the canary at that share until
    /// `command: promote` or `command: abort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_at: Option<Share>,
    /// How much higher than the old slot's the new slot's error rate may be.
    pub error_margin: Fraction,
    /// How much higher than the old slot's the new slot's p95 latency may be, in ms.
    pub p95_margin_ms: u64,
    /// Fewer requests than this in a step's log: the step is judged on probes only.
    pub min_requests: u32,
}

impl CanarySpec {
    /// Why `pause_at` cannot be used with the steps, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let pause = self.pause_at?;
        (!self.steps.shares().contains(&pause)).then(|| {
            format!(
                "canary-pause-at {} is not one of the traffic-steps ({})",
                pause.percent(),
                self.steps
            )
        })
    }
}

/// A small deterministic generator (xorshift64*) for the estimates' simulated steps, so
/// that their rates are the same on every run.
#[cfg(test)]
struct TestRng(u64);

#[cfg(test)]
impl TestRng {
    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// How many of `n` events happen, each with probability `rate`.
    fn failures(&mut self, n: u64, rate: f64) -> u64 {
        (0..n).filter(|_| self.next() < rate).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_rise_below_100_and_a_trailing_100_is_the_switch() {
        let steps: TrafficSteps = "5, 25,50 100".parse().unwrap();
        let percents: Vec<u8> = steps.shares().iter().map(|s| s.percent()).collect();
        assert_eq!(percents, [5, 25, 50]);
        assert_eq!(steps.to_string(), "5,25,50");
        let after: Vec<u8> = steps.after(Some(Share(25))).map(Share::percent).collect();
        assert_eq!(after, [50]);
        assert_eq!(steps.after(None).count(), 3);
        for bad in ["", "100", "0,50", "50,25", "5,5", "5,150", "five"] {
            let err = bad.parse::<TrafficSteps>().unwrap_err().to_string();
            assert!(err.contains("traffic-steps"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_share_is_between_1_and_99_percent() {
        assert_eq!("25%".parse::<Share>().unwrap().percent(), 25);
        assert!("0".parse::<Share>().is_err());
        assert!("100".parse::<Share>().is_err());
        assert!(serde_json::from_str::<Share>("100").is_err());
        assert_eq!(serde_json::to_string(&Share(7)).unwrap(), "7");
    }

    #[test]
    fn the_pause_must_be_one_of_the_steps() {
        let spec = |pause: Option<u8>| CanarySpec {
            steps: "10,50".parse().unwrap(),
            step_duration: Duration::from_secs(1),
            pause_at: pause.map(Share),
            error_margin: "0.01".parse().unwrap(),
            p95_margin_ms: 100,
            min_requests: 20,
        };
        assert_eq!(spec(Some(50)).problem(), None);
        assert_eq!(spec(None).problem(), None);
        assert!(spec(Some(25)).problem().unwrap().contains("10,50"));
    }
}

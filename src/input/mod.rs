//! Validated input types and their parsers.
//!
//! Every value a user can type is parsed here into a type that cannot hold a bad value, so
//! the rest of the library never re-checks. The parsers double as clap value parsers and
//! return messages that say what was wrong and what is accepted; the types read from JSON
//! through the same parsers, so a plan a host receives is checked exactly like the inputs.
//!
//! - `names`: the app, a slot, a switch target, a version, an image, a compose service.
//! - `net`: ports, the two slots' ports, `HOST:PORT`, HTTP URLs, status sets.
//! - `site`: the server names and listen address of the server block `setup` writes.
//! - `values`: durations, fractions, counts, host paths, the health path, the switch mode.

/// Serializes a validated string type as its string, and deserializes it through its
/// parser, so a value read from JSON is checked exactly like one typed on a command line.
macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

mod names;
mod net;
mod site;
mod values;

/// Parses a list of values separated by spaces, commas or new lines (`web, worker`,
/// `db:5432 cache:6379`), each through its type's parser.
pub fn parse_list<T: std::str::FromStr<Err = crate::error::Error>>(
    text: &str,
) -> crate::error::Result<Vec<T>> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::parse)
        .collect()
}

pub use names::{AppName, Image, ServiceName, Slot, SwitchTarget, Version};
pub use net::{HostPort, HttpUrl, Port, SlotPorts, StatusSet, parse_port};
pub use site::{Listen, ServerNames, parse_site_host};
pub use values::{
    Fraction, HealthPath, HostPath, MAX_WAIT, SwitchMode, parse_fraction, parse_millis,
    parse_positive_count, parse_seconds, parse_time_limit, parse_wait,
};

//! A local Mixpanel for tests, demos and benchmarks. See the crate README.

#![forbid(unsafe_code)]

mod region;
pub mod scenario;
pub mod sender;

pub use region::Region;
pub use scenario::Scenario;

//! Archive readers that read what model loaders read, leniently, and report every anomaly.

pub mod zip;

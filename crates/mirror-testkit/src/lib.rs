//! Test registries.

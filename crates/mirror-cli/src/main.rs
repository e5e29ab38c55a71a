//! `mirror-cli`: mirror, verify and serve a Cargo registry.

fn main() {}

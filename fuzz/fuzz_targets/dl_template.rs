//! `DlTemplate::new` and `expand` on an arbitrary template, name and version: never panics,
//! accepts only http(s) URLs, and expands to a URL with the template's scheme.
//!
//! Input: template, newline, name, newline, version, newline, checksum bytes. A name or version
//! that is missing or invalid is replaced by a valid one, so every template gets expanded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror_index::{Checksum, CrateName, DlTemplate, Version};

fuzz_target!(|input: &[u8]| {
    let mut parts = input.splitn(4, |b| *b == b'\n');
    let template = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let text = |part: Option<&[u8]>| {
        std::str::from_utf8(part.unwrap_or_default())
            .unwrap_or_default()
            .to_owned()
    };
    let name = CrateName::new(&text(parts.next()))
        .unwrap_or_else(|_| CrateName::new("Ab-c_d").expect("valid"));
    let vers = Version::new(&text(parts.next()))
        .unwrap_or_else(|_| Version::new("1.0.0-rc.1+b").expect("valid"));
    let mut sum = [0u8; 32];
    for (to, from) in sum.iter_mut().zip(parts.next().unwrap_or_default()) {
        *to = *from;
    }
    if let Ok(t) = DlTemplate::new(&template) {
        mirror_fuzz::check_template(&template, &t, &name, &vers, &Checksum::from_bytes(sum));
    }
});

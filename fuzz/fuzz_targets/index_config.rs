//! `IndexConfig::parse` on arbitrary bytes: never panics, and a `dl` it accepts that makes a
//! template holds to the template's rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror_index::{Checksum, CrateName, IndexConfig, Version};

fuzz_target!(|data: &[u8]| {
    let Ok(config) = IndexConfig::parse(data, "fuzz/config.json") else {
        return;
    };
    if let Ok(template) = config.dl_template() {
        let name = CrateName::new("Ab-c_d").expect("valid");
        let vers = Version::new("1.0.0-rc.1+b").expect("valid");
        mirror_fuzz::check_template(
            &config.dl,
            &template,
            &name,
            &vers,
            &Checksum::from_bytes([0xab; 32]),
        );
    }
});

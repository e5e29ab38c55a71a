//! The index file of one synthetic crate: versions in publish order, each a line shaped like the
//! ones crates.io writes (field order, sorted deps and feature maps, escaped `cfg(...)` targets).

use std::io::Write;

use sha2::{Digest, Sha256};

use super::rng::Rng;

/// Registry history spans from crates.io's launch to mid-2026 (seconds since the epoch).
const START: i64 = 1_415_750_400; // 2014-11-12
const END: i64 = 1_780_272_000; // 2026-06-01
/// Lines published after this carry `pubtime` (2023-01-01).
const PUBTIME_FROM: i64 = 1_672_531_200;
/// `rust_version` exists from Rust 1.56 (2021-10-21).
const MSRV_FROM: i64 = 1_634_774_400;
/// `dep:` feature syntax, hence `features2` and `"v":2`, from Rust 1.60 (2022-04-07).
const FEATURES2_FROM: i64 = 1_649_289_600;

const DEP_FEATURES: &[&[&str]] = &[
    &["derive"],
    &["std"],
    &["full"],
    &["serde"],
    &["alloc"],
    &["macros", "rt-multi-thread"],
    &["std", "serde"],
    &["json", "rustls-tls"],
];

const TARGETS: &[&str] = &[
    "cfg(windows)",
    "cfg(unix)",
    r#"cfg(target_os = \"linux\")"#,
    r#"cfg(target_arch = \"wasm32\")"#,
    r#"cfg(not(target_arch = \"wasm32\"))"#,
    r#"cfg(any(target_os = \"macos\", target_os = \"ios\"))"#,
    "x86_64-pc-windows-msvc",
    r#"cfg(all(unix, not(target_os = \"macos\")))"#,
];

const FEATURE_NAMES: &[&str] = &[
    "std",
    "alloc",
    "serde",
    "derive",
    "full",
    "async",
    "tokio",
    "rustls",
    "native-tls",
    "unstable",
    "nightly",
    "json",
    "logging",
    "tracing",
    "simd",
    "parallel",
    "rayon",
    "compat",
    "cli",
    "color",
    "experimental",
    "fs",
    "net",
    "sync",
    "time",
    "macros",
    "testing",
    "bench",
    "wasm",
    "ffi",
];

const BUILD_META: &[&str] = &[
    "spec-1.1.0",
    "wasi-0.2.4",
    "deprecated",
    "zstd.1.5.6",
    "git",
];

/// One dependency as a crate declares it; its requirement moves as versions are published.
struct Dep {
    name: usize,
    alias: Option<String>,
    major: u64,
    minor: u64,
    patch: u64,
    req_style: u8,
    features: &'static [&'static str],
    optional: bool,
    default_features: bool,
    target: Option<&'static str>,
    kind: &'static str,
}

/// A crate to generate: its position in the registry's history and how many versions it has.
pub(crate) struct CrateSpec {
    /// Position in creation order; dependencies are picked among older crates.
    pub(crate) index: usize,
    /// Number of versions (lines).
    pub(crate) versions: usize,
}

/// Appends the index file of crate `spec` to `out` and returns its number of lines.
pub(crate) fn crate_file(
    seed: u64,
    spec: &CrateSpec,
    names: &[String],
    out: &mut Vec<u8>,
) -> usize {
    let mut rng = Rng::derive(seed, 2, spec.index as u64);
    let name = &names[spec.index];
    let n = names.len().max(1);
    // Crates.io grew roughly quadratically: more crates were created late than early.
    let fraction = (spec.index as f64 / n as f64).sqrt();
    let created = START + ((END - START) as f64 * fraction * 0.97) as i64;
    let span = (END - created).max(86_400) as u64;
    let gap = (2 * span / spec.versions as u64).max(120);

    let shape = rng.below(100);
    let (min_deps, max_deps, max_features) = match shape {
        0..3 => (0, 1, 1),
        3..4 => (12, 30, 40),
        _ => (2, 6, 6),
    };
    let mut deps: Vec<Dep> = (0..rng.range(min_deps, max_deps))
        .filter_map(|_| new_dep(&mut rng, spec.index))
        .collect();
    let features = make_features(&mut rng, max_features, &deps, names);
    let uses_msrv = rng.chance(450);
    let uses_features2 = rng.chance(300) && deps.iter().any(|d| d.optional);
    let meta = rng.chance(8).then(|| *rng.pick(BUILD_META));
    let links = (name.ends_with("-sys") || name.ends_with("_sys")).then(|| {
        let base = name[..name.len() - 4].trim_start_matches("lib");
        if base.is_empty() { name.as_str() } else { base }.to_ascii_lowercase()
    });
    let mut versions = Versions::new(&mut rng);
    let mut msrv = 56 + rng.below(20);
    let mut time = created;
    let mut cksum_input = Vec::with_capacity(96);

    for i in 0..spec.versions {
        if i > 0 {
            time += rng.range(60, gap) as i64;
            evolve(&mut rng, &mut deps, spec.index, max_deps);
        }
        let mut vers = versions.next(&mut rng);
        if let Some(meta) = meta {
            vers.push('+');
            vers.push_str(meta);
            if meta == "git" {
                vers.push_str(&format!(".{i}"));
            }
        }
        cksum_input.clear();
        cksum_input.extend_from_slice(&seed.to_le_bytes());
        cksum_input.extend_from_slice(name.as_bytes());
        cksum_input.push(0);
        cksum_input.extend_from_slice(vers.as_bytes());
        let cksum = Sha256::digest(&cksum_input);

        write!(out, r#"{{"name":"{name}","vers":"{vers}","deps":["#).expect("vec write");
        let mut order: Vec<&Dep> = deps.iter().collect();
        order.sort_by(|a, b| {
            dep_name(a, names)
                .cmp(dep_name(b, names))
                .then(a.kind.cmp(b.kind))
        });
        for (k, dep) in order.into_iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            write_dep(out, dep, names);
        }
        out.extend_from_slice(br#"],"cksum":""#);
        for b in cksum {
            write!(out, "{b:02x}").expect("vec write");
        }
        out.extend_from_slice(br#"","features":{"#);
        let v2 = uses_features2 && time >= FEATURES2_FROM;
        // The `dep:` and `?` syntax lives in `features2`; before it existed such features were
        // simply not published.
        write_features(out, &features, |f| !f.contains(':') && !f.contains('?'));
        out.push(b'}');
        if v2 {
            out.extend_from_slice(br#","features2":{"#);
            write_features(out, &features, |f| f.contains(':') || f.contains('?'));
            out.push(b'}');
        }
        let yanked = rng.chance(30);
        write!(out, r#","yanked":{yanked}"#).expect("vec write");
        if let Some(links) = &links {
            write!(out, r#","links":"{links}""#).expect("vec write");
        }
        if uses_msrv && time >= MSRV_FROM {
            if rng.chance(80) {
                msrv = (msrv + 1).min(88);
            }
            write!(out, r#","rust_version":"1.{msrv}""#).expect("vec write");
        }
        if time >= PUBTIME_FROM {
            out.extend_from_slice(br#","pubtime":""#);
            write_time(out, time);
            out.push(b'"');
        }
        if v2 {
            out.extend_from_slice(br#","v":2"#);
        }
        out.extend_from_slice(b"}\n");
    }
    spec.versions
}

fn dep_name<'a>(dep: &'a Dep, names: &'a [String]) -> &'a str {
    dep.alias.as_deref().unwrap_or(&names[dep.name])
}

/// A dependency on an older crate, popular ones more likely; `None` for the very first crate.
fn new_dep(rng: &mut Rng, me: usize) -> Option<Dep> {
    if me == 0 {
        return None;
    }
    // Cubing a uniform number skews towards the oldest crates, the way serde and friends are
    // everybody's dependencies.
    let name = ((me as f64) * rng.unit().powi(3)) as usize;
    let kind = match rng.below(100) {
        0..65 => "normal",
        65..93 => "dev",
        _ => "build",
    };
    let major = if rng.chance(600) { 0 } else { rng.range(1, 4) };
    Some(Dep {
        name,
        alias: rng.chance(10).then(|| format!("dep{}", rng.range(1, 99))),
        major,
        minor: rng.range(0, if major == 0 { 30 } else { 12 }),
        patch: rng.range(0, 40),
        req_style: rng.below(100) as u8,
        features: if rng.chance(250) {
            rng.pick::<&[&str]>(DEP_FEATURES)
        } else {
            &[]
        },
        optional: kind == "normal" && rng.chance(150),
        default_features: !rng.chance(150),
        target: rng.chance(100).then(|| *rng.pick(TARGETS)),
        kind,
    })
}

/// Moves a crate's dependencies along between two versions: requirements bumped, a dependency
/// added or dropped now and then.
fn evolve(rng: &mut Rng, deps: &mut Vec<Dep>, me: usize, max: u64) {
    if !deps.is_empty() && rng.chance(200) {
        let i = rng.index(deps.len());
        let d = &mut deps[i];
        if rng.chance(850) {
            d.patch += 1;
        } else {
            d.minor += 1;
            d.patch = 0;
        }
    }
    if (deps.len() as u64) < max && rng.chance(40) {
        deps.extend(new_dep(rng, me));
    }
    if deps.len() > 1 && rng.chance(25) {
        let i = rng.index(deps.len());
        deps.remove(i);
    }
}

fn write_dep(out: &mut Vec<u8>, dep: &Dep, names: &[String]) {
    let (ma, mi, pa) = (dep.major, dep.minor, dep.patch);
    write!(out, r#"{{"name":"{}","req":""#, dep_name(dep, names)).expect("vec write");
    match dep.req_style {
        0..45 => write!(out, "^{ma}.{mi}.{pa}"),
        45..80 => write!(out, "^{ma}.{mi}"),
        80..88 => write!(out, "^{ma}"),
        88..93 => write!(out, "={ma}.{mi}.{pa}"),
        93..96 => write!(out, "~{ma}.{mi}"),
        96..99 => write!(out, ">={ma}.{mi}, <{}", ma + 1),
        _ => write!(out, "*"),
    }
    .expect("vec write");
    out.extend_from_slice(br#"","features":["#);
    for (k, f) in dep.features.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        write!(out, r#""{f}""#).expect("vec write");
    }
    write!(
        out,
        r#"],"optional":{},"default_features":{},"target":"#,
        dep.optional, dep.default_features
    )
    .expect("vec write");
    match dep.target {
        Some(t) => write!(out, r#""{t}""#).expect("vec write"),
        None => out.extend_from_slice(b"null"),
    }
    write!(out, r#","kind":"{}""#, dep.kind).expect("vec write");
    if dep.alias.is_some() {
        write!(out, r#","package":"{}""#, names[dep.name]).expect("vec write");
    }
    out.push(b'}');
}

/// A crate's feature table, sorted by name: `default`, plain features enabling others or
/// dependency features, and (for optional dependencies) `dep:` and `?` entries that only the
/// newer syntax has.
fn make_features(
    rng: &mut Rng,
    max: u64,
    deps: &[Dep],
    names: &[String],
) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let count = rng.range(0, max) as usize;
    for _ in 0..count {
        let key = if out.len() > 6 {
            format!("{}-{}", rng.pick(FEATURE_NAMES), rng.range(1, 99))
        } else {
            (*rng.pick(FEATURE_NAMES)).to_owned()
        };
        if out.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let mut values = Vec::new();
        for _ in 0..rng.below(3) {
            let value = match (deps.is_empty(), rng.below(3)) {
                (false, 0) => {
                    let d = &deps[rng.index(deps.len())];
                    format!("{}/{}", dep_name(d, names), rng.pick(FEATURE_NAMES))
                }
                _ => (*rng.pick(FEATURE_NAMES)).to_owned(),
            };
            values.push(value);
        }
        out.push((key, values));
    }
    for d in deps.iter().filter(|d| d.optional) {
        let dn = dep_name(d, names).to_owned();
        out.push((
            format!("with-{dn}"),
            vec![format!("dep:{dn}"), format!("{dn}?/std")],
        ));
    }
    if !out.is_empty() {
        out.push(("default".into(), vec![out[0].0.clone()]));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

fn write_features(
    out: &mut Vec<u8>,
    features: &[(String, Vec<String>)],
    keep: impl Fn(&str) -> bool,
) {
    let mut first = true;
    for (key, values) in features {
        if !values.iter().all(|v| keep(v)) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write!(out, r#""{key}":["#).expect("vec write");
        for (k, v) in values.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            write!(out, r#""{v}""#).expect("vec write");
        }
        out.push(b']');
    }
}

/// Writes `secs` (UTC) as RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`.
fn write_time(out: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
    .expect("vec write");
}

/// A crate's version numbers in publish order: mostly patch bumps, some minor and major bumps,
/// pre-releases before a release, and now and then a backport to an older line (so publish
/// order is not semver order).
struct Versions {
    major: u64,
    minor: u64,
    patch: u64,
    /// Older `(major, minor, next patch)` lines that a backport can extend.
    lines: Vec<(u64, u64, u64)>,
    /// A pending pre-release series for the next minor: (label, number).
    pre: Option<(&'static str, u64)>,
    started: bool,
}

impl Versions {
    fn new(rng: &mut Rng) -> Self {
        let (major, minor, patch) = match rng.below(100) {
            0..70 => (0, 1, 0),
            70..80 => (0, 0, 1),
            80..95 => (1, 0, 0),
            _ => (0, rng.range(2, 9), 0),
        };
        Versions {
            major,
            minor,
            patch,
            lines: Vec::new(),
            pre: None,
            started: false,
        }
    }

    fn next(&mut self, rng: &mut Rng) -> String {
        if !self.started {
            self.started = true;
            return format!("{}.{}.{}", self.major, self.minor, self.patch);
        }
        if let Some((label, n)) = self.pre {
            // The pre-release series targets the next minor, which is not published yet.
            let target = format!("{}.{}.0", self.major, self.minor + 1);
            if rng.chance(600) {
                self.pre = Some((label, n + 1));
                return format!("{target}-{label}.{}", n + 1);
            }
            self.pre = None;
            self.bump_minor();
            return target;
        }
        let roll = rng.below(1000);
        if roll < 30 && !self.lines.is_empty() {
            let i = rng.index(self.lines.len());
            let (ma, mi, pa) = self.lines[i];
            self.lines[i].2 += 1;
            return format!("{ma}.{mi}.{pa}");
        }
        if roll < 60 {
            let label = *rng.pick(&["alpha", "beta", "rc"]);
            self.pre = Some((label, 1));
            return format!("{}.{}.0-{label}.1", self.major, self.minor + 1);
        }
        if roll < 760 {
            self.patch += 1;
        } else if roll < 985 {
            self.bump_minor();
        } else {
            self.lines.push((self.major, self.minor, self.patch + 1));
            if self.major == 0 {
                self.major = 1;
            } else {
                self.major += 1;
            }
            self.minor = 0;
            self.patch = 0;
        }
        format!("{}.{}.{}", self.major, self.minor, self.patch)
    }

    fn bump_minor(&mut self) {
        self.lines.push((self.major, self.minor, self.patch + 1));
        if self.lines.len() > 4 {
            self.lines.remove(0);
        }
        self.minor += 1;
        self.patch = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn versions_are_unique_and_valid() {
        let mut rng = Rng::new(3);
        let mut v = Versions::new(&mut rng);
        let mut seen = HashSet::new();
        for _ in 0..3000 {
            let s = v.next(&mut rng);
            mirror_index::Version::new(&s).expect("valid semver");
            assert!(seen.insert(s.clone()), "duplicate {s}");
        }
    }

    #[test]
    fn times_are_rfc3339() {
        let mut out = Vec::new();
        write_time(&mut out, 1_700_000_000);
        assert_eq!(out, b"2023-11-14T22:13:20Z");
        out.clear();
        write_time(&mut out, 951_782_400);
        assert_eq!(out, b"2000-02-29T00:00:00Z");
    }
}

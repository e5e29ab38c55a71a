//! Real-looking crate names: short 1-, 2- and 3-letter names, words joined by `-` or `_`,
//! ecosystem prefixes and suffixes, invented words, a few in mixed case. Unique the way crates.io
//! counts uniqueness: ignoring case and treating `-` and `_` alike.

use std::collections::HashSet;

use super::rng::Rng;

/// Words that crate names are made of.
const WORDS: &[&str] = &[
    "async",
    "actor",
    "aead",
    "alloc",
    "ansi",
    "any",
    "api",
    "app",
    "arena",
    "arrow",
    "ast",
    "atomic",
    "audio",
    "auth",
    "avro",
    "aws",
    "axum",
    "base",
    "base64",
    "bench",
    "bevy",
    "big",
    "bin",
    "bit",
    "bitflags",
    "blake",
    "block",
    "bloom",
    "bls",
    "bound",
    "box",
    "buf",
    "buffer",
    "build",
    "bus",
    "byte",
    "bytes",
    "cache",
    "canvas",
    "cargo",
    "cell",
    "chain",
    "chan",
    "char",
    "chrono",
    "cipher",
    "clap",
    "cli",
    "client",
    "clock",
    "cloud",
    "code",
    "codec",
    "color",
    "config",
    "console",
    "const",
    "core",
    "cors",
    "crc",
    "cron",
    "crypto",
    "csv",
    "curve",
    "data",
    "date",
    "db",
    "debug",
    "decode",
    "derive",
    "diff",
    "digest",
    "dirs",
    "dns",
    "doc",
    "dom",
    "dyn",
    "ecs",
    "ed25519",
    "edit",
    "elf",
    "embed",
    "encode",
    "engine",
    "enum",
    "env",
    "error",
    "event",
    "exec",
    "fast",
    "ffi",
    "file",
    "filter",
    "flag",
    "float",
    "flow",
    "fmt",
    "font",
    "fork",
    "format",
    "frame",
    "fs",
    "ftp",
    "future",
    "fuzz",
    "game",
    "gen",
    "geo",
    "git",
    "gl",
    "glob",
    "gpu",
    "graph",
    "grpc",
    "gui",
    "hash",
    "heap",
    "hex",
    "http",
    "hyper",
    "id",
    "image",
    "impl",
    "index",
    "info",
    "init",
    "input",
    "io",
    "iter",
    "jit",
    "json",
    "jwt",
    "kafka",
    "kernel",
    "key",
    "kit",
    "lang",
    "layer",
    "lazy",
    "lexer",
    "lib",
    "lite",
    "link",
    "lint",
    "list",
    "log",
    "lru",
    "lsp",
    "macro",
    "macros",
    "map",
    "markdown",
    "math",
    "matrix",
    "md5",
    "mem",
    "merkle",
    "mesh",
    "meta",
    "metrics",
    "mime",
    "mini",
    "mock",
    "mod",
    "mqtt",
    "msg",
    "multi",
    "mutex",
    "nano",
    "net",
    "node",
    "num",
    "oauth",
    "object",
    "once",
    "opt",
    "os",
    "pack",
    "page",
    "panic",
    "parse",
    "parser",
    "path",
    "peer",
    "pest",
    "pipe",
    "pixel",
    "plot",
    "plugin",
    "poly",
    "pool",
    "port",
    "proc",
    "proto",
    "proxy",
    "pub",
    "queue",
    "quic",
    "rand",
    "range",
    "raw",
    "rayon",
    "read",
    "redis",
    "ref",
    "regex",
    "rest",
    "ring",
    "rpc",
    "rt",
    "rust",
    "safe",
    "scan",
    "schema",
    "scope",
    "sdk",
    "search",
    "secp",
    "serde",
    "server",
    "set",
    "sha",
    "shell",
    "signal",
    "simd",
    "simple",
    "slab",
    "slice",
    "smart",
    "sock",
    "solana",
    "sort",
    "span",
    "spec",
    "sql",
    "stack",
    "state",
    "stats",
    "std",
    "store",
    "str",
    "stream",
    "string",
    "struct",
    "svg",
    "swap",
    "sync",
    "sys",
    "table",
    "task",
    "tcp",
    "term",
    "test",
    "text",
    "thread",
    "time",
    "tiny",
    "tls",
    "token",
    "tokio",
    "toml",
    "tool",
    "trace",
    "tree",
    "trie",
    "type",
    "ui",
    "unicode",
    "unit",
    "uri",
    "url",
    "utf8",
    "util",
    "utils",
    "uuid",
    "vec",
    "vm",
    "vulkan",
    "wasm",
    "watch",
    "web",
    "websocket",
    "win",
    "window",
    "worker",
    "write",
    "x11",
    "xml",
    "yaml",
    "zero",
    "zip",
];

/// Prefixes of families of crates published together.
const ECOSYSTEMS: &[&str] = &[
    "aws-sdk",
    "azure",
    "bevy",
    "cosmwasm",
    "gix",
    "google",
    "icu",
    "near",
    "pallet",
    "polkadot",
    "rustc-ap",
    "sc",
    "serde",
    "solana",
    "sp",
    "substrate",
    "tauri",
    "tokio",
    "tower",
    "wasmer",
    "windows",
    "zed",
];

/// Suffixes that mark what a crate is for.
const SUFFIXES: &[&str] = &[
    "rs",
    "sys",
    "derive",
    "macros",
    "cli",
    "core",
    "utils",
    "impl",
    "types",
    "common",
    "ng",
    "lite",
    "codegen",
    "build",
    "shared",
    "internal",
    "bindings",
    "ffi",
    "async",
    "proc-macro",
];

/// Syllables of invented words (`zorvik`, `kelta`).
const SYLLABLES: &[&str] = &[
    "ka", "ro", "mi", "zu", "ve", "lo", "ta", "ni", "qu", "ex", "ar", "on", "el", "is", "ul", "yo",
    "dra", "kel", "vin", "mor", "zan", "tek", "bri", "sol", "fen", "gar", "hex", "jin", "lux",
    "nyx",
];

/// `count` unique names (`count` at most a few million), a shuffled mix of short and long.
pub(crate) fn generate(seed: u64, count: usize) -> Vec<String> {
    let mut rng = Rng::derive(seed, 1, 0);
    let mut seen = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    let mut add = |name: String, out: &mut Vec<String>| {
        if out.len() < count && seen.insert(name.to_ascii_lowercase().replace('-', "_")) {
            out.push(name);
        }
    };
    // crates.io has every 1-letter name and a good share of the 2- and 3-letter ones; they are
    // the names whose index paths are special (`1/`, `2/`, `3/{c}/`). Even a small index gets some.
    let letters: Vec<char> = ('a'..='z').collect();
    let singles = (count / 5_000).clamp(1, 26);
    let doubles = (count / 800).clamp(1, 26 * 26);
    let triples = (count / 60).clamp(1, 26 * 26 * 26);
    for (want, len) in [(singles, 1), (doubles, 2), (triples, 3)] {
        let start = out.len();
        while out.len() < (start + want).min(count) {
            let name: String = (0..len).map(|_| *rng.pick(&letters)).collect();
            add(name, &mut out);
        }
    }
    while out.len() < count {
        let name = long_name(&mut rng);
        if name.len() <= mirror_index::MAX_NAME_LEN {
            add(name, &mut out);
        }
    }
    // Fisher-Yates: short names are spread over the whole history instead of all being oldest.
    for i in (1..out.len()).rev() {
        let j = rng.index(i + 1);
        out.swap(i, j);
    }
    out
}

fn sep(rng: &mut Rng) -> &'static str {
    if rng.chance(600) { "-" } else { "_" }
}

fn invented(rng: &mut Rng) -> String {
    let n = rng.range(2, 4) as usize;
    (0..n).map(|_| *rng.pick(SYLLABLES)).collect()
}

fn word(rng: &mut Rng) -> String {
    if rng.chance(150) {
        invented(rng)
    } else {
        (*rng.pick(WORDS)).to_owned()
    }
}

fn long_name(rng: &mut Rng) -> String {
    let roll = rng.below(100);
    let mut name = match roll {
        0..10 => {
            let mut w = word(rng);
            if rng.chance(300) {
                w.push_str(&rng.range(2, 9).to_string());
            }
            w
        }
        10..40 => format!("{}{}{}", word(rng), sep(rng), word(rng)),
        40..52 => format!("{}{}", word(rng), word(rng)),
        52..70 => {
            let s = sep(rng);
            format!("{}{s}{}{s}{}", word(rng), word(rng), word(rng))
        }
        70..80 => {
            let eco = *rng.pick(ECOSYSTEMS);
            let s = if eco.contains('-') { "-" } else { sep(rng) };
            if rng.chance(300) {
                format!("{eco}{s}{}{s}{}", word(rng), word(rng))
            } else {
                format!("{eco}{s}{}", word(rng))
            }
        }
        80..90 => format!("{}{}{}", word(rng), sep(rng), rng.pick(SUFFIXES)),
        90..95 => {
            let s = sep(rng);
            format!(
                "{}{s}{}{s}{}{s}{}",
                word(rng),
                word(rng),
                word(rng),
                rng.pick(SUFFIXES)
            )
        }
        _ => {
            let mut w = invented(rng);
            if rng.chance(400) {
                w.push_str(sep(rng));
                w.push_str(rng.pick::<&str>(SUFFIXES));
            }
            w
        }
    };
    // A few crates were published in mixed case (`Inflector`, `SDL2-sys`); their index paths are
    // still lowercase but URLs keep the case.
    if rng.chance(5) {
        let first = name[..1].to_ascii_uppercase();
        name.replace_range(..1, &first);
    } else if rng.chance(2) {
        let end = name.find(['-', '_']).unwrap_or(name.len());
        let upper = name[..end].to_ascii_uppercase();
        name.replace_range(..end, &upper);
    }
    name
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use mirror_index::CrateName;

    #[test]
    fn unique_valid_and_varied() {
        let names = super::generate(42, 20_000);
        assert_eq!(names.len(), 20_000);
        let canon: HashSet<String> = names
            .iter()
            .map(|n| n.to_ascii_lowercase().replace('-', "_"))
            .collect();
        assert_eq!(canon.len(), names.len());
        for n in &names {
            CrateName::new(n).expect("valid name");
        }
        for len in 1..=3 {
            assert!(names.iter().any(|n| n.len() == len), "no {len}-letter name");
        }
        assert!(
            names
                .iter()
                .any(|n| n.bytes().any(|b| b.is_ascii_uppercase()))
        );
        assert_eq!(names, super::generate(42, 20_000));
    }
}

//! The workspace's layering, checked by tests against `cargo metadata`: which crate may depend on
//! which, what the core must never pull in, and that ARCHITECTURE.md's picture shows the real
//! graph. Only dependencies that ship count (normal and build); dev-dependencies are free.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use anyhow::{Context as _, bail};

/// Dependency edges, `(from, to)` by package name.
type Edges = BTreeSet<(String, String)>;

/// Third-party packages the core must not reach: no network, git or async runtime. A name also
/// covers its family (`gix` covers `gix-pack`, `tokio` covers `tokio-util`).
const CORE_FORBIDS: &[&str] = &["reqwest", "hyper", "tokio", "gix"];

/// The crates that ship in the product; the testkit and xtask are tooling.
fn is_product(name: &str) -> bool {
    name.starts_with("mirror-") && name != "mirror-testkit"
}

/// The dependency graph of the workspace, by package name.
#[derive(Debug, Default)]
struct Graph {
    /// The workspace members.
    members: BTreeSet<String>,
    /// The members with a library target.
    libraries: BTreeSet<String>,
    /// Non-dev dependencies of every package (members and third-party), direct.
    deps: BTreeMap<String, BTreeSet<String>>,
    /// Edges from a member to an optional dependency that no default feature turns on: absent
    /// from the member's own build, so they do not count against what the member pulls in.
    off_by_default: Edges,
}

impl Graph {
    /// The graph `cargo metadata` describes.
    fn from_metadata(meta: &serde_json::Value) -> anyhow::Result<Graph> {
        let str_of = |v: &serde_json::Value, what: &str| {
            v.as_str()
                .map(str::to_owned)
                .with_context(|| format!("cargo metadata: {what} is not a string"))
        };
        let members: BTreeSet<String> = array(&meta["workspace_members"])?
            .iter()
            .map(|id| str_of(id, "a workspace member id"))
            .collect::<anyhow::Result<_>>()?;
        let mut name_of = BTreeMap::new();
        let mut graph = Graph::default();
        for package in array(&meta["packages"])? {
            let id = str_of(&package["id"], "a package id")?;
            let name = str_of(&package["name"], "a package name")?;
            name_of.insert(id.clone(), name.clone());
            if !members.contains(&id) {
                continue;
            }
            graph.members.insert(name.clone());
            let is_lib = array(&package["targets"])?.iter().any(|target| {
                target["kind"].as_array().is_some_and(|kinds| {
                    kinds
                        .iter()
                        .any(|k| matches!(k.as_str(), Some("lib" | "rlib" | "proc-macro")))
                })
            });
            if is_lib {
                graph.libraries.insert(name.clone());
            }
            let enabled = default_deps(&package["features"]);
            for dep in array(&package["dependencies"])? {
                if dep["kind"].as_str() == Some("dev") {
                    continue;
                }
                let dep_name = str_of(&dep["name"], "a dependency name")?;
                // Path dependencies are members; they count even when nothing enables them.
                if dep["path"].is_string() {
                    graph
                        .deps
                        .entry(name.clone())
                        .or_default()
                        .insert(dep_name.clone());
                }
                let key = dep["rename"].as_str().unwrap_or(&dep_name);
                if dep["optional"].as_bool() == Some(true) && !enabled.contains(key) {
                    graph.off_by_default.insert((name.clone(), dep_name));
                }
            }
        }
        // Resolved edges reach the third-party packages, with the features the workspace turns
        // on (all members at once: more than any one member's build, never less).
        for node in array(&meta["resolve"]["nodes"])? {
            let from = name_of[&str_of(&node["id"], "a resolve node id")?].clone();
            let targets = graph.deps.entry(from).or_default();
            for dep in array(&node["deps"])? {
                let shipped = array(&dep["dep_kinds"])?
                    .iter()
                    .any(|k| k["kind"].as_str() != Some("dev"));
                if shipped {
                    targets.insert(name_of[&str_of(&dep["pkg"], "a resolved package id")?].clone());
                }
            }
        }
        Ok(graph)
    }

    /// Every package `from` reaches through non-dev dependencies, each with the shortest path
    /// to it (`from` first). Edges in `off_by_default` are skipped when `own_build`.
    fn reach(&self, from: &str, own_build: bool) -> BTreeMap<String, Vec<String>> {
        let mut paths = BTreeMap::from([(from.to_owned(), vec![from.to_owned()])]);
        let mut queue = VecDeque::from([from.to_owned()]);
        while let Some(at) = queue.pop_front() {
            for next in self.deps.get(&at).into_iter().flatten() {
                if own_build && self.off_by_default.contains(&(at.clone(), next.clone())) {
                    continue;
                }
                if !paths.contains_key(next) {
                    let mut path = paths[&at].clone();
                    path.push(next.clone());
                    paths.insert(next.clone(), path);
                    queue.push_back(next.clone());
                }
            }
        }
        paths.remove(from);
        paths
    }

    /// The direct non-dev dependencies among members, as ARCHITECTURE.md draws them.
    fn member_edges(&self) -> Edges {
        self.members
            .iter()
            .flat_map(|from| {
                self.deps
                    .get(from)
                    .into_iter()
                    .flatten()
                    .filter(|to| self.members.contains(*to))
                    .map(move |to| (from.clone(), to.clone()))
            })
            .collect()
    }
}

/// Every broken rule, one line each, naming the path that breaks it.
fn violations(graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    let mut forbid = |from: &str, why: &str, bad: &dyn Fn(&str) -> bool, own_build: bool| {
        for (to, path) in graph.reach(from, own_build) {
            if bad(&to) {
                out.push(format!("{}: {why}", path.join(" → ")));
            }
        }
    };
    for from in ["mirror-core", "mirror-index"] {
        forbid(
            from,
            "the core and the index must not depend on mirror-fetch",
            &|to| to == "mirror-fetch",
            false,
        );
    }
    forbid(
        "mirror-state",
        "mirror-state may use only mirror-core of the workspace",
        &|to| graph.members.contains(to) && to != "mirror-core",
        false,
    );
    forbid(
        "mirror-serve",
        "mirror-serve must not depend on mirror-sync",
        &|to| to == "mirror-sync",
        false,
    );
    forbid(
        "mirror-core",
        "mirror-core has no network, git or async runtime dependency",
        &|to| {
            CORE_FORBIDS
                .iter()
                .any(|f| to == *f || to.strip_prefix(f).is_some_and(|r| r.starts_with('-')))
        },
        true,
    );
    for library in &graph.libraries {
        forbid(
            library,
            "a library must not depend on the binary mirror-cli",
            &|to| to == "mirror-cli",
            false,
        );
    }
    for member in graph.members.iter().filter(|m| is_product(m)) {
        forbid(
            member,
            "a product crate must not depend on mirror-testkit (dev-dependencies may)",
            &|to| to == "mirror-testkit",
            false,
        );
    }
    out
}

/// The edges of ARCHITECTURE.md's picture: the lines `FROM ──► A, B` (or a lone `FROM`) between
/// `<!-- deps -->` and `<!-- /deps -->`. Every member has a line of its own.
fn drawn_edges(doc: &str) -> anyhow::Result<(BTreeSet<String>, Edges)> {
    let start = doc
        .find("<!-- deps -->")
        .context("ARCHITECTURE.md has no <!-- deps --> marker")?;
    let end = doc[start..]
        .find("<!-- /deps -->")
        .context("ARCHITECTURE.md has no <!-- /deps --> marker")?;
    let mut crates = BTreeSet::new();
    let mut edges = BTreeSet::new();
    for line in doc[start..start + end].lines().skip(1) {
        let line = line.trim();
        if line.is_empty() || line.starts_with("```") {
            continue;
        }
        let (from, to) = match line.split_once('►') {
            Some((from, to)) => (from.trim_end_matches(['─', ' ']), to),
            None => (line, ""),
        };
        if from.contains(char::is_whitespace) {
            bail!("ARCHITECTURE.md: cannot read the dependency line {line:?}");
        }
        crates.insert(from.to_owned());
        for dep in to.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            edges.insert((from.to_owned(), dep.to_owned()));
        }
    }
    Ok((crates, edges))
}

/// The names of the dependencies a member's default features turn on (`dep:x`, `x`, `x/f`,
/// `x?/f`, through other features).
fn default_deps(features: &serde_json::Value) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec!["default".to_owned()];
    let mut deps = BTreeSet::new();
    while let Some(feature) = todo.pop() {
        if !seen.insert(feature.clone()) {
            continue;
        }
        for item in features[&feature].as_array().into_iter().flatten() {
            let Some(item) = item.as_str() else { continue };
            if let Some(dep) = item.strip_prefix("dep:") {
                deps.insert(dep.to_owned());
            } else if let Some((dep, _)) = item.split_once('/') {
                if !dep.ends_with('?') {
                    deps.insert(dep.to_owned());
                }
            } else if features.get(item).is_some() {
                todo.push(item.to_owned());
            } else {
                deps.insert(item.to_owned());
            }
        }
    }
    deps
}

fn array(v: &serde_json::Value) -> anyhow::Result<&Vec<serde_json::Value>> {
    v.as_array()
        .with_context(|| format!("cargo metadata: expected an array, found {v}"))
}

/// The workspace as `cargo metadata` describes it for this machine's platform: offline, the lock
/// file and the sources already downloaded are enough (other platforms' packages are not there).
fn metadata() -> anyhow::Result<Graph> {
    let root = crate::common::workspace_root();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .context("rustc -vV names no host")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", host, "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let meta = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    Graph::from_metadata(&meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace today, and the names of its members.
    const MEMBERS: &[&str] = &[
        "mirror-core",
        "mirror-index",
        "mirror-fetch",
        "mirror-store",
        "mirror-state",
        "mirror-sync",
        "mirror-serve",
        "mirror-cli",
        "mirror-testkit",
        "xtask",
    ];

    /// A graph of `edges`: members as in [`MEMBERS`], all libraries but the two binaries.
    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph {
            members: MEMBERS.iter().map(|m| (*m).to_owned()).collect(),
            ..Graph::default()
        };
        g.libraries = g
            .members
            .iter()
            .filter(|m| !matches!(m.as_str(), "mirror-cli" | "xtask"))
            .cloned()
            .collect();
        for (from, to) in edges {
            g.deps
                .entry((*from).to_owned())
                .or_default()
                .insert((*to).to_owned());
        }
        g
    }

    /// A layering that keeps every rule, shaped like the real one.
    const GOOD: &[(&str, &str)] = &[
        ("mirror-core", "sha2"),
        ("mirror-index", "mirror-core"),
        ("mirror-index", "gix"),
        ("mirror-fetch", "mirror-index"),
        ("mirror-fetch", "reqwest"),
        ("reqwest", "hyper"),
        ("mirror-state", "mirror-core"),
        ("mirror-store", "mirror-core"),
        ("mirror-sync", "mirror-fetch"),
        ("mirror-sync", "mirror-state"),
        ("mirror-serve", "mirror-index"),
        ("mirror-cli", "mirror-sync"),
        ("mirror-cli", "mirror-serve"),
        ("mirror-testkit", "mirror-index"),
        ("xtask", "mirror-testkit"),
        ("xtask", "mirror-sync"),
    ];

    fn check(extra: &[(&str, &str)], expect: &[&str]) {
        let edges: Vec<_> = GOOD.iter().chain(extra).copied().collect();
        assert_eq!(violations(&graph(&edges)), expect, "with {extra:?}");
    }

    #[test]
    fn a_good_layering_passes() {
        check(&[], &[]);
    }

    #[test]
    fn each_forbidden_edge_is_named_with_its_path() {
        check(
            &[("mirror-core", "mirror-fetch")],
            &[
                // Everything above the core now reaches the fetcher, and through it the core
                // reaches the network and git too.
                "mirror-core → mirror-fetch: the core and the index must not depend on mirror-fetch",
                "mirror-index → mirror-core → mirror-fetch: the core and the index must not depend on mirror-fetch",
                "mirror-state → mirror-core → mirror-fetch: mirror-state may use only mirror-core of the workspace",
                "mirror-state → mirror-core → mirror-fetch → mirror-index: mirror-state may use only mirror-core of the workspace",
                "mirror-core → mirror-fetch → mirror-index → gix: mirror-core has no network, git or async runtime dependency",
                "mirror-core → mirror-fetch → reqwest → hyper: mirror-core has no network, git or async runtime dependency",
                "mirror-core → mirror-fetch → reqwest: mirror-core has no network, git or async runtime dependency",
            ],
        );
        check(
            &[
                ("mirror-store", "mirror-fetch"),
                ("mirror-index", "mirror-store"),
            ],
            &[
                "mirror-index → mirror-store → mirror-fetch: the core and the index must not depend on mirror-fetch",
            ],
        );
        check(
            &[("mirror-state", "mirror-index")],
            &[
                "mirror-state → mirror-index: mirror-state may use only mirror-core of the workspace",
            ],
        );
        check(
            &[("mirror-state", "mirror-store")],
            &[
                "mirror-state → mirror-store: mirror-state may use only mirror-core of the workspace",
            ],
        );
        check(
            &[("mirror-serve", "mirror-sync")],
            &["mirror-serve → mirror-sync: mirror-serve must not depend on mirror-sync"],
        );
        check(
            &[("mirror-testkit", "mirror-cli")],
            &["mirror-testkit → mirror-cli: a library must not depend on the binary mirror-cli"],
        );
        check(
            &[("mirror-store", "mirror-testkit")],
            &[
                "mirror-store → mirror-testkit: a product crate must not depend on mirror-testkit (dev-dependencies may)",
            ],
        );
        check(
            &[("mirror-core", "tokio-util")],
            &[
                "mirror-core → tokio-util: mirror-core has no network, git or async runtime dependency",
            ],
        );
        check(
            &[("mirror-core", "serde"), ("serde", "tokio")],
            &[
                "mirror-core → serde → tokio: mirror-core has no network, git or async runtime dependency",
            ],
        );
    }

    #[test]
    fn only_a_default_off_optional_dependency_leaves_the_core_light() {
        let mut g = graph(&[("mirror-core", "tokio")]);
        assert_eq!(
            violations(&g),
            ["mirror-core → tokio: mirror-core has no network, git or async runtime dependency"]
        );
        g.off_by_default
            .insert(("mirror-core".to_owned(), "tokio".to_owned()));
        assert_eq!(violations(&g), Vec::<String>::new());
    }

    #[test]
    fn default_features_name_the_dependencies_they_enable() {
        let features = serde_json::json!({
            "default": ["std", "dep:a"],
            "std": ["b/std", "c?/std", "d"],
            "extra": ["e"],
        });
        let want: BTreeSet<String> = ["a", "b", "d"].map(str::to_owned).into();
        assert_eq!(default_deps(&features), want);
        assert!(default_deps(&serde_json::json!({"tokio": ["dep:tokio"]})).is_empty());
    }

    #[test]
    fn the_workspace_keeps_its_layering() {
        let g = metadata().expect("cargo metadata describes the workspace");
        let names: BTreeSet<&str> = g.members.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            MEMBERS.iter().copied().collect(),
            "the members changed"
        );
        assert_eq!(violations(&g), Vec::<String>::new());
    }

    #[test]
    fn the_architecture_picture_matches_cargo_metadata() {
        let g = metadata().expect("cargo metadata describes the workspace");
        let path = crate::common::workspace_root().join("ARCHITECTURE.md");
        let doc = std::fs::read_to_string(&path).expect("ARCHITECTURE.md is readable");
        let (crates, drawn) = drawn_edges(&doc).expect("ARCHITECTURE.md has its picture");
        assert_eq!(
            crates, g.members,
            "every member has its own line in the picture"
        );
        let real = g.member_edges();
        let missing: Vec<_> = real.difference(&drawn).collect();
        let extra: Vec<_> = drawn.difference(&real).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "ARCHITECTURE.md's picture is stale: add {missing:?}, remove {extra:?}"
        );
    }

    #[test]
    fn the_picture_is_read_line_by_line() {
        let doc = "x\n<!-- deps -->\n```\na ──► b, c\nb ─► c\nc\n```\n<!-- /deps -->\nd ──► a\n";
        let (crates, edges) = drawn_edges(doc).expect("a readable picture");
        assert_eq!(crates, ["a", "b", "c"].map(str::to_owned).into());
        let want: Edges = [("a", "b"), ("a", "c"), ("b", "c")]
            .map(|(f, t)| (f.to_owned(), t.to_owned()))
            .into();
        assert_eq!(edges, want);
        assert!(drawn_edges("<!-- deps -->\na b ──► c\n<!-- /deps -->").is_err());
    }
}

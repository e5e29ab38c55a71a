//! The deployment recipes in `dist/`: the systemd units pass `systemd-analyze verify`, every
//! `mirror-cli` command line in them (units, cron, Containerfile) is accepted by this build's
//! parser, and the Containerfile, which CI cannot build, has the shape docs/deploy.md promises.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the units, the cron line and the Containerfile run the binary from.
const INSTALLED: &str = "/usr/local/bin/mirror-cli";

/// The systemd units shipped in `dist/`: all of them, so a new one cannot escape verification.
const UNITS: &[&str] = &[
    "mirror-cli-serve.service",
    "mirror-cli-sync.service",
    "mirror-cli-sync.timer",
];

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist")
}

fn read(name: &str) -> String {
    let path = dist().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Copies the units into `dir` with the binary path replaced by this build's binary (verify checks
/// that `ExecStart=` is executable) and runs `systemd-analyze verify` on them. Returns the lines of
/// its output that name one of our units: on a clean unit it prints nothing, and it exits 0 even
/// for unknown keys or unparsable values (it only logs them), so the output is what counts.
fn verify_units(dir: &Path, edit: impl Fn(&str, String) -> String) -> Vec<String> {
    let mut paths = Vec::new();
    for name in UNITS {
        let text = read(name).replace(INSTALLED, env!("CARGO_BIN_EXE_mirror-cli"));
        let path = dir.join(name);
        std::fs::write(&path, edit(name, text)).unwrap();
        paths.push(path);
    }
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run systemd-analyze ({e}): install systemd (apt-get install systemd) to check the units in dist/"
        ),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Vec<String> = text
        .lines()
        .filter(|line| UNITS.iter().any(|unit| line.contains(unit)))
        .map(str::to_owned)
        .collect();
    // A failure with nothing said about our units (systemd-analyze itself broken) must not pass.
    assert!(
        out.status.success() || !ours.is_empty(),
        "systemd-analyze verify failed: {}\n{text}",
        out.status
    );
    ours
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let complaints = verify_units(dir.path(), |_, text| text);
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify complains about the units in dist/:\n{}",
        complaints.join("\n")
    );

    // The same check on units spoiled two ways, so that a verify that stopped reporting (or a
    // filter that stopped matching its lines) would not let everything pass.
    let spoiled = tempfile::tempdir().unwrap();
    let missing = spoiled.path().join("no-such-binary");
    let missing = missing.to_str().unwrap();
    let complaints = verify_units(spoiled.path(), |name, text| match name {
        "mirror-cli-sync.service" => text.replace("ProtectSystem=strict", "ProtectSystem=bogus"),
        "mirror-cli-serve.service" => text.replace(env!("CARGO_BIN_EXE_mirror-cli"), missing),
        _ => text,
    });
    assert_eq!(complaints.len(), 2, "{complaints:#?}");
    assert!(
        complaints
            .iter()
            .any(|l| l.contains("mirror-cli-serve.service") && l.contains(missing)),
        "{complaints:#?}"
    );
    assert!(
        complaints
            .iter()
            .any(|l| l.contains("mirror-cli-sync.service") && l.contains("bogus")),
        "{complaints:#?}"
    );
}

/// The arguments after `mirror-cli` on each `ExecStart=` line of a unit.
fn exec_start_args(unit: &str) -> Vec<Vec<String>> {
    read(unit)
        .lines()
        .filter_map(|line| line.strip_prefix("ExecStart="))
        .map(|command| {
            // Split on blanks, as systemd does for a line with no quotes or specifiers.
            assert!(
                !command.contains(['"', '\'', '%', '$', '\\']),
                "{unit}: ExecStart= uses quoting, specifiers or variables; teach this test to read them: {command}"
            );
            let mut words = command.split_whitespace().map(str::to_owned);
            assert_eq!(words.next().as_deref(), Some(INSTALLED), "{unit}: {command}");
            words.collect()
        })
        .collect()
}

/// The arguments after `mirror-cli` in each cron job line, up to the first shell operator or
/// redirection.
fn cron_args(file: &str) -> Vec<Vec<String>> {
    read(file)
        .lines()
        .filter(|line| line.contains(INSTALLED) && !line.trim_start().starts_with('#'))
        .map(|line| {
            let (_, command) = line.split_once(INSTALLED).unwrap();
            command
                .split_whitespace()
                .take_while(|word| {
                    !["|", "||", "&&", ";", "&"].contains(word)
                        && !word.starts_with(['>', '<'])
                        && !word.starts_with("2>")
                })
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The JSON (exec) form of a Containerfile instruction of the final stage.
fn container_array(containerfile: &str, instruction: &str) -> Vec<String> {
    let final_stage = containerfile.rsplit("\nFROM ").next().unwrap();
    let line = final_stage
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("the Containerfile's last stage has no {instruction}"));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{instruction} is not a JSON array ({e}): {line}"))
}

/// Whether clap accepts `args`: the same command line with `--help` after it prints the
/// subcommand's help only when every flag before it exists and every value parses.
fn parses(args: &[String]) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_mirror-cli"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    let usage = format!("Usage: mirror-cli {}", args[0]);
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&usage) {
        Ok(())
    } else {
        Err(format!(
            "mirror-cli {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn every_command_line_in_dist_parses() {
    let containerfile = read("Containerfile");
    assert_eq!(container_array(&containerfile, "ENTRYPOINT"), [INSTALLED]);
    let found = [
        (
            "mirror-cli-sync.service",
            "sync",
            exec_start_args("mirror-cli-sync.service"),
        ),
        (
            "mirror-cli-serve.service",
            "serve",
            exec_start_args("mirror-cli-serve.service"),
        ),
        ("mirror-cli.cron", "sync", cron_args("mirror-cli.cron")),
        (
            "Containerfile",
            "serve",
            vec![container_array(&containerfile, "CMD")],
        ),
    ];
    for (file, subcommand, lines) in &found {
        assert_eq!(
            lines.len(),
            1,
            "{file}: one mirror-cli command line expected: {lines:?}"
        );
        let args = &lines[0];
        assert_eq!(args[0], *subcommand, "{file}: {args:?}");
        assert!(args.len() > 1, "{file}: no flags read from {args:?}");
        if let Err(e) = parses(args) {
            panic!("{file} runs a command line this mirror-cli refuses: {e}");
        }
    }

    // What the check catches: a flag that does not exist, and a value that does not parse.
    let sync = &found[0].2[0];
    let refused = |extra: &[&str]| {
        let mut args = sync.clone();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        parses(&args).is_err()
    };
    assert!(refused(&["--no-such-flag"]));
    assert!(refused(&["--jobs", "0"]));
}

#[test]
fn containerfile_has_two_stages_a_non_root_user_and_volumes() {
    let text = read("Containerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );

    // The build stage: the official Rust image at the toolchain rust-toolchain.toml pins.
    let toolchain = std::fs::read_to_string(dist().join("../rust-toolchain.toml")).unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    let build_image = format!("FROM docker.io/library/rust:{channel}-");
    assert!(
        froms[0].starts_with(&build_image) && froms[0].ends_with(" AS build"),
        "the build stage is not `{build_image}… AS build`: {}",
        froms[0]
    );
    let (build, runtime) = text.split_once(froms[1]).unwrap();
    assert!(build.contains("RUN cargo build --release --locked -p mirror-cli\n"));

    // The runtime stage: slim Debian, the binary from the build stage, not root, two volumes,
    // the port CMD listens on exposed.
    assert!(
        froms[1].starts_with("FROM docker.io/library/debian:") && froms[1].ends_with("-slim"),
        "{}",
        froms[1]
    );
    assert!(runtime.contains(&format!(
        "COPY --from=build /src/target/release/mirror-cli {INSTALLED}\n"
    )));
    let users: Vec<&str> = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .collect();
    assert_eq!(users.len(), 1, "{users:?}");
    let user = users[0].split(':').next().unwrap();
    assert!(
        !["root", "0", ""].contains(&user),
        "the runtime stage runs as root: USER {}",
        users[0]
    );
    assert_eq!(
        container_array(&text, "VOLUME"),
        ["/var/lib/mirror-cli", "/var/cache/mirror-cli"]
    );
    let cmd = container_array(&text, "CMD");
    let addr = cmd
        .iter()
        .position(|a| a == "--addr")
        .map(|i| &cmd[i + 1])
        .unwrap();
    let port = addr.rsplit(':').next().unwrap();
    assert!(
        runtime.lines().any(|l| l == format!("EXPOSE {port}")),
        "CMD listens on {addr}, but that port is not exposed"
    );
}

//! Command lines refused before anything runs, and how errors are printed.

use crate::{run, stderr};

/// `--threads` is bounded like `--jobs`: a huge value once started tens of thousands of threads
/// and made the process deaf to SIGTERM. Every command that takes it refuses it with clap's
/// error (exit 2) before doing anything.
#[test]
fn threads_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("mirror");
    let dest = dest.to_str().unwrap();
    for command in ["sync", "verify", "publish"] {
        let out = run(
            tmp.path(),
            &[command, "--dest", dest, "--threads", "100000"],
        );
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains("invalid value '100000' for '--threads <N>': 100000 is not in 0..=256"),
            "{command}: {text}"
        );
        assert!(!tmp.path().join("mirror").exists(), "{command} ran");
    }
}

/// Each cause of an error is printed once: the library errors carry their cause in their own
/// message, and printing the chain under it said it twice ("File exists (os error 17): File
/// exists (os error 17)").
#[test]
fn an_error_chain_names_each_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let file = file.to_str().unwrap();
    let mut errors = String::new();
    for dest in [file.to_owned(), format!("{file}/mirror")] {
        let out = run(tmp.path(), &["sync", "--dest", &dest, "--index", file]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        errors.push_str(&stderr(&out));
    }
    insta::with_settings!({filters => vec![(regex_path(tmp.path()), "[TMP]")]}, {
        insta::assert_snapshot!(errors);
    });
}

fn regex_path(path: &std::path::Path) -> &'static str {
    let escaped: String = path
        .to_str()
        .unwrap()
        .chars()
        .flat_map(|c| {
            let escape = !c.is_alphanumeric() && c != '/';
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect();
    Box::leak(escaped.into_boxed_str())
}

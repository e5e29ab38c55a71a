//! Index paths: where a crate's index file lives, by the registry's lowercase sharding rule.

use crate::CrateName;

/// The directory part of a crate's index path, in the name's own case:
/// `1`, `2`, `3/{first char}`, or `{first two}/{next two}`.
///
/// This is what the `{prefix}` marker of a `dl` template expands to; lowercase it for `{lowerprefix}`.
///
/// ```
/// use mirror_core::{index_prefix, CrateName};
/// let p = |n: &str| index_prefix(&n.parse::<CrateName>().unwrap());
/// assert_eq!(p("a"), "1");
/// assert_eq!(p("ab"), "2");
/// assert_eq!(p("Abc"), "3/A");
/// assert_eq!(p("Serde"), "Se/rd");
/// ```
pub fn index_prefix(name: &CrateName) -> String {
    prefix_of(name.as_str())
}

fn prefix_of(name: &str) -> String {
    match name.len() {
        1 => "1".to_owned(),
        2 => "2".to_owned(),
        3 => format!("3/{}", &name[..1]),
        _ => format!("{}/{}", &name[..2], &name[2..4]),
    }
}

/// The path of a crate's index file relative to the index root, all lowercase.
///
/// ```
/// use mirror_core::{index_path, CrateName};
/// assert_eq!(index_path(&"Serde_JSON".parse::<CrateName>().unwrap()), "se/rd/serde_json");
/// ```
pub fn index_path(name: &CrateName) -> String {
    let lower = name.to_lowercase();
    let mut path = prefix_of(&lower);
    path.push('/');
    path.push_str(&lower);
    path
}

/// If `path` (relative, `/`-separated) is where an index file belongs, the lowercase crate name it
/// holds. Used to tell index files from anything else a checkout may hold.
pub fn name_of_index_path(path: &str) -> Option<&str> {
    let (dir, file) = path.rsplit_once('/')?;
    crate::name::check_name(file).ok()?;
    let lower = file.to_ascii_lowercase();
    (file == lower && prefix_of(file) == dir).then_some(file)
}

//! Architecture fitness: the layout rules of the code base, checked on every
//! test run (see docs/ARCHITECTURE.md):
//!
//! * no source file under `crates/*/src` is over 1,000 lines;
//! * no two source files of one crate import each other.
//!
//! "Imports" are the paths a file names that start with `crate::`,
//! `super::` or `self::` — in `use` declarations (groups expanded) and in
//! code (`super::x::f()`) — resolved to the module file they reach. Comments,
//! string literals and `#[cfg(test)] mod … { … }` blocks do not count.
//! A `mod.rs` re-exporting its children by relative path (`pub use
//! child::Item`) is not an import of the child, so children may use what
//! their parent re-exports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 1_000;

/// `crates/*/src` of the workspace, by crate directory name.
fn crate_sources() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").join("crates");
    let mut out: Vec<_> = fs::read_dir(&root)
        .expect("crates/")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join("src").is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p.join("src")))
        .collect();
    out.sort();
    assert!(out.len() >= 5, "found the crates: {out:?}");
    out
}

/// Every `.rs` file under `dir` (`src/bin` targets are crates of their own
/// and are left out).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_a_thousand_lines() {
    let mut offenders = Vec::new();
    for (name, src) in crate_sources() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let lines = fs::read_to_string(&f).expect("a source file").lines().count();
            if lines > MAX_LINES {
                offenders.push(format!("{name}: {} has {lines} lines", f.strip_prefix(&src).unwrap().display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "files over {MAX_LINES} lines (split them by responsibility):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_two_files_of_a_crate_import_each_other() {
    let mut offenders = Vec::new();
    for (name, src) in crate_sources() {
        for (a, b) in mutual_imports(&src) {
            offenders.push(format!("{name}: src/{a} <-> src/{b}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "files that import each other (move what both need into a third file):\n{}",
        offenders.join("\n")
    );
}

/// The pairs of files of the crate in `src` that import each other, as
/// paths relative to `src`.
fn mutual_imports(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // Module path -> file.
    let mut modules: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
            parts.pop();
        }
        modules.insert(parts, f.strip_prefix(src).unwrap().to_string_lossy().into_owned());
    }
    let mut edges = BTreeSet::new();
    for (module, file) in &modules {
        let text = without_tests(&strip_comments_and_strings(&fs::read_to_string(src.join(file)).unwrap()));
        for path in referenced_paths(&text) {
            let Some(absolute) = resolve(&path, module) else { continue };
            // The deepest module the path reaches.
            let target = (0..=absolute.len()).rev().find_map(|n| modules.get(&absolute[..n]));
            if let Some(target) = target
                && target != file
            {
                edges.insert((file.clone(), target.clone()));
            }
        }
    }
    edges.iter().filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone()))).cloned().collect()
}

/// `path` (starting with `crate`, `self` or `super`) as a path from the
/// crate root, seen from `module`; `None` for any other path.
fn resolve(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" | "super" => module.to_vec(),
        _ => return None,
    };
    let mut rest = rest;
    if first == "super" {
        base.pop()?;
    }
    while let Some((s, tail)) = rest.split_first()
        && s == "super"
    {
        base.pop()?;
        rest = tail;
    }
    base.extend(rest.iter().filter(|s| *s != "*" && *s != "self").cloned());
    Some(base)
}

/// Every path a file names from `crate`, `self` or `super`: the leaves of
/// its `use` trees, and the qualified paths in its code.
fn referenced_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut code = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = find_word(rest, "use") {
        code.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let end = after.find(';').unwrap_or(after.len());
        expand_use_tree(after[..end].trim(), &[], &mut out);
        rest = &after[(end + 1).min(after.len())..];
    }
    code.push_str(rest);
    for start in ["crate", "super", "self"] {
        let mut from = 0;
        while let Some(i) = find_word(&code[from..], start) {
            let at = from + i;
            let tail = &code[at..];
            let len = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
            let segments: Vec<String> = tail[..len].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
            if tail[..len].contains("::") {
                out.push(segments);
            }
            from = at + len.max(start.len());
        }
    }
    out
}

/// The byte offset of `word` in `s` as a whole word.
fn find_word(s: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = s[from..].find(word) {
        let at = from + i;
        let before = s[..at].chars().next_back();
        let after = s[at + word.len()..].chars().next();
        if !before.is_some_and(ident) && !after.is_some_and(ident) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// The paths a `use` tree names (`a::{b, c::{d, e as f}, self}` gives
/// `a::b`, `a::c::d`, `a::c::e`, `a`).
fn expand_use_tree(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let mut base = prefix.to_vec();
        base.extend(segments(&tree[..open]));
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        for part in split_top_level(inner) {
            expand_use_tree(part, &base, out);
        }
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap_or(tree);
        let mut full = prefix.to_vec();
        full.extend(segments(path));
        // `a::{self}` names `a`.
        if full.len() > 1 && full.last().is_some_and(|s| s == "self") {
            full.pop();
        }
        out.push(full);
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// `s` split at the commas outside braces.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0usize, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The source with comments removed and string and character literals
/// emptied (lifetimes kept).
fn strip_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#')) && !prev_is_ident(b, i) => {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                let body = i + 2 + hashes;
                let end = b[body..].windows(close.len()).position(|w| w == close).map_or(b.len(), |p| body + p);
                out.push_str("\"\"");
                i = end + close.len();
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push_str("\"\"");
                i += 1;
            }
            b'\'' => {
                // A character literal ('x', '\n', '\u{..}'), or a lifetime.
                let end = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..].iter().position(|&c| c == b'\'').map(|p| i + 2 + p)
                } else {
                    let ch = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (b.get(i + 1 + ch) == Some(&b'\'')).then_some(i + 1 + ch)
                };
                match end {
                    Some(e) => {
                        out.push_str("' '");
                        i = e + 1;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            _ => {
                let ch = src[i..].chars().next().expect("a character");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// The source without its `#[cfg(test)] mod name { … }` blocks (run on
/// stripped source, so braces in strings and comments are gone).
fn without_tests(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "#[cfg(test)]".len()..];
        let item = after.trim_start();
        let is_inline_mod =
            item.starts_with("mod ") && item.find(['{', ';']).is_some_and(|j| item.as_bytes()[j] == b'{');
        if !is_inline_mod {
            rest = after;
            continue;
        }
        let open = after.find('{').expect("an inline module");
        let mut depth = 0usize;
        let mut end = after.len();
        for (j, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_checker_finds_what_it_should() {
    let src = r#"
        use super::{machine::{A, B as C}, strategy, self};
        pub(crate) use crate::engine::*;
        // use crate::in_a_comment;
        /* use crate::in_a_block; */
        fn f() -> &'static str { let _ = super::super::x::y(); let c = '{'; "use crate::in_a_string;" }
        #[cfg(test)]
        mod tests { use super::*; use crate::only_in_tests; }
    "#;
    let text = without_tests(&strip_comments_and_strings(src));
    let mut paths: Vec<String> = referenced_paths(&text).iter().map(|p| p.join("::")).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "crate::engine::*",
            "super",
            "super::machine::A",
            "super::machine::B",
            "super::strategy",
            "super::super::x::y"
        ]
    );
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(resolve(&m("super::shared::lock"), &m("engine::run")), Some(m("engine::shared::lock")));
    assert_eq!(resolve(&m("super::x"), &m("engine")), Some(m("x")));
    assert_eq!(resolve(&m("self::x"), &m("engine")), Some(m("engine::x")));
    assert_eq!(resolve(&m("crate::a::*"), &m("b")), Some(m("a")));
    assert_eq!(resolve(&m("rekey_core::a"), &m("b")), None);
}

#[test]
fn a_cycle_between_two_files_is_found() {
    let dir = std::env::temp_dir().join(format!("rekey-layout-{}", std::process::id()));
    fs::create_dir_all(dir.join("engine")).unwrap();
    fs::write(dir.join("lib.rs"), "pub mod engine;\n").unwrap();
    fs::write(dir.join("engine/mod.rs"), "mod machine;\nmod staged;\npub use machine::State;\n").unwrap();
    fs::write(dir.join("engine/machine.rs"), "use super::staged;\npub struct State;\n").unwrap();
    fs::write(dir.join("engine/staged.rs"), "pub fn next(s: &crate::engine::machine::State) {}\n").unwrap();
    let found = mutual_imports(&dir);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found, [("engine/machine.rs".to_owned(), "engine/staged.rs".to_owned())]);
}

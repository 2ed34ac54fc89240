//! The module map as code. Reads every file under `src/` (plain Rust, nothing of the crate is
//! run) and fails when a module names one it must never depend on: a module may use the layers
//! below its own, a module beside it only where the table says so, and never one the table
//! forbids outright. README's layout section shows the same map.
//!
//! What counts as a use: a path `crate::NAME…`, or `super::…` climbing to the crate root and
//! then naming `NAME`, anywhere outside comments and string literals — `use` lines, types in
//! signatures and calls written in full alike, test modules included. The binary's own files
//! (`main.rs`, `cli/`) are the top of the house and are not checked.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layers, bottom (0) to top.
const MODEL: u8 = 0;
const LEAF: u8 = 1;
const PURE: u8 = 2;
const PERSISTENCE: u8 = 3;
const NETWORK: u8 = 4;
const EDGES: u8 = 5;
const ACTIONS: u8 = 6;
const USE_CASES: u8 = 7;
const FACE: u8 = 8;

/// Every top-level module of the library: (name, layer, modules beside it that it may use,
/// modules it must never use whatever their layer). A new module must be placed here.
const MAP: &[(&str, u8, &[&str], &[&str])] = &[
    // The shared vocabulary: facts, rows, statuses, severities, finding kinds.
    ("model", MODEL, &[], &[]),
    // YAML types and their pure validation; cron schedules; secret references.
    ("config", LEAF, &[], &[]),
    // DER/PEM/PKCS#7/PKCS#12/JKS → facts, signature verification. No I/O.
    ("x509", PURE, &[], &[]),
    // The chain of small named checks.
    ("policy", PURE, &[], &["store", "sources", "notify", "daemon"]),
    // Every SQL statement; rows are model types.
    ("store", PERSISTENCE, &[], &["notify", "policy", "sources", "config"]),
    // The crypto provider and the Kubernetes connection.
    ("net", NETWORK, &[], &[]),
    // Where certificates are found. Sources read the pure OCSP decoding of `revocation` to
    // judge a stapled response.
    ("sources", EDGES, &["revocation"], &["notify", "policy", "store"]),
    ("revocation", EDGES, &[], &["notify", "policy"]),
    ("notify", EDGES, &[], &["sources", "daemon"]),
    // ACME, atomic install targets, the renewal decision and its journalled order.
    ("install", ACTIONS, &[], &["daemon"]),
    ("issuers", ACTIONS, &["install"], &["daemon"]),
    ("renewal", ACTIONS, &["install", "issuers"], &["daemon"]),
    // One function per thing a user asks for, shared by the CLI and the daemon.
    ("app", USE_CASES, &[], &["daemon"]),
    // Wiring, the job loop, systemd, HTTP.
    ("daemon", FACE, &[], &[]),
];

struct Use {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
}

/// The crate-level modules a file's code names, with their lines. `module_path` is the file's
/// module path inside the crate (`["config", "sources", "vault"]`).
fn uses(module_path: &[String], code: &str) -> Vec<(usize, String)> {
    let code = strip_comments_and_strings(code);
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    // Inline modules (`mod tests { … }`) open at these brace depths: each adds a level that a
    // `super` climbs first.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => braces += 1,
            b'}' => {
                braces = braces.saturating_sub(1);
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
            }
            _ => {}
        }
        // A path starts at a word boundary.
        if i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == b':') {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        if let Some(after) = rest.strip_prefix("mod ") {
            let name = first_ident(after.trim_start()).unwrap_or("");
            if !name.is_empty() && after.trim_start()[name.len()..].trim_start().starts_with('{') {
                inline_mods.push(braces);
            }
        }
        let target = if let Some(after) = rest.strip_prefix("crate::") {
            first_ident(after)
        } else if rest.starts_with("super::") {
            // `super` from a.rs (module a) reaches the root at once; from a/b.rs (a::b) the
            // second `super` does. A `mod tests` inside a file adds one level.
            let mut depth = module_path.len() + inline_mods.len();
            let mut after = rest;
            let mut target = None;
            while let Some(a) = after.strip_prefix("super::") {
                after = a;
                depth = depth.saturating_sub(1);
                if depth == 0 && !after.starts_with("super::") {
                    target = first_ident(after);
                    break;
                }
            }
            target
        } else {
            None
        };
        if let Some(t) = target {
            let line = code[..i].matches('\n').count() + 1;
            out.push((line, t.to_string()));
        }
        i += 1;
    }
    out
}

fn first_ident(s: &str) -> Option<&str> {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    (end > 0).then(|| &s[..end]).filter(|t| *t != "self" && *t != "super")
}

/// Blanks comments, string and byte-string literals (raw ones included) and char literals,
/// keeping newlines so line numbers hold.
fn strip_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            let end = src[i..].find('\n').map_or(b.len(), |e| i + e);
            blank(&mut out, &b[i..end]);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let end = src[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            blank(&mut out, &b[i..end]);
            i = end;
        } else if let Some(hashes) = raw_string_start(&b[i..]) {
            let open = i + hashes.0;
            let close = format!("\"{}", "#".repeat(hashes.1));
            let end = src[open..].find(&close).map_or(b.len(), |e| open + e + close.len());
            blank(&mut out, &b[i..end]);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            blank(&mut out, &b[i..end]);
            i = end;
        } else if b[i] == b'\'' && char_literal_len(&b[i..]).is_some() {
            let n = char_literal_len(&b[i..]).unwrap_or(1);
            blank(&mut out, &b[i..i + n]);
            i += n;
        } else {
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `r"`, `r#"`, `br##"` …: (bytes up to and including the quote, number of hashes).
fn raw_string_start(b: &[u8]) -> Option<(usize, usize)> {
    let mut j = 0;
    if b.first() == Some(&b'b') {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    (b.get(j) == Some(&b'"')).then_some((j + 1, hashes))
}

/// Length of a char literal (`'a'`, `'\n'`, `'\u{1F600}'`) starting here; `None` for a
/// lifetime.
fn char_literal_len(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'\\') {
        let end = b[2..].iter().position(|&c| c == b'\'')?;
        return Some(end + 3);
    }
    let s = std::str::from_utf8(&b[1..b.len().min(6)]).ok().or_else(|| std::str::from_utf8(&b[1..b.len().min(5)]).ok())?;
    let c = s.chars().next()?;
    (b.get(1 + c.len_utf8()) == Some(&b'\'')).then_some(2 + c.len_utf8())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read dir").map(|e| e.expect("dir entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/`: `config/sources/vault.rs` → config::sources::vault,
/// `config/mod.rs` → config.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// Every use in `src/` that the map forbids, and every module the map does not place.
fn violations(src: &Path) -> (Vec<Use>, Vec<String>) {
    let map: BTreeMap<&str, (u8, &[&str], &[&str])> = MAP.iter().map(|(n, l, beside, never)| (*n, (*l, *beside, *never))).collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut bad = Vec::new();
    let mut unplaced = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src").to_path_buf();
        let path = module_path(&rel);
        let Some(top) = path.first().cloned() else { continue };
        if matches!(top.as_str(), "main" | "cli" | "lib") {
            continue;
        }
        let Some(&(layer, beside, never)) = map.get(top.as_str()) else {
            unplaced.push(top);
            continue;
        };
        let code = std::fs::read_to_string(&file).expect("read source");
        for (line, to) in uses(&path, &code) {
            if to == top {
                continue;
            }
            let allowed = match map.get(to.as_str()) {
                None => false,
                Some(&(to_layer, _, _)) => {
                    !never.contains(&to.as_str()) && (to_layer < layer || (to_layer == layer && beside.contains(&to.as_str())))
                }
            };
            if !allowed {
                bad.push(Use { file: rel.clone(), line, from: top.clone(), to });
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    (bad, unplaced)
}

#[test]
fn every_module_uses_only_what_the_map_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (bad, unplaced) = violations(&src);
    assert!(unplaced.is_empty(), "modules the map does not place (add them to MAP): {unplaced:?}");
    let report: Vec<String> = bad.iter().map(|u| format!("src/{}:{}: {} uses {}", u.file.display(), u.line, u.from, u.to)).collect();
    assert!(report.is_empty(), "{} uses the module map forbids:\n{}", report.len(), report.join("\n"));
}

#[test]
fn the_map_names_every_module_of_the_library_once() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let mut declared: Vec<&str> = lib.lines().filter_map(|l| l.trim().strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')).collect();
    declared.sort();
    let mut mapped: Vec<&str> = MAP.iter().map(|m| m.0).collect();
    mapped.sort();
    assert_eq!(declared, mapped);
}

/// The checker itself: each kind of use is seen, and what is not code is not.
#[test]
fn the_checker_sees_uses_and_ignores_what_is_not_code() {
    let path = |p: &str| module_path(Path::new(p));
    let found = |p: &str, code: &str| -> Vec<String> { uses(&path(p), code).into_iter().map(|u| u.1).collect() };
    assert_eq!(found("config/mod.rs", "use crate::store::Store;"), ["store"]);
    assert_eq!(found("config/mod.rs", "fn f() -> crate::notify::X { todo!() }"), ["notify"]);
    // super from config/sources/vault.rs: one level is config, two reach the root.
    assert_eq!(found("config/sources/vault.rs", "use super::super::DurationSpec;"), Vec::<String>::new());
    assert_eq!(found("config/sources/vault.rs", "use super::super::super::policy::X;"), ["policy"]);
    assert_eq!(found("evaluate.rs", "use super::store::Store;"), ["store"]);
    // Inside an inline module one more `super` is needed, and only there.
    assert_eq!(found("store/keys.rs", "mod tests { use super::super::ScanWriter; }"), Vec::<String>::new());
    assert_eq!(found("store/keys.rs", "mod tests { use super::super::super::notify::X; }"), ["notify"]);
    assert_eq!(found("store/keys.rs", "mod tests { } use super::super::notify::X;"), ["notify"]);
    // Comments, strings, raw strings and char literals are not code; lifetimes are.
    let not_code = "// crate::store\n/* crate::daemon */ let s = \"crate::notify\"; let r = r#\"crate::policy\"#; let c = '\"'; fn f<'a>(x: &'a crate::sources::S) {}";
    assert_eq!(found("config/mod.rs", not_code), ["sources"]);
    assert_eq!(uses(&path("config/mod.rs"), "\n\nuse crate::store::Store;")[0].0, 3);

    // And the rules bite: a store file naming notify is reported, one naming model is not.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    std::fs::write(dir.path().join("store/mod.rs"), "use crate::model::UnixTime;\nuse crate::notify::state::Change;\n").unwrap();
    std::fs::write(dir.path().join("model.rs"), "use crate::x509::cert;\n").unwrap();
    std::fs::write(dir.path().join("wild.rs"), "").unwrap();
    let (bad, unplaced) = violations(dir.path());
    let got: Vec<(String, usize, String)> = bad.iter().map(|u| (u.from.clone(), u.line, u.to.clone())).collect();
    assert_eq!(got, [("model".to_string(), 1, "x509".to_string()), ("store".to_string(), 2, "notify".to_string())]);
    assert_eq!(unplaced, ["wild"]);
}

/// Every SQL statement is in `store/`: no other file of the program names the SQLite crate or
/// reaches for the store's connection.
#[test]
fn sql_stays_in_the_store() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel.starts_with("store") {
            continue;
        }
        let code = strip_comments_and_strings(&std::fs::read_to_string(&file).unwrap());
        for (n, line) in code.lines().enumerate() {
            if line.contains("rusqlite") || line.contains(".conn()") {
                bad.push(format!("src/{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(bad.is_empty(), "SQL outside the store:\n{}", bad.join("\n"));
}

/// One error style: the library's errors are its own types (thiserror, one enum per module);
/// `anyhow` is only at the top, in the binary's `main.rs` and `cli/`.
#[test]
fn anyhow_stays_at_the_top() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel.starts_with("cli") || rel == Path::new("main.rs") {
            continue;
        }
        let code = strip_comments_and_strings(&std::fs::read_to_string(&file).unwrap());
        for (n, line) in code.lines().enumerate() {
            if line.contains("anyhow") {
                bad.push(format!("src/{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(bad.is_empty(), "anyhow inside the library:\n{}", bad.join("\n"));
}

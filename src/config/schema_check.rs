//! Structural check of a YAML tree against the JSON Schema generated from the configuration
//! types. It finds every unknown key, missing key, wrong type and bad enum value in one pass,
//! with positions, where serde alone would stop at the first. The schema is generated from the
//! same types serde deserializes into, so the two cannot disagree about what is allowed.

use super::yaml::{Doc, Kind, Node, ScalarType, parse_int, scalar_type};
use serde_json::Value;

/// One structural problem: where (key path and node) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: Vec<String>,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Checking budget: aliases can make a small file describe a huge tree.
const MAX_VISITS: usize = 500_000;

pub fn check(doc: &Doc, schema: &Value) -> Vec<Issue> {
    let mut c = Checker { doc, root: schema, issues: Vec::new(), visits: 0 };
    if let Some(root) = &doc.root {
        c.node(root, schema, &mut Vec::new());
    }
    c.issues
}

struct Checker<'a> {
    doc: &'a Doc,
    root: &'a Value,
    issues: Vec<Issue>,
    visits: usize,
}

impl<'a> Checker<'a> {
    fn issue(&mut self, path: &[String], n: &Node, message: String) {
        self.issues.push(Issue { path: path.to_vec(), line: n.line, col: n.col, message });
    }

    fn deref(&self, mut s: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match s.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/")) {
                Some(ptr) => match self.root.pointer(&format!("/{ptr}")) {
                    Some(t) => s = t,
                    None => return s,
                },
                None => return s,
            }
        }
        s
    }

    fn node(&mut self, n: &Node, schema: &'a Value, path: &mut Vec<String>) {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            if self.visits == MAX_VISITS + 1 {
                self.issue(path, n, "document too complex to check (alias expansion)".into());
            }
            return;
        }
        let schema = self.deref(schema);
        let n = self.doc.resolve(n);
        if schema.as_bool() == Some(true) || schema.as_object().is_some_and(|o| o.is_empty()) {
            return;
        }
        if let Some(alts) = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array) {
            self.alternatives(n, alts, path);
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.node(n, s, path);
            }
        }
        if !self.type_ok(n, schema, path) {
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            self.enum_ok(n, allowed, path);
        }
        if let Some(c) = schema.get("const") {
            self.enum_ok(n, std::slice::from_ref(c), path);
        }
        match &n.kind {
            Kind::Map(entries) => self.object(n, entries, schema, path),
            Kind::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        path.push(i.to_string());
                        self.node(item, item_schema, path);
                        path.pop();
                    }
                }
            }
            Kind::Scalar { value, plain } => self.numeric_bounds(n, value, *plain, schema, path),
            Kind::Alias(_) => {}
        }
    }

    /// For a tagged union (each alternative fixes `kind`, or another key such as `method`), pick
    /// the alternative by the tag and report against it; otherwise accept the first alternative
    /// that fits without issues.
    fn alternatives(&mut self, n: &Node, alts: &'a [Value], path: &mut Vec<String>) {
        let resolved: Vec<&'a Value> = alts.iter().map(|a| self.deref(a)).collect();
        if let Kind::Map(entries) = &n.kind {
            let tag_in = |s: &Value, key: &str| -> Option<String> {
                let k = s.get("properties")?.get(key)?;
                k.get("const")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| k.get("enum")?.as_array()?.first()?.as_str().map(str::to_string))
            };
            // The tag: `kind`, else a key that every alternative fixes.
            let candidates = resolved.first().and_then(|s| s.get("properties")?.as_object()).map(|p| p.keys().cloned().collect::<Vec<_>>());
            let tag_key = std::iter::once("kind".to_string())
                .chain(candidates.unwrap_or_default())
                .find(|key| resolved.iter().all(|s| tag_in(s, key).is_some()))
                .unwrap_or_else(|| "kind".to_string());
            let tags: Vec<Option<String>> = resolved.iter().map(|s| tag_in(s, &tag_key)).collect();
            if tags.iter().all(Option::is_some) {
                let tag = tag_key.as_str();
                let given = entries.iter().find(|(k, _)| matches!(&k.kind, Kind::Scalar { value, .. } if value == tag));
                let names: Vec<String> = tags.iter().flatten().cloned().collect();
                match given.map(|(_, v)| &self.doc.resolve(v).kind) {
                    Some(Kind::Scalar { value, .. }) => match tags.iter().position(|t| t.as_deref() == Some(value.as_str())) {
                        Some(i) => self.node(n, resolved[i], path),
                        None => {
                            let at = given.map(|(_, v)| v).unwrap_or(n);
                            path.push(tag.into());
                            self.issue(path, at, format!("unknown {tag} `{value}`; expected one of: {}", names.join(", ")));
                            path.pop();
                        }
                    },
                    _ => self.issue(path, n, format!("missing `{tag}`; expected one of: {}", names.join(", "))),
                }
                return;
            }
        }
        let mut best: Option<Vec<Issue>> = None;
        for alt in &resolved {
            let mut sub = Checker { doc: self.doc, root: self.root, issues: Vec::new(), visits: self.visits };
            sub.node(n, alt, path);
            self.visits = sub.visits;
            if sub.issues.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| sub.issues.len() < b.len()) {
                best = Some(sub.issues);
            }
        }
        self.issues.extend(best.unwrap_or_default());
    }

    fn type_ok(&mut self, n: &Node, schema: &Value, path: &[String]) -> bool {
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return true,
        };
        let fits = |t: &str| match (&n.kind, t) {
            (Kind::Map(_), "object") | (Kind::Seq(_), "array") => true,
            (Kind::Scalar { value, plain }, t) => {
                let st = scalar_type(value, *plain);
                match t {
                    // Only text is text: inside `sources` (an internally tagged enum) serde
                    // buffers scalars by their YAML type, so `2024` or `true` would fail later
                    // without a position. Quoting makes them strings.
                    "string" => st == ScalarType::Str,
                    "integer" => st == ScalarType::Int,
                    "number" => matches!(st, ScalarType::Int | ScalarType::Float),
                    "boolean" => st == ScalarType::Bool,
                    "null" => st == ScalarType::Null,
                    _ => false,
                }
            }
            _ => false,
        };
        if types.iter().any(|t| fits(t)) {
            return true;
        }
        let found = match &n.kind {
            Kind::Map(_) => "a mapping".to_string(),
            Kind::Seq(_) => "a list".to_string(),
            // A value under `passwords` may be a secret written inline: never repeat it.
            Kind::Scalar { .. } if path.iter().any(|p| p == "passwords") => "a value (not shown: it may be a secret)".into(),
            Kind::Scalar { value, plain } => match scalar_type(value, *plain) {
                ScalarType::Null => "nothing (null)".into(),
                ScalarType::Str => format!("`{value}`"),
                _ if types.contains(&"string") => format!("`{value}` (quote it to make it text: '{value}')"),
                _ => format!("`{value}`"),
            },
            Kind::Alias(_) => "an alias".into(),
        };
        let want: Vec<&str> = types
            .iter()
            .map(|t| match *t {
                "object" => "a mapping",
                "array" => "a list",
                "string" => "a string",
                "integer" => "a whole number",
                "number" => "a number",
                "boolean" => "true or false",
                "null" => "null",
                other => other,
            })
            .collect();
        self.issue(path, n, format!("expected {}, found {found}", want.join(" or ")));
        false
    }

    fn enum_ok(&mut self, n: &Node, allowed: &[Value], path: &[String]) {
        if let Kind::Scalar { value, .. } = &n.kind {
            let names: Vec<String> = allowed.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect();
            if !names.iter().any(|a| a == value) {
                self.issue(path, n, format!("`{value}` is not one of: {}", names.join(", ")));
            }
        }
    }

    fn numeric_bounds(&mut self, n: &Node, value: &str, plain: bool, schema: &Value, path: &[String]) {
        if scalar_type(value, plain) != ScalarType::Int {
            return;
        }
        let Some(v) = parse_int(value) else { return };
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64).filter(|min| (v as f64) < *min) {
            self.issue(path, n, format!("{v} is below the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64).filter(|max| (v as f64) > *max) {
            self.issue(path, n, format!("{v} is above the maximum {max}"));
        }
    }

    fn object(&mut self, n: &Node, entries: &[(Node, Node)], schema: &'a Value, path: &mut Vec<String>) {
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in entries {
            let key = match &self.doc.resolve(k).kind {
                Kind::Scalar { value, .. } => value.as_str(),
                _ => {
                    self.issue(path, k, "mapping keys must be plain strings".into());
                    continue;
                }
            };
            if seen.contains(&key) {
                self.issue(path, k, format!("duplicate key `{key}`"));
                continue;
            }
            seen.push(key);
            path.push(key.to_string());
            match props.and_then(|p| p.get(key)) {
                // A key with a default may be left empty (null): the default applies.
                Some(s) if s.get("default").is_some() && is_null(self.doc.resolve(v)) => {}
                Some(s) => self.node(v, s, path),
                None => match additional {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> = props.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                        let hint = suggest(key, &known).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
                        self.issue(path, k, format!("unknown key `{key}`{hint} (allowed: {})", known.join(", ")));
                    }
                    Some(s @ Value::Object(_)) => self.node(v, s, path),
                    _ => {}
                },
            }
            path.pop();
        }
        for req in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !seen.contains(&req) {
                self.issue(path, n, format!("missing required key `{req}`"));
            }
        }
    }
}

fn is_null(n: &Node) -> bool {
    matches!(&n.kind, Kind::Scalar { value, plain } if scalar_type(value, *plain) == ScalarType::Null)
}

/// The closest known key within a small edit distance.
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known.iter().map(|k| (edit_distance(key, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 4)).min_by_key(|(d, _)| *d).map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("recursve", &["recursive", "paths"]), Some("recursive"));
        assert_eq!(suggest("zzzzzz", &["recursive", "paths"]), None);
    }
}

//! A positioned YAML tree, built from the parser's events, so that every configuration error can
//! name its line and column and its key path. The typed configuration itself is deserialized by
//! serde-saphyr; this tree only serves the structural check and error positions. Every new
//! setting gets its position for free: validation reports key paths, this tree turns them into
//! `file:line:column`.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;

/// Deepest nesting accepted in a configuration file.
const MAX_DEPTH: usize = 64;
/// Most nodes accepted in a configuration file (1 MiB of YAML holds far fewer).
const MAX_NODES: usize = 200_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar; `plain` is false for quoted and block scalars (always strings).
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// A reference to an anchored node, by anchor id.
    Alias(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    /// 1-based line and column.
    pub line: usize,
    pub col: usize,
}

/// A parsed document with its anchors.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub root: Option<Node>,
    pub anchors: HashMap<usize, Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Doc {
    /// Follows aliases to the anchored node.
    pub fn resolve<'a>(&'a self, n: &'a Node) -> &'a Node {
        let mut cur = n;
        for _ in 0..MAX_DEPTH {
            match &cur.kind {
                Kind::Alias(id) => match self.anchors.get(id) {
                    Some(t) => cur = t,
                    None => return cur,
                },
                _ => return cur,
            }
        }
        cur
    }

    /// The node at a key path such as `["sources", "0", "paths"]`; the deepest existing node
    /// on the way when the full path does not exist (so errors still point near their cause).
    pub fn locate(&self, path: &[String]) -> Option<&Node> {
        let mut cur = self.root.as_ref()?;
        for seg in path {
            let next = match &self.resolve(cur).kind {
                Kind::Map(entries) => {
                    entries.iter().find(|(k, _)| matches!(&k.kind, Kind::Scalar { value, .. } if value == seg)).map(|(_, v)| v)
                }
                Kind::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => cur = n,
                None => return Some(cur),
            }
        }
        Some(cur)
    }
}

enum Frame {
    Seq(Node, usize),
    Map(Node, usize, Option<Node>),
}

/// Parses the first document of `text`. A stream with several documents is an error: a
/// configuration is one document.
pub fn parse(text: &str) -> Result<Doc, SyntaxError> {
    let mut doc = Doc::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut nodes = 0usize;
    let mut documents = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError { line: e.marker().line(), col: e.marker().col() + 1, message: e.info() })?;
        let (line, col) = (span.start.line(), span.start.col() + 1);
        let err = |message: String| SyntaxError { line, col, message };
        let finished: Option<(Node, usize)> = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(err("a configuration file holds one YAML document; found a second".into()));
                }
                None
            }
            Event::Scalar(value, style, anchor, _) => Some((
                Node { kind: Kind::Scalar { value: value.into_owned(), plain: matches!(style, ScalarStyle::Plain) }, line, col },
                anchor,
            )),
            Event::Alias(id) => Some((Node { kind: Kind::Alias(id), line, col }, 0)),
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Frame::Seq(Node { kind: Kind::Seq(Vec::new()), line, col }, anchor));
                None
            }
            Event::MappingStart(_, anchor, _) => {
                stack.push(Frame::Map(Node { kind: Kind::Map(Vec::new()), line, col }, anchor, None));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(n, a)) | Some(Frame::Map(n, a, _)) => Some((n, a)),
                None => return Err(err("unbalanced collection end".into())),
            },
            _ => None,
        };
        if stack.len() > MAX_DEPTH {
            return Err(err(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let Some((node, anchor)) = finished else { continue };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(err(format!("more than {MAX_NODES} YAML nodes")));
        }
        if anchor != 0 {
            doc.anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => doc.root = Some(node),
            Some(Frame::Seq(seq, _)) => {
                if let Kind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let Kind::Map(entries) = &mut map.kind {
                        entries.push((key, node));
                    }
                }
            },
        }
    }
    Ok(doc)
}

/// YAML 1.2 core schema resolution of a plain scalar, as serde-saphyr applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

pub fn scalar_type(value: &str, plain: bool) -> ScalarType {
    if !plain {
        return ScalarType::Str;
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => ScalarType::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => ScalarType::Bool,
        v if parse_int(v).is_some() => ScalarType::Int,
        v if v.parse::<f64>().is_ok() || matches!(v, ".inf" | "-.inf" | ".nan" | ".NaN") => ScalarType::Float,
        _ => ScalarType::Str,
    }
}

pub fn parse_int(v: &str) -> Option<i128> {
    let (neg, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let n = if let Some(h) = digits.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(o) = digits.strip_prefix("0o") {
        i128::from_str_radix(o, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i128>().ok()?
    } else {
        return None;
    };
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_paths() {
        let doc = parse("a: 1\nsources:\n  - name: x\n    paths: [/etc]\n").unwrap();
        let n = doc.locate(&["sources".into(), "0".into(), "paths".into()]).unwrap();
        assert_eq!((n.line, n.col), (4, 12));
        let k = doc.locate(&["sources".into(), "0".into(), "name".into()]).unwrap();
        assert_eq!((k.line, k.col), (3, 11));
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1, "{e:?}");
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn scalar_types() {
        assert_eq!(scalar_type("30", true), ScalarType::Int);
        assert_eq!(scalar_type("30", false), ScalarType::Str);
        assert_eq!(scalar_type("true", true), ScalarType::Bool);
        assert_eq!(scalar_type("~", true), ScalarType::Null);
        assert_eq!(scalar_type("1.5", true), ScalarType::Float);
        assert_eq!(scalar_type("30d", true), ScalarType::Str);
    }
}

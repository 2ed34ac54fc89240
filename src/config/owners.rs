//! `owners:`: who owns a certificate when its sources say nothing — the contacts of named
//! owners (`teams`) and the rules that name an owner by source, tag, location or DNS name
//! (first match wins). Owners read from the sources themselves (Kubernetes annotations and
//! labels, Vault custom metadata, AWS tags) come first; `app::owners` resolves the order.

use super::*;

/// The owner reserved for "no owner" in filters and route matches.
pub const NO_OWNER: &str = "none";

/// Owners: contacts per owner name, and rules that give certificates an owner.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnersConfig {
    /// The contact of each owner (a team or a person), by the name the rules, annotations, custom
    /// metadata or tags give. A contact found on the object itself is used only when its owner
    /// has none here.
    #[serde(default)]
    pub teams: Vec<TeamConfig>,
    /// Rules that give a certificate an owner when none of its sources does; the first rule
    /// that matches wins.
    #[serde(default)]
    pub rules: Vec<OwnerRuleConfig>,
}

/// One owner's contact.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// The owner's name, as rules and sources give it.
    pub name: String,
    /// How to reach the owner: an address, a channel, a paging handle.
    pub contact: String,
}

/// One rule: the owner of the certificates it matches.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerRuleConfig {
    /// The owner's name (`none` is reserved for "no owner").
    pub owner: String,
    /// Which certificates; every list given must match, an empty rule matches every certificate.
    #[serde(default, rename = "match")]
    pub matcher: OwnerMatchConfig,
}

/// What an owner rule matches; every list given must match one of its entries.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerMatchConfig {
    /// Names of sources that see the certificate.
    #[serde(default)]
    pub source: Vec<String>,
    /// Tags of a source that sees the certificate.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Glob patterns matched against the location of a current sighting (a file's path,
    /// `k8s://…`, `vault:…`); `*` stays within one `/`-separated part, `**` crosses them.
    #[serde(default)]
    pub path: Vec<String>,
    /// DNS names (subject alternative names and the subject CN), case-insensitive; `*.` as the
    /// first label matches exactly one label (`*.pay.example` matches `a.pay.example`, not
    /// `pay.example` nor `a.b.pay.example`).
    #[serde(default)]
    pub san: Vec<String>,
}

/// Validated owners.
#[derive(Debug, Clone, Default)]
pub struct OwnersSpec {
    pub teams: Vec<Team>,
    pub rules: Vec<OwnerRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub name: String,
    pub contact: String,
}

#[derive(Debug, Clone)]
pub struct OwnerRule {
    pub owner: String,
    pub matcher: OwnerMatch,
}

/// A rule's match, compiled: the path patterns into one glob set, the DNS names lower-cased.
#[derive(Debug, Clone, Default)]
pub struct OwnerMatch {
    pub sources: Vec<String>,
    pub tags: Vec<String>,
    /// `None`: the rule does not look at locations.
    pub paths: Option<globset::GlobSet>,
    pub sans: Vec<SanPattern>,
}

impl OwnersSpec {
    /// The configured contact of an owner, if any.
    pub fn contact(&self, owner: &str) -> Option<&str> {
        self.teams.iter().find(|t| t.name == owner).map(|t| t.contact.as_str())
    }

    /// Whether some rule matches locations (then every current sighting's location is needed).
    pub fn matches_paths(&self) -> bool {
        self.rules.iter().any(|r| r.matcher.paths.is_some())
    }
}

impl OwnerMatch {
    /// Whether `location` matches one of the path patterns (false when there are none).
    pub fn matches_location(&self, location: &str) -> bool {
        self.paths.as_ref().is_some_and(|p| p.is_match(location))
    }

    /// Whether a certificate with these facts matches: seen by `sources` carrying `tags`,
    /// `location_matched` saying whether one of its current locations matched the path
    /// patterns, `names` its DNS names and CN. Pure.
    pub fn matches<'n>(
        &self,
        sources: &[String],
        tags: &[String],
        location_matched: bool,
        names: impl IntoIterator<Item = &'n str>,
    ) -> bool {
        let any = |want: &[String], have: &[String]| want.is_empty() || want.iter().any(|w| have.contains(w));
        any(&self.sources, sources)
            && any(&self.tags, tags)
            && (self.paths.is_none() || location_matched)
            && (self.sans.is_empty() || names.into_iter().any(|n| self.sans.iter().any(|p| p.matches(n))))
    }
}

/// A DNS name pattern: a name, or `*.` and a name (one label in place of the `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanPattern {
    /// Lower case, without the `*.` and a trailing dot.
    name: String,
    wildcard: bool,
}

impl SanPattern {
    pub fn parse(s: &str) -> Result<SanPattern, String> {
        let lower = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, lower.clone()),
        };
        if name.is_empty() {
            return Err(format!("`{s}` is not a DNS name pattern"));
        }
        if name.contains('*') {
            return Err(format!("`{s}`: `*` is only allowed as the whole first label (`*.example.com`)"));
        }
        if name.split('.').any(|l| l.is_empty() || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) {
            return Err(format!("`{s}` is not a DNS name pattern (letters, digits, `-` and `_` in dot-separated labels)"));
        }
        Ok(SanPattern { name, wildcard })
    }

    /// Whether a DNS name matches, case-insensitively (a trailing dot ignored).
    pub fn matches(&self, dns_name: &str) -> bool {
        let n = dns_name.trim_end_matches('.');
        if !self.wildcard {
            return n.eq_ignore_ascii_case(&self.name);
        }
        // `<label>.<name>`: the tail is the name, the head one label and its dot.
        match n.len().checked_sub(self.name.len()) {
            Some(cut) if cut >= 2 && n.is_char_boundary(cut) => {
                let (head, tail) = n.split_at(cut);
                tail.eq_ignore_ascii_case(&self.name) && head.ends_with('.') && !head[..head.len() - 1].contains('.')
            }
            _ => false,
        }
    }
}

/// An owner's name as configured: not empty, not `none`, one line.
fn owner_name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        Some("must not be empty".into())
    } else if name.trim() != name {
        Some(format!("`{name}` has leading or trailing spaces"))
    } else if name == NO_OWNER {
        Some(format!("`{NO_OWNER}` is reserved: it stands for \"no owner\" in filters and routes"))
    } else if name.chars().any(char::is_control) || name.chars().count() > 128 {
        Some(format!("`{}` is not an owner name (one line, at most 128 characters)", name.escape_debug()))
    } else {
        None
    }
}

/// Pure validation of the `owners:` section; `sources` are the configured source names.
pub(crate) fn validate_owners(o: &OwnersConfig, sources: &[&str], errs: &mut Vec<PathedError>) -> OwnersSpec {
    let at = |parts: &[&str]| -> Vec<String> { std::iter::once("owners").chain(parts.iter().copied()).map(str::to_string).collect() };
    let mut teams: Vec<Team> = Vec::new();
    for (i, t) in o.teams.iter().enumerate() {
        let idx = i.to_string();
        if let Some(m) = owner_name_problem(&t.name) {
            errs.push((at(&["teams", &idx, "name"]), m));
        } else if teams.iter().any(|x| x.name == t.name) {
            errs.push((at(&["teams", &idx, "name"]), format!("duplicate team `{}`", t.name)));
        }
        if t.contact.trim().is_empty() {
            errs.push((at(&["teams", &idx, "contact"]), "must not be empty".into()));
        }
        teams.push(Team { name: t.name.clone(), contact: t.contact.trim().to_string() });
    }
    let mut rules = Vec::new();
    for (i, r) in o.rules.iter().enumerate() {
        let idx = i.to_string();
        if let Some(m) = owner_name_problem(&r.owner) {
            errs.push((at(&["rules", &idx, "owner"]), m));
        }
        let m = &r.matcher;
        for (j, s) in m.source.iter().enumerate() {
            if !sources.contains(&s.as_str()) {
                errs.push((at(&["rules", &idx, "match", "source", &j.to_string()]), format!("no source named `{s}`")));
            }
        }
        let mut globs = globset::GlobSetBuilder::new();
        let mut globs_ok = true;
        for (j, p) in m.path.iter().enumerate() {
            match globset::GlobBuilder::new(p).literal_separator(true).build() {
                Ok(g) => {
                    globs.add(g);
                }
                Err(e) => {
                    globs_ok = false;
                    errs.push((at(&["rules", &idx, "match", "path", &j.to_string()]), format!("bad pattern: {}", e.kind())));
                }
            }
        }
        let paths = match (m.path.is_empty(), globs_ok) {
            (true, _) | (false, false) => None,
            (false, true) => match globs.build() {
                Ok(set) => Some(set),
                Err(e) => {
                    errs.push((at(&["rules", &idx, "match", "path"]), format!("bad pattern: {e}")));
                    None
                }
            },
        };
        let mut sans = Vec::new();
        for (j, s) in m.san.iter().enumerate() {
            match SanPattern::parse(s) {
                Ok(p) => sans.push(p),
                Err(msg) => errs.push((at(&["rules", &idx, "match", "san", &j.to_string()]), msg)),
            }
        }
        rules.push(OwnerRule {
            owner: r.owner.clone(),
            matcher: OwnerMatch { sources: m.source.clone(), tags: m.tag.clone(), paths, sans },
        });
    }
    OwnersSpec { teams, rules }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Result<OwnersSpec, Vec<String>> {
        let text = format!(
            "sources:\n  - {{name: disk, kind: files, paths: [x], tags: [prod]}}\n  - {{name: web, kind: files, paths: [y]}}\n{yaml}"
        );
        crate::config::parse_str(&text, "t.yaml", Path::new("/cfg"))
            .map(|s| s.owners)
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    fn names(v: &[&'static str]) -> Vec<&'static str> {
        v.to_vec()
    }

    #[test]
    fn san_patterns_match_one_label_case_insensitively() {
        let p = SanPattern::parse("*.Pay.Corp.Example").unwrap();
        assert!(p.matches("a.pay.corp.example"));
        assert!(p.matches("API.PAY.CORP.EXAMPLE."));
        assert!(p.matches("*.pay.corp.example"), "a wildcard certificate's own name");
        assert!(!p.matches("pay.corp.example"));
        assert!(!p.matches("a.b.pay.corp.example"));
        assert!(!p.matches("apay.corp.example"));
        assert!(!p.matches("a.pay.corp.example.net"));
        let exact = SanPattern::parse("www.example.net").unwrap();
        assert!(exact.matches("WWW.example.net") && !exact.matches("a.www.example.net"));
        for bad in ["", "*", "*.", "a.*.example", "w*w.example", "a..example", "a b.example", "*.*.example"] {
            assert!(SanPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_match_by_source_tag_path_and_name() {
        let s = spec(concat!(
            "owners:\n",
            "  teams:\n    - {name: payments, contact: payments-oncall@corp.example}\n",
            "  rules:\n",
            "    - {owner: payments, match: {path: ['/etc/ssl/payments/**']}}\n",
            "    - {owner: web, match: {san: ['*.pay.corp.example'], source: [web]}}\n",
            "    - {owner: ops, match: {tag: [prod]}}\n",
            "    - {owner: fallback}\n",
        ))
        .unwrap();
        assert_eq!(s.contact("payments"), Some("payments-oncall@corp.example"));
        assert_eq!(s.contact("web"), None);
        assert!(s.matches_paths());
        let [payments, web, ops, fallback] = &s.rules[..] else { panic!("4 rules") };
        let m = &payments.matcher;
        assert!(m.matches_location("/etc/ssl/payments/a/b.pem") && m.matches_location("/etc/ssl/payments/x.pem"));
        assert!(!m.matches_location("/etc/ssl/paymentsx/x.pem") && !m.matches_location("k8s://c/ns/secrets/s#tls.crt"));
        assert!(m.matches(&[], &[], true, names(&[])));
        assert!(!m.matches(&[], &[], false, names(&[])), "a path rule needs a matching location");
        let m = &web.matcher;
        assert!(m.matches(&["web".into()], &[], false, names(&["a.pay.corp.example"])));
        assert!(!m.matches(&["disk".into()], &[], false, names(&["a.pay.corp.example"])), "both lists must match");
        assert!(!m.matches(&["web".into()], &[], false, names(&["pay.corp.example"])));
        assert!(ops.matcher.matches(&["disk".into()], &["prod".into()], false, names(&[])));
        assert!(!ops.matcher.matches(&["web".into()], &[], false, names(&[])));
        assert!(fallback.matcher.matches(&[], &[], false, names(&[])), "an empty match takes everything");
        assert!(!spec("owners: {rules: [{owner: a, match: {san: [x.example]}}]}").unwrap().matches_paths());
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let e = spec(concat!(
            "owners:\n",
            "  teams:\n",
            "    - {name: payments, contact: a@corp.example}\n",
            "    - {name: payments, contact: ''}\n",
            "    - {name: none, contact: x}\n",
            "  rules:\n",
            "    - {owner: '', match: {source: [disk, nope]}}\n",
            "    - {owner: a, match: {path: ['/etc/[z'], san: ['*.ok.example', 'a.*.example']}}\n",
            "    - {owner: none}\n",
        ))
        .unwrap_err();
        let want = [
            "t.yaml:7:14: owners.teams[1].name: duplicate team `payments`",
            "t.yaml:7:33: owners.teams[1].contact: must not be empty",
            "t.yaml:8:14: owners.teams[2].name: `none` is reserved",
            "t.yaml:10:15: owners.rules[0].owner: must not be empty",
            "t.yaml:10:42: owners.rules[0].match.source[1]: no source named `nope`",
            "t.yaml:11:33: owners.rules[1].match.path[0]: bad pattern",
            "t.yaml:11:67: owners.rules[1].match.san[1]: `a.*.example`: `*` is only allowed",
            "t.yaml:12:15: owners.rules[2].owner: `none` is reserved",
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for (got, want) in e.iter().zip(want) {
            assert!(got.starts_with(want), "{got}\n  does not start with\n{want}");
        }
        // Unknown keys are reported by the schema check, with their position.
        let e = spec("owners:\n  rules:\n    - {owner: a, match: {host: [x]}}\n").unwrap_err();
        assert!(e[0].starts_with("t.yaml:6:26: owners.rules[0].match.host: unknown key `host`"), "{e:#?}");
        // A rule naming a team without a contact is fine.
        assert!(spec("owners: {rules: [{owner: nobody-listed}]}").is_ok());
    }
}

//! One way to print times and serial numbers for people, in every command and on the page:
//! times as RFC 3339 UTC ([`super::format_time`]) with, where a distance helps, how far they
//! are from now ([`relative`]); serials as upper-case hex pairs joined by colons
//! ([`serial`]). JSON keeps the machine forms (Unix seconds, plain upper-case hex) — see
//! README "Output forms". And the other way: what an operator types for a serial, in any case,
//! with or without colons, spaces or `0x` ([`serial_query`]).

use super::{UnixTime, format_time};

/// "in 3 d", "5 h ago", "in 40 s": the distance from `now` in its largest whole unit (seconds
/// below 2 min, minutes below 2 h, hours below 2 days, days beyond).
pub fn relative(t: UnixTime, now: UnixTime) -> String {
    let d = t.saturating_sub(now);
    let a = d.unsigned_abs();
    let (n, unit) = match a {
        0..=119 => (a, "s"),
        120..=7199 => (a / 60, "min"),
        7200..=172_799 => (a / 3600, "h"),
        _ => (a / 86_400, "d"),
    };
    if d >= 0 { format!("in {n} {unit}") } else { format!("{n} {unit} ago") }
}

/// `2026-12-07T11:00:00Z (in 47 h)`.
pub fn when(t: UnixTime, now: UnixTime) -> String {
    format!("{} ({})", format_time(t), relative(t, now))
}

/// A serial as people read it: upper-case hex pairs joined by colons (`0A:1B:FF`), the form
/// `show`, `list`, `renew`, `revoke`, `check` and the page print. An odd number of digits gets
/// a leading 0; anything that is not hex is returned as it is.
pub fn serial(hex: &str) -> String {
    let digits: String = hex.chars().filter(|c| *c != ':').collect::<String>().to_ascii_uppercase();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex.to_string();
    }
    let padded = if digits.len() % 2 == 1 { format!("0{digits}") } else { digits };
    let b = padded.as_bytes();
    b.chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

/// The upper-case hex digits of a serial as an operator may type it — any case, pairs joined
/// by `:` or spaces, an optional `0x` — or `None` when it is not hex (then it is no serial).
pub fn serial_query(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: String = t.chars().filter(|c| !matches!(c, ':' | ' ' | '-')).collect();
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digits.to_ascii_uppercase())
}

/// A subject DN as a lookup compares it: ASCII lower case, no spaces around the `,`, `+` and
/// `=` that separate its parts (`CN=Web, O=Example` and `cn=web,o=example` are one).
pub fn dn_key(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.trim().split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let rdn: Vec<String> = part
            .split('+')
            .map(|ava| match ava.split_once('=') {
                Some((t, v)) => format!("{}={}", t.trim(), v.trim()),
                None => ava.trim().to_string(),
            })
            .collect();
        out.push_str(&rdn.join("+"));
    }
    out.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(relative(100, 100), "in 0 s");
        assert_eq!(relative(219, 100), "in 119 s");
        assert_eq!(relative(220, 100), "in 2 min");
        assert_eq!(relative(100 + 47 * 3600, 100), "in 47 h");
        assert_eq!(relative(100 + 172_800, 100), "in 2 d");
        assert_eq!(relative(100, 100 + 5 * 3600), "5 h ago");
        assert_eq!(relative(i64::MIN, i64::MAX), format!("{} d ago", (1u64 << 63) / 86_400));
        assert_eq!(when(1_796_558_400, 1_796_558_400 - 3 * 86_400), "2026-12-06T12:00:00Z (in 3 d)");
    }

    #[test]
    fn serials_print_one_way() {
        assert_eq!(serial("0a1bff"), "0A:1B:FF");
        assert_eq!(serial("0A:1B:FF"), "0A:1B:FF");
        assert_eq!(serial("abc"), "0A:BC");
        assert_eq!(serial("7"), "07");
        assert_eq!(serial("not hex"), "not hex");
        assert_eq!(serial(""), "");
    }

    #[test]
    fn serials_typed_any_way() {
        for typed in ["0a:1b:ff", "0A1BFF", "0x0a1bff", " 0a 1b ff ", "0A-1B-FF"] {
            assert_eq!(serial_query(typed).as_deref(), Some("0A1BFF"), "{typed}");
        }
        assert_eq!(serial_query("web.example"), None);
        assert_eq!(serial_query("::"), None);
        assert_eq!(dn_key("CN=Web.Example, O = Example+OU=Ops"), "cn=web.example,o=example+ou=ops");
        assert_eq!(dn_key("cn=web.example,o=example+ou=ops"), dn_key("CN=Web.Example, O = Example+OU=Ops"));
        assert_eq!(serial_query(""), None);
    }
}

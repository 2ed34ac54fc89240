//! The values every section writes the same way: durations (`10s`, `7d`) and sizes (`16MiB`),
//! and an empty section meaning "all defaults".

use super::*;

/// A duration: whole seconds, or text with a unit (`100ms`, `10s`, `5m`, `1h`, `7d`, `2w`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum DurationSpec {
    Seconds(u64),
    Text(String),
}

impl DurationSpec {
    pub fn duration(&self) -> Result<std::time::Duration, String> {
        match self {
            DurationSpec::Seconds(s) => Ok(std::time::Duration::from_secs(*s)),
            DurationSpec::Text(t) => parse_duration(t),
        }
    }
}

/// `100ms`, `45s`, `90m`, `12h`, `30d`, `2w`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration (examples: 100ms, 10s, 30d)"))?;
    let ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        other => return Err(format!("unknown duration unit `{other}` (ms, s, m, h, d, w)")),
    };
    n.checked_mul(ms).map(std::time::Duration::from_millis).ok_or_else(|| format!("`{s}` is too long"))
}

/// A section written with nothing under it (`store:` followed only by comments) means "all
/// defaults", as an admin who commented out every key expects.
pub(crate) fn null_is_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A size in bytes: a whole number, or text with a unit (`512KiB`, `16MiB`, `1GiB`, `10MB`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            ByteSize::Bytes(b) => Ok(*b),
            ByteSize::Text(t) => parse_size(t),
        }
    }
}

pub fn parse_size(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{t}` is not a size: expected a number and a unit such as 16MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB or GB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{t}` is too large"))
}

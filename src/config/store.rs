//! `store:`: where the SQLite state lives.

use super::*;

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file. Relative paths are relative to this configuration file. Default:
    /// `$STATE_DIRECTORY/certvigil.db` under systemd, else
    /// `$XDG_STATE_HOME/certvigil/certvigil.db` (`~/.local/state/certvigil/certvigil.db`).
    #[serde(default)]
    pub path: Option<String>,
}

//! The settings of a JSON-lines export (`[[export]] kind = "jsonl"`), and the errors of the
//! writer, each naming the setting (`export[N].path`) it comes from.
use std::path::PathBuf;

use serde::Deserialize;

/// `path` for the daemon's standard output.
pub const STDOUT: &str = "-";
pub const MIB: u64 = 1 << 20;
/// The smallest `max_bytes`: a file holds a few events at least.
pub const MIN_MAX_BYTES: u64 = 4096;
pub const MAX_KEEP: u32 = 1000;

/// Where the lines go, and how files are rotated. Unknown keys are the framework's to
/// refuse (this struct is one part of an `[[export]]` entry, beside `name` and `kind`).
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct JsonlConfig {
    /// The file (absolute), or `-` for the daemon's standard output.
    pub path: PathBuf,
    /// A file is rotated before it would grow past this many bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept: `events.jsonl.1` (the newest) to `events.jsonl.<keep>`; 0 keeps
    /// none (a full file is removed).
    #[serde(default = "default_keep")]
    pub keep: u32,
}

pub fn default_max_bytes() -> u64 {
    100 * MIB
}

pub fn default_keep() -> u32 {
    5
}

impl JsonlConfig {
    /// A file target at `path` with the default rotation.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        JsonlConfig { path: path.into(), max_bytes: default_max_bytes(), keep: default_keep() }
    }

    pub fn is_stdout(&self) -> bool {
        self.path.as_os_str() == STDOUT
    }

    /// Check the settings of entry `index` of `[[export]]`.
    pub fn validate(&self, index: usize) -> Result<(), JsonlConfigError> {
        let invalid =
            |field, value: String, rule| Err(JsonlConfigError { entry: index, field, value, rule });
        if !self.is_stdout() {
            let shown = format!("{:?}", self.path.display().to_string());
            if !self.path.is_absolute() {
                return invalid("path", shown, "must be absolute, or \"-\" for standard output");
            }
            if self.path.file_name().is_none()
                || self.path.as_os_str().to_string_lossy().ends_with('/')
            {
                return invalid("path", shown, "must name a file, not a directory");
            }
        }
        if self.max_bytes < MIN_MAX_BYTES {
            return invalid("max_bytes", self.max_bytes.to_string(), "must be at least 4096");
        }
        if self.keep > MAX_KEEP {
            return invalid("keep", self.keep.to_string(), "must be at most 1000");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("export[{entry}].{field} = {value}: {rule}")]
pub struct JsonlConfigError {
    pub entry: usize,
    pub field: &'static str,
    pub value: String,
    pub rule: &'static str,
}

/// What went wrong writing or recovering an export file.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error(transparent)]
    Config(#[from] JsonlConfigError),
    /// `setting` is `export[N].path`.
    #[error("{setting} = {path:?}: {what}: {source}")]
    Io { setting: String, path: PathBuf, what: &'static str, source: std::io::Error },
    /// The last whole line of the file is not one this writer wrote.
    #[error(
        "{setting} = {path:?}: its last line is not an event paddock exported ({detail}); \
         move the file away or choose another path"
    )]
    NotOurs { setting: String, path: PathBuf, detail: String },
    #[error("event {seq}: cannot be written as JSON: {source}")]
    Encode { seq: i64, source: serde_json::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<JsonlConfig, String> {
        let config: JsonlConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate(2).map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn defaults_and_stdout() {
        let c = parse("path = \"/var/log/paddock/events.jsonl\"").unwrap();
        assert_eq!((c.max_bytes, c.keep), (100 * MIB, 5));
        assert!(!c.is_stdout());
        assert!(parse("path = \"-\"").unwrap().is_stdout());
    }

    #[test]
    fn bad_values_name_the_entry_and_field() {
        assert_eq!(
            parse("path = \"events.jsonl\"").unwrap_err(),
            "export[2].path = \"events.jsonl\": must be absolute, or \"-\" for standard output"
        );
        assert_eq!(
            parse("path = \"/var/log/\"").unwrap_err(),
            "export[2].path = \"/var/log/\": must name a file, not a directory"
        );
        assert_eq!(
            parse("path = \"/x\"\nmax_bytes = 100").unwrap_err(),
            "export[2].max_bytes = 100: must be at least 4096"
        );
        assert_eq!(
            parse("path = \"/x\"\nkeep = 1001").unwrap_err(),
            "export[2].keep = 1001: must be at most 1000"
        );
        assert!(parse("max_bytes = 5000").unwrap_err().contains("missing field `path`"));
    }
}

//! `[features]` and `[rules]`: where the feature definitions and rule documents come from.

use serde::Deserialize;
use std::time::Duration;

/// Feature definitions.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureSettings {
    /// A features file (see `features/bank.toml`); unset = the starter set built into the binary.
    /// Adding or changing a feature is a change to this file and a restart, no release.
    pub file: Option<std::path::PathBuf>,
}

impl FeatureSettings {
    /// Loads and compiles the configured features over the built-in records alone (a features
    /// file naming a declared source is refused: see [`FeatureSettings::load_in`]).
    pub fn load(&self) -> Result<crate::features::FeatureSet, crate::features::spec::FeatureError> {
        self.load_in(&crate::catalog::Catalog::builtin())
    }

    /// Loads and compiles the configured features over the configuration's input records
    /// (`Settings::catalog`).
    pub fn load_in(
        &self,
        catalog: &std::sync::Arc<crate::catalog::Catalog>,
    ) -> Result<crate::features::FeatureSet, crate::features::spec::FeatureError> {
        crate::features::spec::load_in(self.file.as_deref(), catalog.clone())
    }
}

/// Rule documents: where the rules a process starts with come from, and whether it follows the
/// rules topic for changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleSettings {
    /// A rule document file or folder (see `rules/`); unset = the starter rules built into the
    /// binary. These are the rules before the rules topic is read.
    pub path: Option<std::path::PathBuf>,
    /// Follow `topics.rules` and apply its documents without a restart (hot reload). On start the
    /// topic is read to its end before any event is processed.
    pub watch_topic: bool,
    /// How long start-up waits to read the rules topic to its end before failing.
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            path: None,
            watch_topic: true,
            startup_timeout: Duration::from_secs(30),
        }
    }
}

impl RuleSettings {
    /// The documents a process starts with (from `path`, or the starter set).
    pub fn documents(
        &self,
    ) -> Result<Vec<crate::rules::document::RuleDocument>, Vec<crate::rules::RuleError>> {
        crate::rules::load::documents(self.path.as_deref())
    }

    /// As [`RuleSettings::documents`], each with its text as written.
    pub fn sources(
        &self,
    ) -> Result<Vec<(crate::rules::document::RuleDocument, String)>, Vec<crate::rules::RuleError>>
    {
        crate::rules::load::sources(self.path.as_deref())
    }
}

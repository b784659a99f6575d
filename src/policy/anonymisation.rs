//! The `[anonymisation]` section of a policy: what anonymised and aggregated output withholds.
//!
//! ```toml
//! [anonymisation]
//! min_cell = 5                  # counts below this are withheld (default 5, at least 2)
//! drop_fields = ["email", "name"] # JSON fields an analysis export leaves out (default none)
//! ```
//!
//! `min_cell` is the threshold of [`Vault::anonymous_stats`](crate::Vault::anonymous_stats);
//! `drop_fields` names the fields of JSON-object payloads that
//! [`Vault::export_for_analysis`](crate::Vault::export_for_analysis) removes, at every depth.

use serde::Deserialize;

use crate::error::PolicyError;

/// The default small-cell threshold.
pub const DEFAULT_MIN_CELL: u64 = 5;

/// The anonymisation settings of a policy (the defaults without a section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anonymisation {
    /// Counts below this are withheld from anonymous statistics (`min_cell`, default 5).
    pub min_cell: u64,
    /// Fields of JSON-object payloads an analysis export removes, at any depth (`drop_fields`).
    pub drop_fields: Vec<String>,
}

impl Default for Anonymisation {
    fn default() -> Self {
        Anonymisation {
            min_cell: DEFAULT_MIN_CELL,
            drop_fields: Vec::new(),
        }
    }
}

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnonymisation {
    min_cell: Option<i64>,
    #[serde(default)]
    drop_fields: Vec<String>,
}

/// Validates the section: `min_cell` from 2 (a threshold of 1 withholds nothing) to 1000000;
/// field names non-empty, at most 256 bytes, without control characters, each once.
pub(crate) fn parse(raw: Option<RawAnonymisation>) -> Result<Anonymisation, PolicyError> {
    let Some(raw) = raw else {
        return Ok(Anonymisation::default());
    };
    let err = |why: String| PolicyError::Entry {
        entry: "anonymisation".to_owned(),
        why,
    };
    let min_cell = match raw.min_cell {
        None => DEFAULT_MIN_CELL,
        Some(n @ 2..=1_000_000) => n.unsigned_abs(),
        Some(n) => {
            return Err(err(format!(
                "min_cell {n} is out of range (2 to 1000000; 1 would withhold nothing)"
            )));
        }
    };
    let mut drop_fields: Vec<String> = Vec::with_capacity(raw.drop_fields.len());
    for f in raw.drop_fields {
        if f.is_empty() || f.len() > 256 || f.chars().any(char::is_control) {
            return Err(err(format!(
                "drop_fields entry {:?} is not a field name (1 to 256 bytes, no control characters)",
                f.chars().take(40).collect::<String>()
            )));
        }
        if drop_fields.contains(&f) {
            return Err(err(format!("drop_fields names {f:?} twice")));
        }
        drop_fields.push(f);
    }
    Ok(Anonymisation {
        min_cell,
        drop_fields,
    })
}

#[cfg(test)]
mod tests {
    use crate::policy::Policy;

    #[test]
    fn defaults_and_values() {
        let p = Policy::from_toml("").unwrap();
        assert_eq!(p.anonymisation.min_cell, 5);
        assert!(p.anonymisation.drop_fields.is_empty());
        let p = Policy::from_toml(
            "[anonymisation]\nmin_cell = 10\ndrop_fields = [\"email\", \"name\"]",
        )
        .unwrap();
        assert_eq!(p.anonymisation.min_cell, 10);
        assert_eq!(p.anonymisation.drop_fields, ["email", "name"]);
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        for (text, needle) in [
            ("[anonymisation]\nmin_cell = 1", "min_cell 1"),
            ("[anonymisation]\nmin_cell = -3", "min_cell -3"),
            ("[anonymisation]\ndrop_fields = [\"\"]", "drop_fields"),
            ("[anonymisation]\ndrop_fields = [\"a\", \"a\"]", "twice"),
            ("[anonymisation]\nmin_cells = 5", "min_cells"),
        ] {
            let e = Policy::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}

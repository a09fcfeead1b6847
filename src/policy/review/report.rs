//! The JSON shapes shared by the review commands (`--format json`, documented in the
//! README): how a grant and a selector are written. Names and places only, never a value.

use serde::Serialize;

use super::super::{Grant, Selector};

/// A grant as the JSON reports name it.
#[derive(Serialize, Clone, PartialEq, Eq, Debug)]
pub struct GrantRef {
    pub name: Option<String>,
    /// `file:line`, or `postgres`.
    pub location: String,
    pub selector: SelectorRef,
}

#[derive(Serialize, Clone, PartialEq, Eq, Debug)]
pub struct SelectorRef {
    pub project: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

impl From<&Selector> for SelectorRef {
    fn from(selector: &Selector) -> Self {
        Self {
            project: selector.project.to_string(),
            kind: selector.kind.to_string(),
            id: selector.id.to_string(),
        }
    }
}

impl From<&Grant> for GrantRef {
    fn from(grant: &Grant) -> Self {
        Self {
            name: grant.name.as_deref().map(str::to_owned),
            location: grant.location.to_string(),
            selector: (&grant.selector).into(),
        }
    }
}

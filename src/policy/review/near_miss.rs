//! Near misses: grants whose selector failed on exactly one of the three fields, so that
//! a typo in a selector shows in `explain` (SPEC §4). Claims are ids, not secrets.

use super::super::{Grant, Pattern, Policy};
use crate::auth::Workload;

/// A grant that matched `workload` on two fields and failed on one.
pub struct NearMiss<'p> {
    pub grant: &'p Grant,
    /// `project`, `type` or `id`, as the policy spells the field.
    pub field: &'static str,
    /// What the selector asks for in that field.
    pub wanted: String,
    /// What the workload has.
    pub actual: String,
}

impl Policy {
    /// The grants that missed `workload` by exactly one field, in policy order.
    pub fn near_misses(&self, workload: &Workload) -> Vec<NearMiss<'_>> {
        let mut misses = Vec::new();
        for grant in self.grants() {
            let fields: [(&'static str, &Pattern, &str); 3] = [
                ("project", &grant.selector.project, workload.project()),
                ("type", &grant.selector.kind, workload.kind()),
                ("id", &grant.selector.id, workload.id()),
            ];
            let mut failed = fields.iter().filter(|(_, pattern, name)| !pattern.matches(name));
            if let (Some((field, pattern, name)), None) = (failed.next(), failed.next()) {
                misses.push(NearMiss {
                    grant,
                    field,
                    wanted: pattern.to_string(),
                    actual: (*name).to_owned(),
                });
            }
        }
        misses
    }
}

//! Templates: `${projectId}`, `${nfObjectType}`, `${nfObjectId}`, `${secret.NAME}`, and
//! `$${` for a literal `${`. Parsed once at load; secrets are spliced in at load, claims
//! at request time.

use crate::auth::Workload;

use crate::secret::SecretBytes;

/// A claim a template splices per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    Project,
    Kind,
    Id,
}

impl Claim {
    pub fn of(self, workload: &Workload) -> &str {
        match self {
            Self::Project => workload.project(),
            Self::Kind => workload.kind(),
            Self::Id => workload.id(),
        }
    }
}

/// A template as written: text, claims and references to named secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawPart {
    Text(String),
    Claim(Claim),
    Secret(String),
}

/// Parses a template, naming the first problem.
pub fn parse(template: &str) -> Result<Vec<RawPart>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        text.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| "`${` is not closed by `}` (write `$${` for a literal `${`)".to_owned())?;
            let name = &tail[..end];
            let part = match name {
                "projectId" => RawPart::Claim(Claim::Project),
                "nfObjectType" => RawPart::Claim(Claim::Kind),
                "nfObjectId" => RawPart::Claim(Claim::Id),
                _ => match name.strip_prefix("secret.") {
                    Some(secret) if !secret.is_empty() => RawPart::Secret(secret.to_owned()),
                    _ => {
                        return Err(format!(
                            "unknown name `${{{name}}}`: use projectId, nfObjectType, nfObjectId or secret.NAME"
                        ))
                    }
                },
            };
            if !text.is_empty() {
                parts.push(RawPart::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
            rest = &tail[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(RawPart::Text(text));
    }
    Ok(parts)
}

/// A value that depends on the workload's claims: text (with secrets already spliced
/// in) and claims, in order.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Part {
    Text(SecretBytes),
    Claim(Claim),
}

impl Template {
    /// Joins adjacent text; `None` when no claim is left, i.e. the value is static.
    pub fn new(parts: Vec<Part>) -> Result<Self, SecretBytes> {
        let mut merged: Vec<Part> = Vec::with_capacity(parts.len());
        for part in parts {
            match (merged.last_mut(), part) {
                (Some(Part::Text(prev)), Part::Text(next)) => {
                    let mut joined = prev.expose().to_vec();
                    joined.extend_from_slice(next.expose());
                    *prev = SecretBytes::new(joined);
                }
                (_, part) => merged.push(part),
            }
        }
        match merged.as_slice() {
            [] => Err(SecretBytes::new(Vec::new())),
            [Part::Text(only)] => Err(only.clone()),
            _ => Ok(Self { parts: merged }),
        }
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether every text part is UTF-8 (claims always are).
    pub fn is_utf8(&self) -> bool {
        self.parts.iter().all(|p| match p {
            Part::Text(t) => std::str::from_utf8(t.expose()).is_ok(),
            Part::Claim(_) => true,
        })
    }

    /// The value for one workload, written to `out`.
    pub fn render_into(&self, workload: &Workload, out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.extend_from_slice(text.expose()),
                Part::Claim(claim) => out.extend_from_slice(claim.of(workload).as_bytes()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_claims_secrets_and_escapes() {
        assert_eq!(
            parse("a${projectId}b${secret.x}$${c}$d").unwrap(),
            vec![
                RawPart::Text("a".into()),
                RawPart::Claim(Claim::Project),
                RawPart::Text("b".into()),
                RawPart::Secret("x".into()),
                RawPart::Text("${c}$d".into()),
            ]
        );
        assert!(parse("${nope}").unwrap_err().contains("unknown name `${nope}`"));
        assert!(parse("${secret.}").is_err());
        assert!(parse("abc ${projectId").unwrap_err().contains("not closed"));
        assert_eq!(parse("").unwrap(), vec![]);
    }
}

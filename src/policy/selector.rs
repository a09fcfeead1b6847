//! Selectors over a workload's three names, their specificity, and whether two of them
//! can match one same workload.

use std::cmp::Ordering;
use std::fmt;

use crate::auth::Workload;

/// One field of a selector: `*`, an exact name, or a glob with `*` and `?`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    Any,
    /// Shared: a fleet's grants repeat the same projects and types.
    Exact(std::sync::Arc<str>),
    Glob(Box<Glob>),
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
    literal_len: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Token {
    Char(char),
    One,
    Many,
}

impl Pattern {
    /// A missing field means `*`.
    pub fn parse(text: Option<&str>) -> Result<Self, String> {
        let Some(text) = text else { return Ok(Self::Any) };
        if text.is_empty() {
            return Err("an empty selector matches nothing; leave the field out for `*`".into());
        }
        if text.chars().any(|c| c == '\0' || c.is_control()) {
            return Err("a selector may not contain control characters".into());
        }
        if text.chars().all(|c| c == '*') {
            return Ok(Self::Any);
        }
        if !text.contains(['*', '?']) {
            return Ok(Self::Exact(text.into()));
        }
        let mut tokens = Vec::with_capacity(text.len());
        for c in text.chars() {
            let token = match c {
                '*' => Token::Many,
                '?' => Token::One,
                c => Token::Char(c),
            };
            // `**` means the same as `*`.
            if !(token == Token::Many && tokens.last() == Some(&Token::Many)) {
                tokens.push(token);
            }
        }
        let literal_len = tokens.iter().filter(|t| matches!(t, Token::Char(_))).count();
        Ok(Self::Glob(Box::new(Glob {
            source: text.to_owned(),
            tokens,
            literal_len,
        })))
    }

    /// This pattern with its exact name, if it has one, replaced by `shared`'s.
    pub fn share(self, shared: impl FnOnce(&str) -> std::sync::Arc<str>) -> Self {
        match self {
            Self::Exact(exact) => Self::Exact(shared(&exact)),
            other => other,
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => **exact == *name,
            Self::Glob(glob) => glob.matches(name),
        }
    }

    pub fn exact(&self) -> Option<&str> {
        match self {
            Self::Exact(exact) => Some(exact),
            _ => None,
        }
    }

    /// Whether some name matches both patterns.
    pub fn overlaps(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Any, _) | (_, Self::Any) => true,
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Exact(a), Self::Glob(g)) | (Self::Glob(g), Self::Exact(a)) => g.matches(a),
            (Self::Glob(a), Self::Glob(b)) => globs_intersect(&a.tokens, &b.tokens),
        }
    }

    fn rank(&self) -> FieldRank {
        match self {
            Self::Any => FieldRank {
                class: 0,
                literal_len: 0,
            },
            Self::Glob(g) => FieldRank {
                class: 1,
                literal_len: u16::try_from(g.literal_len).unwrap_or(u16::MAX),
            },
            Self::Exact(e) => FieldRank {
                class: 2,
                literal_len: u16::try_from(e.chars().count()).unwrap_or(u16::MAX),
            },
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(e) => f.write_str(e),
            Self::Glob(g) => f.write_str(&g.source),
        }
    }
}

impl Glob {
    fn matches(&self, name: &str) -> bool {
        // Iterative matching with one backtrack point: linear in practice, never
        // exponential, and without allocating. `n` is a byte offset into `name`.
        let (mut t, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = name[n..].chars().next() {
            match self.tokens.get(t) {
                Some(Token::Char(expected)) if *expected == c => (t, n) = (t + 1, n + c.len_utf8()),
                Some(Token::One) => (t, n) = (t + 1, n + c.len_utf8()),
                Some(Token::Many) => {
                    star = Some((t, n));
                    t += 1;
                }
                _ => match star {
                    Some((st, sn)) => {
                        let skipped = name[sn..].chars().next().map_or(1, char::len_utf8);
                        star = Some((st, sn + skipped));
                        (t, n) = (st + 1, sn + skipped);
                    }
                    None => return false,
                },
            }
        }
        self.tokens[t..].iter().all(|t| *t == Token::Many)
    }
}

/// Whether two globs match one same string: a walk over pairs of positions.
fn globs_intersect(a: &[Token], b: &[Token]) -> bool {
    let width = b.len() + 1;
    let mut seen = vec![false; (a.len() + 1) * width];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        if std::mem::replace(&mut seen[i * width + j], true) {
            continue;
        }
        match (a.get(i), b.get(j)) {
            (None, None) => return true,
            (Some(Token::Many), _) => {
                stack.push((i + 1, j));
                if j < b.len() {
                    stack.push((i, j + 1));
                }
            }
            (_, Some(Token::Many)) => {
                stack.push((i, j + 1));
                if i < a.len() {
                    stack.push((i + 1, j));
                }
            }
            (Some(x), Some(y)) => {
                let compatible = match (x, y) {
                    (Token::Char(p), Token::Char(q)) => p == q,
                    _ => true,
                };
                if compatible {
                    stack.push((i + 1, j + 1));
                }
            }
            _ => {}
        }
    }
    false
}

/// Which grants a workload receives from: a pattern over project, type and id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    pub project: Pattern,
    pub kind: Pattern,
    pub id: Pattern,
}

impl Selector {
    pub fn matches(&self, workload: &Workload) -> bool {
        self.project.matches(workload.project()) && self.kind.matches(workload.kind()) && self.id.matches(workload.id())
    }

    pub fn overlaps(&self, other: &Self) -> bool {
        self.project.overlaps(&other.project) && self.kind.overlaps(&other.kind) && self.id.overlaps(&other.id)
    }

    pub fn specificity(&self) -> Specificity {
        let fields = [self.project.rank(), self.kind.rank(), self.id.rank()];
        Specificity {
            exact: fields.iter().filter(|f| f.class == 2).count() as u8,
            literal_globs: fields.iter().filter(|f| f.class == 1 && f.literal_len > 0).count() as u8,
            fields,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "project={} type={} id={}", self.project, self.kind, self.id)
    }
}

/// How specific a selector is; a greater value wins (SPEC §2): the number of exact
/// fields, then of globs with literal text, then field by field (project, type, id)
/// exact beats glob beats `*` and a longer literal part beats a shorter one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Specificity {
    exact: u8,
    literal_globs: u8,
    fields: [FieldRank; 3],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct FieldRank {
    class: u8,
    literal_len: u16,
}

impl Specificity {
    pub fn cmp_desc(&self, other: &Self) -> Ordering {
        other.cmp(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(Some(s)).unwrap()
    }

    #[test]
    fn globs_match_as_shells_do() {
        assert!(p("billing-*").matches("billing-api"));
        assert!(p("billing-*").matches("billing-"));
        assert!(!p("billing-*").matches("billing"));
        assert!(p("a?c").matches("abc"));
        assert!(!p("a?c").matches("ac"));
        assert!(p("*-api-*").matches("x-api-y"));
        assert!(!p("*-api-*").matches("x-ap-y"));
        assert!(p("*a*a*a*").matches("aaa"));
        assert!(!p("*a*a*a*b").matches("aaaaaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn overlap_of_globs_is_decided_exactly() {
        assert!(p("billing-*").overlaps(&p("*-api")));
        assert!(!p("billing-*").overlaps(&p("web-*")));
        assert!(p("a*").overlaps(&p("*b")));
        assert!(!p("a?").overlaps(&p("abc*")));
        assert!(p("a?c").overlaps(&p("*c")));
        assert!(!p("x").overlaps(&p("y*")));
    }

    #[test]
    fn specificity_orders_exact_then_literal_globs_then_fields() {
        let sel = |a: &str, b: &str, c: &str| {
            Selector {
                project: p(a),
                kind: p(b),
                id: p(c),
            }
            .specificity()
        };
        assert!(sel("p", "t", "i") > sel("p", "t", "i*"));
        assert!(sel("p", "t", "i*") > sel("p", "t", "*"));
        assert!(sel("p", "*", "*") < sel("p-*", "t", "*"));
        assert!(sel("p", "*", "*") > sel("*", "t", "*"));
        assert!(sel("bill*", "*", "*") > sel("b*", "*", "*"));
        assert_eq!(sel("a*", "*", "*"), sel("b*", "*", "*"));
    }
}

//! Claim rules: conditions on a token's claims, every one of which must hold.

use serde_json::Value;

/// How a claim is compared with a rule's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// The claim equals the value.
    Equals,
    /// The claim does not equal the value (a missing claim still fails).
    NotEquals,
    /// The claim is one of the values (a list).
    In,
    /// The claim is none of the values (a list).
    NotIn,
    /// The claim (a list, or a string) contains the value.
    Contains,
    /// The claim is present (the value is ignored).
    Exists,
    /// Numbers: the claim is greater than the value.
    Gt,
    /// Numbers: the claim is less than the value.
    Lt,
    /// Numbers: greater than or equal.
    Gte,
    /// Numbers: less than or equal.
    Lte,
    /// Strings: the claim matches a glob (`*` any run, `?` one character).
    Glob,
}

/// One rule: `claim` (a dotted path into nested objects), an operator, a value.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRule {
    claim: String,
    operator: Operator,
    value: Value,
}

impl ClaimRule {
    /// A rule on `claim` (`a.b` reaches `{"a": {"b": ...}}`).
    pub fn new(claim: impl Into<String>, operator: Operator, value: Value) -> Self {
        Self {
            claim: claim.into(),
            operator,
            value,
        }
    }

    /// The claim's path.
    pub fn claim(&self) -> &str {
        &self.claim
    }

    /// Whether `claims` satisfy the rule. A missing claim never does.
    pub fn holds(&self, claims: &Value) -> bool {
        let Some(c) = self
            .claim
            .split('.')
            .try_fold(claims, |v, part| v.get(part))
        else {
            return false;
        };
        let num = |v: &Value| v.as_f64();
        let v = &self.value;
        match self.operator {
            Operator::Exists => true,
            Operator::Equals => c == v,
            Operator::NotEquals => c != v,
            Operator::In => v.as_array().is_some_and(|a| a.contains(c)),
            Operator::NotIn => v.as_array().is_some_and(|a| !a.contains(c)),
            Operator::Contains => match (c, v) {
                (Value::Array(a), _) => a.contains(v),
                (Value::String(s), Value::String(sub)) => s.contains(sub.as_str()),
                _ => false,
            },
            Operator::Gt | Operator::Lt | Operator::Gte | Operator::Lte => {
                let (Some(a), Some(b)) = (num(c), num(v)) else {
                    return false;
                };
                match self.operator {
                    Operator::Gt => a > b,
                    Operator::Lt => a < b,
                    Operator::Gte => a >= b,
                    _ => a <= b,
                }
            }
            Operator::Glob => match (c.as_str(), v.as_str()) {
                (Some(s), Some(p)) => glob(p.as_bytes(), s.as_bytes()),
                _ => false,
            },
        }
    }
}

/// `*` matches any run, `?` one byte; iterative, linear in practice (no backtracking blow-up).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_on_nested_and_missing_claims() {
        let claims =
            json!({"role": "reader", "org": {"id": 7, "tags": ["a", "b"]}, "sub": "user-42"});
        let r = |c: &str, op, v| ClaimRule::new(c, op, v).holds(&claims);
        assert!(r("role", Operator::In, json!(["reader", "admin"])));
        assert!(!r("role", Operator::NotIn, json!(["reader"])));
        assert!(r("org.id", Operator::Gte, json!(7)));
        assert!(!r("org.id", Operator::Gt, json!(7)));
        assert!(r("org.tags", Operator::Contains, json!("b")));
        assert!(r("sub", Operator::Glob, json!("user-*")));
        assert!(!r("sub", Operator::Glob, json!("admin-*")));
        assert!(r("sub", Operator::Exists, Value::Null));
        // A rule on a missing claim fails, whatever the operator.
        for op in [Operator::NotEquals, Operator::NotIn, Operator::Exists] {
            assert!(!r("missing", op, json!(["x"])));
        }
        assert!(glob(b"a*b*c", b"aXXbYYc") && !glob(b"a*b", b"ac"));
    }
}

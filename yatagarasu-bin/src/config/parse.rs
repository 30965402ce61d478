//! YAML text to a [`Config`]: one document, `${VAR}` substitution in values only, and serde errors
//! turned into `path: problem` lines with suggestions for misspelt keys.

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use super::{Config, ConfigError};

/// Parse YAML text into a `Config` (no semantic validation yet).
pub(super) fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| ConfigError::one(format!("YAML syntax: {e}")))?;
    let doc = match docs.as_slice() {
        [one] => one,
        [] => return Err(ConfigError::one("the configuration file is empty")),
        _ => {
            return Err(ConfigError::one(
                "the configuration file holds more than one YAML document",
            ));
        }
    };
    let mut problems = Vec::new();
    let value = to_json(doc, "", env, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    serde_path_to_error::deserialize(value).map_err(|e| ConfigError::one(describe(&e)))
}

/// Convert the YAML tree to JSON, substituting `${VAR}` in string scalars (values only: keys and
/// comments are never touched, and a substituted value is always a single scalar, so it cannot inject
/// structure).
fn to_json(
    y: &Yaml,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Value {
    match y {
        Yaml::Null | Yaml::BadValue => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .map_or(Value::String(r.clone()), Value::from),
        Yaml::String(s) => match substitute(s, env) {
            Ok(v) => Value::String(v),
            Err(e) => {
                problems.push(format!("{}: {e}", display_path(path)));
                Value::Null
            }
        },
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{path}[{i}]"), env, problems))
                .collect(),
        ),
        Yaml::Hash(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => {
                        problems.push(format!(
                            "{}: keys must be plain names, found {other:?}",
                            display_path(path)
                        ));
                        continue;
                    }
                };
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                out.insert(key, to_json(v, &child, env, problems));
            }
            Value::Object(out)
        }
        Yaml::Alias(_) => {
            problems.push(format!(
                "{}: YAML aliases are not supported",
                display_path(path)
            ));
            Value::Null
        }
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "(top level)" } else { path }
}

/// Replace `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
pub(super) fn substitute(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`${{{expr}}}` is not a valid variable reference"));
            }
            match (env(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set and has no default"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `path: message`, with a suggestion for misspelt keys.
fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let msg = e.inner().to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let base = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        let full = if path.ends_with(field) {
            path.clone()
        } else {
            format!("{base}{field}")
        };
        let suggestion = candidates
            .iter()
            .map(|c| (levenshtein(field, c), *c))
            .filter(|(d, c)| *d <= 2.max(c.len() / 3))
            .min()
            .map(|(_, c)| format!(", did you mean {c}?"))
            .unwrap_or_else(|| {
                if candidates.is_empty() {
                    String::new()
                } else {
                    format!(" (expected one of: {})", candidates.join(", "))
                }
            });
        return format!("{full}: unknown field{suggestion}");
    }
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        let base = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        return format!("{base}{field}: missing field");
    }
    let path = if path == "." {
        "(top level)".to_owned()
    } else {
        path
    };
    format!("{path}: {msg}")
}

pub(super) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

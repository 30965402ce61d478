//! Config values that may arrive as strings: `${VAR}` substitution always yields a string, so numbers
//! and booleans are parsed from strings too.

use serde::Deserialize;
use serde_json::Value;

/// Numbers and booleans may come from `${VAR}` substitution as strings.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    match &v {
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a valid value here"))),
        _ => serde_json::from_value(v).map_err(serde::de::Error::custom),
    }
}

pub(crate) fn lenient_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + serde::de::DeserializeOwned,
{
    lenient(d).map(Some)
}

//! Rego evaluated in the process, with regorus.

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value;
use yatagarasu_core::{Error, ErrorKind};

/// A Rego policy evaluated in the process: no policy server to run or to lose. Rego v1 syntax (as
/// OPA 1.0: `allow if ...`). Allowed when the rule is `true`; `false` or undefined for the input
/// is a denial; another value is a failure (see [`FailMode`](super::FailMode)).
///
/// The built-ins available are regorus's core set with `regex`, `glob`, `net`, `base64`, `hex` and
/// `urlquery`; time built-ins are not compiled in (token expiry is checked before the policy runs).
#[derive(Clone)]
pub struct Rego {
    /// Policies parsed and prepared once; each evaluation runs on a clone.
    engine: Box<regorus::Engine>,
    rule: String,
}

impl std::fmt::Debug for Rego {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rego").field("rule", &self.rule).finish()
    }
}

impl Rego {
    /// The policy `source` (named `name` in errors) and the rule to evaluate, as
    /// `data.<package>.<rule>` (e.g. `data.yatagarasu.authz.allow`). The policy is parsed and the
    /// rule resolved here, so a policy that does not parse or lacks the rule is an error now, not
    /// on the first request.
    pub fn new(name: &str, source: &str, query: &str) -> Result<Self, Error> {
        let config = |m: String| Error::new(ErrorKind::Config, m);
        if !query.starts_with("data.") || query.len() == "data.".len() {
            return Err(config(format!(
                "query: `{query}` must name a rule as `data.<package>.<rule>`"
            )));
        }
        let mut engine = regorus::Engine::new();
        engine
            .add_policy(name.to_owned(), source.to_owned())
            .map_err(|e| config(format!("{name}: {e}")))?;
        // Prepare once (and learn now whether the rule exists): clones start prepared.
        engine.set_input(regorus::Value::new_object());
        engine
            .eval_rule(query.to_owned())
            .map_err(|e| config(format!("query: `{query}`: {e}")))?;
        Ok(Self {
            engine: Box::new(engine),
            rule: query.to_owned(),
        })
    }

    /// Evaluate for `input`, giving up after `timeout`.
    pub(super) fn ask(&self, input: Value, timeout: Duration) -> Result<bool, String> {
        let mut engine = (*self.engine).clone();
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: timeout,
            check_interval: NonZeroU32::MIN,
        });
        engine.set_input(regorus::Value::from(input));
        match engine.eval_rule(self.rule.clone()) {
            Ok(regorus::Value::Bool(b)) => Ok(b),
            Ok(regorus::Value::Undefined) => Ok(false),
            Ok(_) => Err("the policy's result is not a boolean".to_owned()),
            Err(e) => Err(format!("evaluation failed: {e}")),
        }
    }
}

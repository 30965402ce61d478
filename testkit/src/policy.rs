//! Policy servers for authorization tests, speaking the real wire formats:
//! - OPA's REST data API (`POST /v1/data/<path>` with `{"input": ...}`), evaluating real Rego with
//!   regorus (the engine behind the proxy's `type: rego`);
//! - OpenFGA's Check API (`POST /stores/<id>/check`) over a tuple store the test edits.
//!
//! Both count their calls, can hold their answers until released (a slow server, for timeouts and
//! coalescing), and stop for real when dropped (connection refused afterwards).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::stub::{HttpLoop, StubRequest};

enum Brain {
    Opa(Box<regorus::Engine>),
    OpenFga {
        store_id: String,
        api_token: Option<String>,
        tuples: Mutex<HashSet<(String, String, String)>>,
    },
}

struct Shared {
    brain: Brain,
    calls: AtomicU64,
    waiting: AtomicUsize,
    /// `true`: answers wait until it turns `false`.
    held: watch::Sender<bool>,
    last_body: Mutex<Option<Value>>,
}

/// An OPA or OpenFGA server on 127.0.0.1. Stops when dropped.
pub struct PolicyServer {
    server: HttpLoop,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PolicyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyServer")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

fn answer(status: u16, body: &Value) -> http::Response<Bytes> {
    crate::response(
        status,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}

fn decide(shared: &Shared, path: &str, headers: &http::HeaderMap, body: &[u8]) -> (u16, Value) {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return (
            400,
            json!({"code": "invalid_parameter", "message": "body is not JSON"}),
        );
    };
    *shared.last_body.lock().expect("last body") = Some(body.clone());
    match &shared.brain {
        Brain::Opa(engine) => {
            let Some(rule) = path.strip_prefix("/v1/data/") else {
                return (404, json!({"code": "resource_not_found"}));
            };
            let mut engine = (**engine).clone();
            engine.set_input(regorus::Value::from(
                body.get("input").cloned().unwrap_or(Value::Null),
            ));
            match engine.eval_rule(format!("data.{}", rule.replace('/', "."))) {
                Ok(regorus::Value::Undefined) => (200, json!({})),
                Ok(v) => (
                    200,
                    json!({ "result": serde_json::to_value(&v).unwrap_or(Value::Null) }),
                ),
                Err(e) => (
                    500,
                    json!({"code": "internal_error", "message": e.to_string()}),
                ),
            }
        }
        Brain::OpenFga {
            store_id,
            api_token,
            tuples,
        } => {
            if path != format!("/stores/{store_id}/check") {
                return (404, json!({"code": "store_id_not_found"}));
            }
            if let Some(token) = api_token {
                let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
                if sent != Some(format!("Bearer {token}").as_str()) {
                    return (401, json!({"code": "unauthenticated"}));
                }
            }
            let field = |name: &str| {
                body.pointer(&format!("/tuple_key/{name}"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let (Some(user), Some(relation), Some(object)) =
                (field("user"), field("relation"), field("object"))
            else {
                return (400, json!({"code": "validation_error"}));
            };
            let allowed = tuples
                .lock()
                .expect("tuples")
                .contains(&(user, relation, object));
            (200, json!({ "allowed": allowed, "resolution": "" }))
        }
    }
}

impl PolicyServer {
    /// An OPA server evaluating the Rego `policy` (v1 syntax).
    ///
    /// # Panics
    /// If the policy does not parse, or no port can be bound.
    pub async fn opa(policy: &str) -> Self {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("policy.rego".to_owned(), policy.to_owned())
            .expect("the test policy parses");
        Self::start(Brain::Opa(Box::new(engine))).await
    }

    /// An OpenFGA server with store `store_id`, requiring `api_token` when given, holding `tuples`
    /// as `(user, relation, object)`.
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn openfga(
        store_id: &str,
        api_token: Option<&str>,
        tuples: &[(&str, &str, &str)],
    ) -> Self {
        let tuples = tuples
            .iter()
            .map(|(u, r, o)| ((*u).to_owned(), (*r).to_owned(), (*o).to_owned()))
            .collect();
        Self::start(Brain::OpenFga {
            store_id: store_id.to_owned(),
            api_token: api_token.map(str::to_owned),
            tuples: Mutex::new(tuples),
        })
        .await
    }

    async fn start(brain: Brain) -> Self {
        let shared = Arc::new(Shared {
            brain,
            calls: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            held: watch::channel(false).0,
            last_body: Mutex::new(None),
        });
        let serving = Arc::clone(&shared);
        let server = HttpLoop::start(move |req: StubRequest| {
            let shared = Arc::clone(&serving);
            async move {
                shared.calls.fetch_add(1, Ordering::SeqCst);
                let mut held = shared.held.subscribe();
                if *held.borrow() {
                    shared.waiting.fetch_add(1, Ordering::SeqCst);
                    let _ = held.wait_for(|h| !*h).await;
                    shared.waiting.fetch_sub(1, Ordering::SeqCst);
                }
                let (status, value) = decide(&shared, req.uri.path(), &req.headers, &req.body);
                answer(status, &value)
            }
        })
        .await;
        Self { server, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Requests received so far.
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Requests waiting for [`release`](Self::release) now.
    pub fn waiting(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    /// The body of the last request.
    ///
    /// # Panics
    /// If the lock is poisoned.
    pub fn last_body(&self) -> Option<Value> {
        self.shared.last_body.lock().expect("last body").clone()
    }

    /// Hold every answer until [`release`](Self::release).
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Answer the held requests, and the next ones at once.
    pub fn release(&self) {
        self.shared.held.send_replace(false);
    }

    /// OpenFGA: add the tuple `(user, relation, object)`.
    ///
    /// # Panics
    /// If this is an OPA server.
    pub fn write_tuple(&self, user: &str, relation: &str, object: &str) {
        let Brain::OpenFga { tuples, .. } = &self.shared.brain else {
            panic!("write_tuple on an OPA server");
        };
        tuples.lock().expect("tuples").insert((
            user.to_owned(),
            relation.to_owned(),
            object.to_owned(),
        ));
    }
}

impl PolicyServer {
    /// Stop: close the listener and every open connection (later connects are refused, and a
    /// pooled keep-alive connection fails too).
    pub fn stop(&self) {
        self.server.stop();
    }
}

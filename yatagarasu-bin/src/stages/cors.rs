//! The CORS stage and the read-only method policy: OPTIONS is answered here (a CORS preflight when
//! the bucket has CORS rules, else a plain `Allow`), GET and HEAD go on as object requests, anything
//! else is 405. On the way out, CORS headers are added to every answer of the bucket, errors included.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use yatagarasu_core::{Error, ErrorKind};

use super::response::{ALLOW, ProxyBody, empty_response};
use super::routing::RequestContext;
use crate::cors::Preflight;
use crate::routes::BucketRoute;

/// What a bucket request is after this stage.
#[derive(Debug)]
pub(crate) enum Next {
    /// Answered here (OPTIONS).
    Answered(Response<ProxyBody>),
    /// An object read.
    Object(ObjectMethod),
}

/// The methods that read objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectMethod {
    /// Metadata and body.
    Get,
    /// Metadata only.
    Head,
}

/// Answer OPTIONS, pass GET and HEAD on, refuse the rest.
pub(crate) fn run(ctx: &RequestContext<'_>, req: &Parts) -> Result<Next, Error> {
    let route = &ctx.route.route;
    match req.method {
        Method::GET => Ok(Next::Object(ObjectMethod::Get)),
        Method::HEAD => Ok(Next::Object(ObjectMethod::Head)),
        Method::OPTIONS => {
            let preflight = route
                .cors
                .as_ref()
                .map_or(Preflight::PlainOptions, |c| c.preflight(&req.headers));
            let mut resp = empty_response(StatusCode::NO_CONTENT);
            match preflight {
                Preflight::Allowed(h) => resp.headers_mut().extend(h),
                Preflight::Refused(why) => {
                    return Err(Error::new(
                        ErrorKind::AccessDenied,
                        format!("CORS preflight refused: {why}"),
                    ));
                }
                Preflight::PlainOptions => {}
            }
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            Ok(Next::Answered(resp))
        }
        ref other => Err(Error::new(
            ErrorKind::MethodNotAllowed,
            format!("{other} is not allowed: this proxy is read-only"),
        )),
    }
}

/// Add the bucket's CORS headers to an answer (not to preflight answers, which carry their own).
pub(crate) fn apply(route: &BucketRoute, method: &Method, req: &HeaderMap, resp: &mut HeaderMap) {
    if let Some(cors) = route.cors.as_ref()
        && method != Method::OPTIONS
    {
        cors.apply(req, resp);
    }
}

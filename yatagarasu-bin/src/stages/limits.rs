//! The limits stage: what a request may be before anything else looks at it. (Header size and count
//! are enforced by the HTTP server itself, see `ServerOptions`.)

use http::Uri;
use yatagarasu_core::{Error, ErrorKind};

/// The request target (path and query) must be at most `max` bytes, else 414.
pub(crate) fn check_target(uri: &Uri, max: usize) -> Result<(), Error> {
    let len = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if len > max {
        return Err(Error::new(
            ErrorKind::UriTooLong,
            format!("the request target is {len} bytes; the limit is {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_targets_are_refused() {
        let uri: Uri = "/b/key?x=1".parse().unwrap();
        assert!(check_target(&uri, 10).is_ok());
        assert_eq!(
            check_target(&uri, 9).unwrap_err().kind(),
            ErrorKind::UriTooLong
        );
    }
}

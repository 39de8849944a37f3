//! Redirect rules for the http step's `follow_redirects`: which answers redirect, the method
//! and body of the next request, and the headers dropped when the redirect leaves the origin.

use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE};
use hyper::Method;
use url::Url;

/// The request a redirect asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub url: Url,
    pub method: Method,
    /// 307 and 308 send the body again; the others turn the request into a body-less GET.
    pub keep_body: bool,
    /// The target is another origin: credentials of the step are not sent there.
    pub cross_origin: bool,
}

/// Where an answer redirects to, or `None` when it is not a redirect one can follow (no or
/// an unusable `Location`, a scheme other than http/https).
pub fn next(status: u16, method: &Method, from: &Url, location: Option<&str>) -> Option<Hop> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let url = from.join(location?).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let (method, keep_body) = match status {
        303 if *method != Method::HEAD => (Method::GET, false),
        301 | 302 if *method == Method::POST => (Method::GET, false),
        307 | 308 => (method.clone(), true),
        _ => (method.clone(), false),
    };
    let cross_origin = url.origin() != from.origin();
    Some(Hop {
        url,
        method,
        keep_body,
        cross_origin,
    })
}

/// Drops what must not follow a hop: the body's headers when the body is dropped, the
/// step's credentials and cookies when the origin changes.
pub fn strip(headers: &mut HeaderMap, hop: &Hop) {
    if !hop.keep_body {
        headers.remove(CONTENT_TYPE);
        headers.remove(CONTENT_LENGTH);
    }
    if hop.cross_origin {
        headers.remove(AUTHORIZATION);
        headers.remove(COOKIE);
        headers.remove("proxy-authorization");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn from() -> Url {
        Url::parse("https://shop.test/cart?x=1").unwrap()
    }

    #[test]
    fn methods_follow_the_status() {
        let hop = |status, m: Method| next(status, &m, &from(), Some("/next")).unwrap();
        assert_eq!(hop(303, Method::POST).method, Method::GET);
        assert_eq!(hop(303, Method::HEAD).method, Method::HEAD);
        assert_eq!(hop(302, Method::POST).method, Method::GET);
        assert_eq!(hop(301, Method::POST).method, Method::GET);
        assert_eq!(hop(302, Method::PUT).method, Method::PUT);
        assert!(!hop(302, Method::PUT).keep_body);
        let h = hop(307, Method::POST);
        assert_eq!((h.method, h.keep_body), (Method::POST, true));
        assert!(hop(308, Method::PUT).keep_body);
        assert_eq!(hop(302, Method::GET).url.as_str(), "https://shop.test/next");
    }

    #[test]
    fn only_redirects_with_a_usable_location_are_followed() {
        assert!(next(200, &Method::GET, &from(), Some("/x")).is_none());
        assert!(next(304, &Method::GET, &from(), Some("/x")).is_none());
        assert!(next(302, &Method::GET, &from(), None).is_none());
        assert!(next(302, &Method::GET, &from(), Some("ftp://x/")).is_none());
    }

    #[test]
    fn credentials_stay_within_the_origin() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert(COOKIE, HeaderValue::from_static("a=1"));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let same = next(307, &Method::POST, &from(), Some("/other")).unwrap();
        assert!(!same.cross_origin);
        let mut kept = h.clone();
        strip(&mut kept, &same);
        assert_eq!(kept.len(), 3);
        for loc in [
            "https://evil.test/",
            "http://shop.test/",
            "https://shop.test:8443/",
        ] {
            let hop = next(302, &Method::GET, &from(), Some(loc)).unwrap();
            assert!(hop.cross_origin, "{loc}");
            let mut s = h.clone();
            strip(&mut s, &hop);
            assert!(s.get(AUTHORIZATION).is_none() && s.get(COOKIE).is_none());
            assert!(s.get(CONTENT_TYPE).is_none());
        }
    }
}

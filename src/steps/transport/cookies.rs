//! Cookies through a `reqwest::cookie::Jar` (the run's jar, or a browser session's): the
//! `Cookie` header a request carries, and the `Set-Cookie` headers an answer stores.

use hyper::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::cookie::CookieStore;
use url::Url;

/// Adds the jar's cookies for `url`, unless the request already sets its own `Cookie` header.
pub fn apply(jar: &dyn CookieStore, url: &Url, headers: &mut HeaderMap) {
    if headers.contains_key(COOKIE) {
        return;
    }
    if let Some(v) = jar.cookies(url) {
        headers.insert(COOKIE, v);
    }
}

/// Stores every `Set-Cookie` of an answer from `url`.
pub fn store(jar: &dyn CookieStore, url: &Url, headers: &HeaderMap) {
    let mut set = headers.get_all(SET_COOKIE).iter().peekable();
    if set.peek().is_some() {
        jar.set_cookies(&mut set, url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use reqwest::cookie::Jar;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn stored_cookies_go_back_to_their_site_only() {
        let jar = Jar::default();
        let mut answer = HeaderMap::new();
        answer.append(SET_COOKIE, HeaderValue::from_static("session=abc; Path=/"));
        answer.append(
            SET_COOKIE,
            HeaderValue::from_static("theme=dark; Path=/app"),
        );
        store(&jar, &url("https://shop.test/login"), &answer);

        let mut h = HeaderMap::new();
        apply(&jar, &url("https://shop.test/app/x"), &mut h);
        let sent = h.get(COOKIE).unwrap().to_str().unwrap().to_string();
        assert!(
            sent.contains("session=abc") && sent.contains("theme=dark"),
            "{sent}"
        );

        let mut h = HeaderMap::new();
        apply(&jar, &url("https://shop.test/other"), &mut h);
        assert_eq!(h.get(COOKIE).unwrap(), "session=abc");

        let mut h = HeaderMap::new();
        apply(&jar, &url("https://elsewhere.test/"), &mut h);
        assert!(h.get(COOKIE).is_none());
    }

    #[test]
    fn a_cookie_header_of_the_step_wins() {
        let jar = Jar::default();
        jar.add_cookie_str("session=abc", &url("http://shop.test/"));
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("mine=1"));
        apply(&jar, &url("http://shop.test/"), &mut h);
        assert_eq!(h.get(COOKIE).unwrap(), "mine=1");
    }
}

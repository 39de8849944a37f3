//! Token validation with openidconnect's verifier: ID tokens (signature against the JWKS,
//! `iss`, `aud`, `exp`/`iat` with a clock skew, `nonce`, `at_hash`) and JWT access tokens
//! (RFC 9068: signature, `iss`, `aud`, `exp`). A failure names the check that failed.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AccessTokenHash, ClaimsVerificationError, ClientId, ClientSecret, IssuerUrl,
    Nonce, SignatureVerificationError,
};
use openidconnect::{JsonWebKey, JwsSigningAlgorithm};

use crate::outcome::Reason;
use crate::steps::StepError;

/// A failed check: `signature`, `iss`, `aud`, `exp`, `iat`, `nonce`, `at_hash`, `format`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub check: &'static str,
    pub detail: String,
}

impl Invalid {
    fn new(check: &'static str, detail: impl Into<String>) -> Self {
        Invalid {
            check,
            detail: detail.into(),
        }
    }

    /// The step error for a token of kind `what` (`ID token`, `access token`).
    pub fn into_step_error(self, what: &str) -> StepError {
        StepError::new(
            Reason::TokenInvalid,
            format!("{what} check `{}` failed: {}", self.check, self.detail),
        )
    }
}

/// What a token must satisfy.
pub struct Expect<'a> {
    pub issuer: &'a IssuerUrl,
    /// The audience that must be in `aud` (the client id, unless configured).
    pub audience: &'a str,
    /// Further audiences accepted next to it (the client id).
    pub also_trusted: &'a [String],
    /// For HMAC-signed ID tokens.
    pub client_secret: Option<&'a str>,
    /// Signing algorithms the provider announces.
    pub algs: &'a [CoreJwsSigningAlgorithm],
    pub clock_skew: Duration,
}

/// The `kid` in a JWT's header, without verifying anything.
pub fn header_kid(jwt: &str) -> Option<String> {
    let header = jwt.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("kid")?.as_str().map(str::to_string)
}

/// The payload of a JWT as JSON; call only after the token was verified.
fn payload(jwt: &str) -> Result<serde_json::Value, Invalid> {
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| Invalid::new("format", "not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| Invalid::new("format", format!("payload is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Invalid::new("format", format!("payload is not JSON: {e}")))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn verifier<'a>(e: &'a Expect<'a>, keys: &CoreJsonWebKeySet) -> CoreIdTokenVerifier<'a> {
    let client = ClientId::new(e.audience.to_string());
    let v = match e.client_secret {
        Some(s) => CoreIdTokenVerifier::new_confidential_client(
            client,
            ClientSecret::new(s.to_string()),
            e.issuer.clone(),
            keys.clone(),
        ),
        None => CoreIdTokenVerifier::new_public_client(client, e.issuer.clone(), keys.clone()),
    };
    let skew = e.clock_skew;
    let skew_secs = skew.as_secs() as i64;
    let trusted = e.also_trusted;
    let algs: Vec<CoreJwsSigningAlgorithm> = if e.algs.is_empty() {
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]
    } else {
        e.algs
            .iter()
            .filter(|a| **a != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect()
    };
    v.set_allowed_algs(algs)
        .set_other_audience_verifier_fn(move |aud| {
            trusted.iter().any(|t| t.as_str() == aud.as_str())
        })
        // `exp` is checked against a clock turned back by the skew ...
        .set_time_fn(move || (SystemTime::now() - skew).into())
        // ... and `iat` may be at most the skew in the future.
        .set_issue_time_verifier_fn(move |iat| {
            let ahead = iat.timestamp() - unix_now();
            if ahead > skew_secs {
                Err(format!(
                    "iat: issued {ahead}s in the future (clock skew allowed: {skew_secs}s)"
                ))
            } else {
                Ok(())
            }
        })
}

fn classify(e: ClaimsVerificationError, kid: Option<&str>) -> Invalid {
    use ClaimsVerificationError as C;
    match e {
        C::Expired(m) if m.starts_with("iat:") => {
            Invalid::new("iat", m.trim_start_matches("iat: "))
        }
        C::Expired(m) => Invalid::new("exp", m),
        C::InvalidAudience(m) => Invalid::new("aud", m),
        C::InvalidIssuer(m) => Invalid::new("iss", m),
        C::InvalidNonce(m) => Invalid::new("nonce", m),
        C::InvalidSubject(m) => Invalid::new("sub", m),
        C::InvalidAuthContext(m) => Invalid::new("acr", m),
        C::InvalidAuthTime(m) => Invalid::new("auth_time", m),
        C::SignatureVerification(SignatureVerificationError::NoMatchingKey) => Invalid::new(
            "signature",
            match kid {
                Some(k) => {
                    format!("no key `{k}` in the issuer's JWKS (fetched again; still unknown)")
                }
                None => "no key in the issuer's JWKS fits the token".to_string(),
            },
        ),
        C::SignatureVerification(s) => Invalid::new("signature", s.to_string()),
        C::Unsupported(m) => Invalid::new("format", m),
        other => Invalid::new("format", other.to_string()),
    }
}

/// Verifies an ID token; returns its claims. `nonce`: the one sent (authorization code flow),
/// else the nonce is not checked. `access_token`: checked against `at_hash` when present.
pub fn verify_id_token(
    token: &CoreIdToken,
    keys: &CoreJsonWebKeySet,
    e: &Expect<'_>,
    nonce: Option<&Nonce>,
    access_token: Option<&AccessToken>,
) -> Result<serde_json::Value, Invalid> {
    let raw = token.to_string();
    let kid = header_kid(&raw);
    let v = verifier(e, keys);
    let claims = match nonce {
        Some(n) => token.claims(&v, n),
        None => token.claims(&v, |_: Option<&Nonce>| Ok(())),
    }
    .map_err(|err| classify(err, kid.as_deref()))?;
    if let (Some(expected), Some(at)) = (claims.access_token_hash(), access_token) {
        let alg = token
            .signing_alg()
            .map_err(|s| Invalid::new("at_hash", s.to_string()))?;
        // HMAC tokens are keyed by the client secret, not by a JWKS entry.
        let shared;
        let key = match e.client_secret {
            Some(secret) if alg.uses_shared_secret() => {
                shared = CoreJsonWebKey::new_symmetric(secret.as_bytes().to_vec());
                &shared
            }
            _ => token
                .signing_key(&v)
                .map_err(|s| Invalid::new("at_hash", s.to_string()))?,
        };
        let actual = AccessTokenHash::from_token(at, alg, key)
            .map_err(|s| Invalid::new("at_hash", s.to_string()))?;
        if actual != *expected {
            return Err(Invalid::new(
                "at_hash",
                "the ID token's at_hash does not match the access token",
            ));
        }
    }
    payload(&raw)
}

/// Verifies a JWT access token (RFC 9068) for audience `e.audience`; returns its claims.
pub fn verify_access_token(
    raw: &str,
    keys: &CoreJsonWebKeySet,
    e: &Expect<'_>,
) -> Result<serde_json::Value, Invalid> {
    let token = CoreIdToken::from_str(raw).map_err(|_| {
        Invalid::new(
            "format",
            "the access token is not a JWT with iss, sub, aud, exp and iat (an opaque token cannot be checked)",
        )
    })?;
    let kid = header_kid(raw);
    // Access tokens carry `typ: at+jwt` and may name further audiences.
    let v = verifier(e, keys)
        .allow_all_jose_types()
        .set_other_audience_verifier_fn(|_| true);
    token
        .claims(&v, |_: Option<&Nonce>| Ok(()))
        .map_err(|err| classify(err, kid.as_deref()))?;
    payload(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_kid_reads_the_unverified_header() {
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"RS256","kid":"k-1"}"#);
        assert_eq!(
            header_kid(&format!("{header}.e30.sig")).as_deref(),
            Some("k-1")
        );
        assert_eq!(header_kid("not-a-jwt"), None);
    }

    #[test]
    fn payload_decodes_claims() {
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"alice"}"#);
        assert_eq!(payload(&format!("h.{p}.s")).unwrap()["sub"], "alice");
        assert_eq!(payload("opaque").unwrap_err().check, "format");
    }

    use openidconnect::core::{CoreHmacKey, CoreIdTokenClaims};
    use openidconnect::{Audience, EmptyAdditionalClaims, StandardClaims, SubjectIdentifier};

    const SECRET: &str = "client-secret-for-hs256";
    const ISS: &str = "https://idp.test";

    /// An HS256 ID token (signed with the client secret) issued `iat_offset` seconds from now.
    fn token(
        aud: &str,
        iat_offset: i64,
        life: i64,
        nonce: Option<&str>,
        at: Option<&str>,
    ) -> CoreIdToken {
        let now = SystemTime::now();
        let at_time = |secs: i64| {
            if secs >= 0 {
                now + Duration::from_secs(secs as u64)
            } else {
                now - Duration::from_secs((-secs) as u64)
            }
        };
        let claims = CoreIdTokenClaims::new(
            IssuerUrl::new(ISS.into()).unwrap(),
            vec![Audience::new(aud.into())],
            at_time(iat_offset + life).into(),
            at_time(iat_offset).into(),
            StandardClaims::new(SubjectIdentifier::new("alice".into())),
            EmptyAdditionalClaims {},
        )
        .set_nonce(nonce.map(|n| Nonce::new(n.into())));
        let access = at.map(|a| AccessToken::new(a.into()));
        CoreIdToken::new(
            claims,
            &CoreHmacKey::new(SECRET),
            CoreJwsSigningAlgorithm::HmacSha256,
            access.as_ref(),
            None,
        )
        .unwrap()
    }

    fn check(
        t: &CoreIdToken,
        secret: &str,
        nonce: Option<&str>,
        at: Option<&str>,
    ) -> Result<serde_json::Value, Invalid> {
        let issuer = IssuerUrl::new(ISS.into()).unwrap();
        let algs = [CoreJwsSigningAlgorithm::HmacSha256];
        let e = Expect {
            issuer: &issuer,
            audience: "app",
            also_trusted: &[],
            client_secret: Some(secret),
            algs: &algs,
            clock_skew: Duration::from_secs(30),
        };
        let n = nonce.map(|n| Nonce::new(n.into()));
        let a = at.map(|a| AccessToken::new(a.into()));
        verify_id_token(
            t,
            &CoreJsonWebKeySet::new(vec![]),
            &e,
            n.as_ref(),
            a.as_ref(),
        )
    }

    #[test]
    fn a_good_id_token_passes_and_yields_its_claims() {
        let t = token("app", 0, 300, Some("n1"), Some("at-1"));
        let claims = check(&t, SECRET, Some("n1"), Some("at-1")).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["nonce"], "n1");
        assert!(claims["at_hash"].is_string());
    }

    #[test]
    fn each_failed_check_is_named() {
        let t = token("app", 0, 300, Some("n1"), Some("at-1"));
        assert_eq!(
            check(&t, "other-secret", Some("n1"), None)
                .unwrap_err()
                .check,
            "signature"
        );
        assert_eq!(
            check(&t, SECRET, Some("n2"), None).unwrap_err().check,
            "nonce"
        );
        assert_eq!(
            check(&t, SECRET, Some("n1"), Some("at-2"))
                .unwrap_err()
                .check,
            "at_hash"
        );
        let other = token("someone-else", 0, 300, None, None);
        assert_eq!(check(&other, SECRET, None, None).unwrap_err().check, "aud");
    }

    #[test]
    fn exp_and_iat_allow_the_clock_skew_and_no_more() {
        // Expired 10s ago: within the 30s skew.
        assert!(check(&token("app", -310, 300, None, None), SECRET, None, None).is_ok());
        // Expired 60s ago.
        let e = check(&token("app", -360, 300, None, None), SECRET, None, None).unwrap_err();
        assert_eq!(e.check, "exp");
        // Issued 10s in the future: fine; 120s: not.
        assert!(check(&token("app", 10, 300, None, None), SECRET, None, None).is_ok());
        let e = check(&token("app", 120, 300, None, None), SECRET, None, None).unwrap_err();
        assert_eq!(e.check, "iat", "{e:?}");
    }

    #[test]
    fn verification_errors_name_the_check() {
        let c = classify(ClaimsVerificationError::InvalidAudience("x".into()), None);
        assert_eq!(c.check, "aud");
        let c = classify(ClaimsVerificationError::Expired("iat: 90s".into()), None);
        assert_eq!((c.check, c.detail.as_str()), ("iat", "90s"));
        let c = classify(
            ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ),
            Some("k9"),
        );
        assert_eq!(c.check, "signature");
        assert!(c.detail.contains("k9"));
        let e = Invalid::new("nonce", "nonce mismatch").into_step_error("ID token");
        assert_eq!(e.reason, Reason::TokenInvalid);
        assert_eq!(e.message, "ID token check `nonce` failed: nonce mismatch");
    }
}

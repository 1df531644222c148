//! Signed tenant tokens: verification of a compact JWS (HS256, HS384, HS512), in plain Rust.
//!
//! `verify()` is pure: it gets the token, the keys and the rules, and returns the tenant or why
//! the token was rejected. HMAC and SHA-2 come from the RustCrypto crates (`hmac`, `sha2`), whose
//! `verify_slice` compares in constant time; base64url from `base64`; JSON from `serde_json`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};

/// Tokens longer than this are refused without being parsed.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// One configured key: an optional key id and the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub kid: Option<String>,
    pub secret: Vec<u8>,
}

/// The rules a token is checked against.
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    pub keys: &'a [Key],
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway: i64,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
    /// Where the tenant is: a top-level claim name or a dotted path (`app_metadata.tenant_id`).
    pub tenant_path: &'a str,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// Why a token was rejected. The words never contain the token or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NoKeysConfigured,
    Oversized,
    Malformed(&'static str),
    UnsupportedAlgorithm,
    UnknownKeyId,
    BadSignature,
    MissingExpiry,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    MissingTenant,
    TenantTooLong,
}

impl Rejection {
    /// Stable reason code for the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NoKeysConfigured => "no_keys_configured",
            Rejection::Oversized => "oversized",
            Rejection::Malformed(_) => "malformed",
            Rejection::UnsupportedAlgorithm => "unsupported_algorithm",
            Rejection::UnknownKeyId => "unknown_key_id",
            Rejection::BadSignature => "bad_signature",
            Rejection::MissingExpiry => "missing_expiry",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::WrongIssuer => "wrong_issuer",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::MissingTenant => "missing_tenant",
            Rejection::TenantTooLong => "tenant_too_long",
        }
    }

    pub fn words(&self) -> String {
        match self {
            Rejection::NoKeysConfigured => "no token keys are configured".into(),
            Rejection::Oversized => format!("it is longer than {MAX_TOKEN_BYTES} bytes"),
            Rejection::Malformed(what) => format!("it is malformed ({what})"),
            Rejection::UnsupportedAlgorithm => "its algorithm is not HS256, HS384 or HS512".into(),
            Rejection::UnknownKeyId => "its key id (kid) is not configured".into(),
            Rejection::BadSignature => "its signature does not match any configured key".into(),
            Rejection::MissingExpiry => "it has no exp claim".into(),
            Rejection::Expired => "it has expired".into(),
            Rejection::NotYetValid => "it is not valid yet (nbf)".into(),
            Rejection::WrongIssuer => "its issuer (iss) is not the configured one".into(),
            Rejection::WrongAudience => "its audience (aud) is not the configured one".into(),
            Rejection::MissingTenant => "it carries no tenant at the configured claim".into(),
            Rejection::TenantTooLong => "its tenant is longer than 256 bytes".into(),
        }
    }
}

#[derive(Clone, Copy)]
enum Algorithm {
    Hs256,
    Hs384,
    Hs512,
}

fn signature_matches(alg: Algorithm, secret: &[u8], signed: &[u8], signature: &[u8]) -> bool {
    macro_rules! check {
        ($hash:ty) => {{
            let Ok(mut mac) = <Hmac<$hash> as Mac>::new_from_slice(secret) else {
                return false;
            };
            mac.update(signed);
            mac.verify_slice(signature).is_ok() // constant-time comparison
        }};
    }
    match alg {
        Algorithm::Hs256 => check!(Sha256),
        Algorithm::Hs384 => check!(Sha384),
        Algorithm::Hs512 => check!(Sha512),
    }
}

fn decode_json(part: &str, what: &'static str) -> Result<Value, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Rejection::Malformed(what))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed(what))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(Rejection::Malformed(what))
    }
}

/// Follows a dotted path (`a.b.c`) through JSON objects.
pub fn lookup_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return None;
    }
    path.split('.')
        .try_fold(value, |v, key| v.as_object()?.get(key))
}

/// A tenant value from a claim: a non-empty string, or an integer.
pub fn tenant_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn number(payload: &Value, claim: &str) -> Result<Option<i64>, Rejection> {
    match payload.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|f| Some(f.floor() as i64))
            .ok_or(Rejection::Malformed("time claim")),
        Some(_) => Err(Rejection::Malformed("time claim")),
    }
}

/// Verifies a compact JWS and returns the tenant it carries.
pub fn verify(token: &str, rules: &Rules<'_>) -> Result<String, Rejection> {
    if rules.keys.is_empty() {
        return Err(Rejection::NoKeysConfigured);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::Oversized);
    }
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed("not three dot-separated parts"));
    };
    let header = decode_json(header_b64, "header")?;
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => Algorithm::Hs256,
        Some("HS384") => Algorithm::Hs384,
        Some("HS512") => Algorithm::Hs512,
        _ => return Err(Rejection::UnsupportedAlgorithm),
    };
    if header.get("crit").is_some() {
        return Err(Rejection::Malformed("crit header"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| Rejection::Malformed("signature"))?;
    let signed = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    let candidates: Vec<&Key> = match header.get("kid") {
        Some(Value::String(kid)) => {
            let keys: Vec<&Key> = rules
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect();
            if keys.is_empty() {
                return Err(Rejection::UnknownKeyId);
            }
            keys
        }
        Some(_) => return Err(Rejection::Malformed("kid")),
        None => rules.keys.iter().collect(),
    };
    // Every candidate is tried, so the time taken does not tell which key came close.
    let matched = candidates.iter().fold(false, |found, key| {
        signature_matches(alg, &key.secret, signed, &signature) | found
    });
    if !matched {
        return Err(Rejection::BadSignature);
    }
    let payload = decode_json(payload_b64, "payload")?;
    let exp = number(&payload, "exp")?.ok_or(Rejection::MissingExpiry)?;
    if rules.now > exp.saturating_add(rules.leeway) {
        return Err(Rejection::Expired);
    }
    if let Some(nbf) = number(&payload, "nbf")? {
        if rules.now.saturating_add(rules.leeway) < nbf {
            return Err(Rejection::NotYetValid);
        }
    }
    if let Some(issuer) = rules.issuer {
        if payload.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(Rejection::WrongIssuer);
        }
    }
    if let Some(audience) = rules.audience {
        let ok = match payload.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !ok {
            return Err(Rejection::WrongAudience);
        }
    }
    let tenant =
        tenant_of(lookup_path(&payload, rules.tenant_path)).ok_or(Rejection::MissingTenant)?;
    if tenant.len() > crate::claim::MAX_CLAIM_BYTES {
        return Err(Rejection::TenantTooLong);
    }
    Ok(tenant)
}

/// Parses `tenant_guard.token_keys`: comma-separated `kid:secret` or plain `secret` entries; a
/// secret written `base64:...` is decoded (standard alphabet).
pub fn parse_keys(setting: &str) -> Result<Vec<Key>, &'static str> {
    let mut keys = Vec::new();
    for entry in setting.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (kid, secret) = match entry.split_once(':') {
            Some((kid, secret)) if kid != "base64" => (Some(kid.trim().to_string()), secret.trim()),
            _ => (None, entry),
        };
        let secret = match secret.strip_prefix("base64:") {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "a base64: secret is not valid base64")?,
            None => secret.as_bytes().to_vec(),
        };
        if secret.len() < 16 {
            return Err("every secret must be at least 16 bytes long");
        }
        keys.push(Key { kid, secret });
    }
    Ok(keys)
}

/// Builds a token (for the unit tests).
#[cfg(test)]
pub fn sign(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signed = format!("{h}.{p}");
    let sig = match header.get("alg").and_then(Value::as_str) {
        Some("HS384") => {
            let mut m = <Hmac<Sha384> as Mac>::new_from_slice(secret).expect("hmac key");
            m.update(signed.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Some("HS512") => {
            let mut m = <Hmac<Sha512> as Mac>::new_from_slice(secret).expect("hmac key");
            m.update(signed.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("hmac key");
            m.update(signed.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000;

    fn keys() -> Vec<Key> {
        vec![
            Key {
                kid: Some("old".into()),
                secret: b"old-secret-old-secret-old-secret".to_vec(),
            },
            Key {
                kid: Some("new".into()),
                secret: SECRET.to_vec(),
            },
        ]
    }

    fn rules(keys: &[Key]) -> Rules<'_> {
        Rules {
            keys,
            leeway: 30,
            issuer: None,
            audience: None,
            tenant_path: "tenant_id",
            now: NOW,
        }
    }

    fn token(header: Value, payload: Value) -> String {
        sign(&header, &payload, SECRET)
    }

    #[test]
    fn a_valid_token_yields_its_tenant_with_every_hmac_size() {
        let k = keys();
        for alg in ["HS256", "HS384", "HS512"] {
            let t = token(
                json!({"alg": alg, "kid": "new"}),
                json!({"tenant_id": "acme", "exp": NOW + 60}),
            );
            assert_eq!(verify(&t, &rules(&k)), Ok("acme".into()), "{alg}");
        }
    }

    #[test]
    fn keys_rotate_by_kid_and_without_kid_any_key_may_match() {
        let k = keys();
        let old = sign(
            &json!({"alg": "HS256", "kid": "old"}),
            &json!({"tenant_id": "a", "exp": NOW + 60}),
            b"old-secret-old-secret-old-secret",
        );
        assert_eq!(verify(&old, &rules(&k)), Ok("a".into()));
        let no_kid = token(
            json!({"alg": "HS256"}),
            json!({"tenant_id": "a", "exp": NOW + 60}),
        );
        assert_eq!(verify(&no_kid, &rules(&k)), Ok("a".into()));
        let wrong_kid = token(
            json!({"alg": "HS256", "kid": "old"}),
            json!({"tenant_id": "a", "exp": NOW + 60}),
        );
        assert_eq!(verify(&wrong_kid, &rules(&k)), Err(Rejection::BadSignature));
        let unknown = token(
            json!({"alg": "HS256", "kid": "x"}),
            json!({"tenant_id": "a", "exp": NOW + 60}),
        );
        assert_eq!(verify(&unknown, &rules(&k)), Err(Rejection::UnknownKeyId));
    }

    #[test]
    fn every_rejection_reason() {
        let k = keys();
        let r = rules(&k);
        let ok_payload = json!({"tenant_id": "a", "exp": NOW + 60});
        assert_eq!(verify("x", &rules(&[])), Err(Rejection::NoKeysConfigured));
        assert_eq!(
            verify(&"a".repeat(MAX_TOKEN_BYTES + 1), &r),
            Err(Rejection::Oversized)
        );
        assert!(matches!(verify("a.b", &r), Err(Rejection::Malformed(_))));
        assert!(matches!(
            verify("a.b.c.d", &r),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(verify("!!.b.c", &r), Err(Rejection::Malformed(_))));
        // alg none, and an unsigned token
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
            URL_SAFE_NO_PAD.encode(ok_payload.to_string())
        );
        assert_eq!(verify(&none, &r), Err(Rejection::UnsupportedAlgorithm));
        let rs = token(json!({"alg": "RS256"}), ok_payload.clone());
        assert_eq!(verify(&rs, &r), Err(Rejection::UnsupportedAlgorithm));
        // tampered payload
        let good = token(json!({"alg": "HS256"}), ok_payload.clone());
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(json!({"tenant_id": "b", "exp": NOW + 60}).to_string());
        parts[1] = &evil;
        assert_eq!(verify(&parts.join("."), &r), Err(Rejection::BadSignature));
        assert_eq!(
            verify(
                &token(json!({"alg": "HS256"}), json!({"tenant_id": "a"})),
                &r
            ),
            Err(Rejection::MissingExpiry)
        );
        assert_eq!(
            verify(
                &token(
                    json!({"alg": "HS256"}),
                    json!({"tenant_id": "a", "exp": NOW - 31})
                ),
                &r
            ),
            Err(Rejection::Expired)
        );
        assert_eq!(
            verify(
                &token(
                    json!({"alg": "HS256"}),
                    json!({"tenant_id": "a", "exp": NOW + 60, "nbf": NOW + 31})
                ),
                &r
            ),
            Err(Rejection::NotYetValid)
        );
        assert_eq!(
            verify(
                &token(json!({"alg": "HS256"}), json!({"exp": NOW + 60})),
                &r
            ),
            Err(Rejection::MissingTenant)
        );
        assert_eq!(
            verify(
                &token(
                    json!({"alg": "HS256"}),
                    json!({"tenant_id": "", "exp": NOW + 60})
                ),
                &r
            ),
            Err(Rejection::MissingTenant)
        );
        assert_eq!(
            verify(
                &token(
                    json!({"alg": "HS256"}),
                    json!({"tenant_id": "x".repeat(257), "exp": NOW + 60})
                ),
                &r
            ),
            Err(Rejection::TenantTooLong)
        );
    }

    #[test]
    fn clock_skew_is_tolerated_within_the_leeway() {
        let k = keys();
        let r = rules(&k);
        let t = |p: Value| token(json!({"alg": "HS256"}), p);
        assert!(verify(&t(json!({"tenant_id": "a", "exp": NOW - 30})), &r).is_ok());
        assert!(verify(
            &t(json!({"tenant_id": "a", "exp": NOW + 60, "nbf": NOW + 30})),
            &r
        )
        .is_ok());
    }

    #[test]
    fn issuer_audience_and_nested_tenant_claims() {
        let k = keys();
        let r = Rules {
            issuer: Some("https://auth"),
            audience: Some("api"),
            tenant_path: "app_metadata.tenant_id",
            ..rules(&k)
        };
        let good = json!({"iss": "https://auth", "aud": ["web", "api"], "exp": NOW + 60, "app_metadata": {"tenant_id": 42}});
        assert_eq!(
            verify(&token(json!({"alg": "HS256"}), good.clone()), &r),
            Ok("42".into())
        );
        let mut bad = good.clone();
        bad["iss"] = json!("https://evil");
        assert_eq!(
            verify(&token(json!({"alg": "HS256"}), bad), &r),
            Err(Rejection::WrongIssuer)
        );
        let mut bad = good.clone();
        bad["aud"] = json!("web");
        assert_eq!(
            verify(&token(json!({"alg": "HS256"}), bad), &r),
            Err(Rejection::WrongAudience)
        );
    }

    #[test]
    fn key_settings_parse() {
        assert_eq!(
            parse_keys("k1:0123456789abcdef, 0123456789abcdefXX").unwrap(),
            vec![
                Key {
                    kid: Some("k1".into()),
                    secret: b"0123456789abcdef".to_vec()
                },
                Key {
                    kid: None,
                    secret: b"0123456789abcdefXX".to_vec()
                },
            ]
        );
        assert_eq!(
            parse_keys("k:base64:MDEyMzQ1Njc4OWFiY2RlZg==").unwrap()[0].secret,
            b"0123456789abcdef".to_vec()
        );
        assert!(parse_keys("k:short").is_err());
        assert!(parse_keys("k:base64:!!!").is_err());
        assert_eq!(parse_keys("").unwrap(), vec![]);
    }

    #[test]
    fn no_rejection_words_echo_the_token() {
        let all = [
            Rejection::NoKeysConfigured,
            Rejection::Oversized,
            Rejection::Malformed("header"),
            Rejection::UnsupportedAlgorithm,
            Rejection::UnknownKeyId,
            Rejection::BadSignature,
            Rejection::MissingExpiry,
            Rejection::Expired,
            Rejection::NotYetValid,
            Rejection::WrongIssuer,
            Rejection::WrongAudience,
            Rejection::MissingTenant,
            Rejection::TenantTooLong,
        ];
        for r in all {
            assert!(!r.words().contains("eyJ"), "{r:?}");
            assert!(!r.code().is_empty());
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_input_never_panics_and_never_verifies(s in ".{0,300}") {
                let k = keys();
                prop_assert!(verify(&s, &rules(&k)).is_err());
            }

            #[test]
            fn arbitrary_three_part_tokens_never_verify(a in "[A-Za-z0-9_-]{0,60}", b in "[A-Za-z0-9_-]{0,120}", c in "[A-Za-z0-9_-]{0,90}") {
                let k = keys();
                let token = format!("{a}.{b}.{c}");
                prop_assert!(verify(&token, &rules(&k)).is_err());
            }

            #[test]
            fn flipping_any_byte_of_a_valid_token_rejects_it(pos in 0usize..200, byte in any::<u8>()) {
                let k = keys();
                let t = token(json!({"alg": "HS256"}), json!({"tenant_id": "acme", "exp": NOW + 60}));
                let mut bytes = t.clone().into_bytes();
                let i = pos % bytes.len();
                prop_assume!(bytes[i] != byte);
                bytes[i] = byte;
                if let Ok(s) = String::from_utf8(bytes) {
                    // Changing only base64 padding bits of the signature may decode to the same
                    // bytes; everything else must be rejected.
                    let result = verify(&s, &rules(&k));
                    if result.is_ok() {
                        prop_assert_eq!(URL_SAFE_NO_PAD.decode(s.rsplit('.').next().unwrap()).ok(),
                                        URL_SAFE_NO_PAD.decode(t.rsplit('.').next().unwrap()).ok());
                    }
                }
            }

            #[test]
            fn claim_paths_never_panic(path in "[a-z._]{0,30}", doc in prop::collection::vec(any::<u8>(), 0..64)) {
                let v: Value = serde_json::from_slice(&doc).unwrap_or(Value::Null);
                let _ = tenant_of(lookup_path(&v, &path));
            }
        }
    }
}

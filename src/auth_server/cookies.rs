//! The authorization server's browser cookies, sealed with the vault's key (AES-256-GCM, the purpose in
//! the additional data, so one cookie's value cannot stand in for another's) and carrying their own
//! expiry: the authorization request in progress ([`AUTHORIZE`]) and the signed-in session ([`SESSION`]).
//! Both are `HttpOnly` and `SameSite=Lax` (the way back from a provider's sign-in is a cross-site
//! top-level GET), so a cross-site form post arrives without them.

use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::vault::{Vault, now};

/// The authorization request in progress.
pub const AUTHORIZE: &str = "devgate_authorize";
/// Who is signed in.
pub const SESSION: &str = "devgate_session";

/// What the additional data names as the "user" of every sealed cookie value.
const SEAL_USER: &str = "devgate-auth-server";

#[derive(serde::Deserialize, Serialize)]
struct Envelope<T> {
    exp: i64,
    value: T,
}

/// Seals `value` for the cookie `name`, valid for `secs`.
pub fn seal<T: Serialize>(vault: &Vault, name: &str, value: &T, secs: i64) -> String {
    let envelope = Envelope {
        exp: now() + secs,
        value,
    };
    let json = serde_json::to_string(&envelope).unwrap_or_default();
    vault.seal(SEAL_USER, name, &json)
}

/// The unexpired value of the cookie `name` in a request, if it opens.
pub fn open<T: DeserializeOwned>(vault: &Vault, headers: &HeaderMap, name: &str) -> Option<T> {
    let sealed = crate::transport::pages::cookie(headers, name)?;
    let json = vault.open(SEAL_USER, name, sealed).ok()?;
    let envelope: Envelope<T> = serde_json::from_str(&json).ok()?;
    (envelope.exp > now()).then_some(envelope.value)
}

/// Appends a `Set-Cookie` for the whole site (`max_age` 0 clears it).
pub fn set(response: &mut Response, secure: bool, name: &str, value: &str, max_age: i64) {
    let cookie = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

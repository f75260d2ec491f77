//! The simulated provider's signing keys, its JWKS and the ID tokens it signs.
//!
//! ES256 keys are P-256 keys generated from random bytes (`p256`, already behind `jsonwebtoken`'s
//! `rust_crypto` backend); the RS256 key is a fixed test key, since generating RSA keys in a debug
//! build takes seconds. `jsonwebtoken` signs both.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

use super::IdpState;

/// A throwaway RSA key made for the simulated provider (`openssl genrsa 2048`); it signs nothing else.
const RSA_PEM: &str = include_str!("rsa-test-key.pem");
/// Its modulus, base64url (`openssl rsa -noout -modulus`, hex to bytes to base64url).
const RSA_N: &str = "orEVZvhhtEWDbD2A9IW-IAZPPsR_1v5B5uSd7XT3rE8G5dBCNxIBGkF2e7P2bt6q-lac5mCSIH2fdQU5bLqUtve6L77n1nIuSwwM9AXCNgEJjDjo_Rx554wg0K9SBHVmUPLMEQh-lOKApv1xQYvJgES28-tO3rago_ekrgOGqcFzlHSCWR49_TZX0DzYcgDwv3a7su1UI2QkBdze_rHCO_YRuSXJ4UAbBJVsh6Jal_3zcw07l9ngIGe20jF9EWq9Vu-AMkbf_8bKDlyGn7cYGNAzt7ssM7tz5fhDniCNrlCENzUl9n6ENDDz2vuL9N7vR9wISqWJyzmgvRGWnGbAVQ";
/// The RSA key's `kid`.
pub(super) const RSA_KID: &str = "sim-rsa-1";

/// A private key and the public JWK that verifies what it signs.
#[derive(Clone)]
pub(super) struct SigningKey {
    pub(super) kid: String,
    pub(super) alg: Algorithm,
    key: EncodingKey,
    pub(super) jwk: Value,
}

impl SigningKey {
    /// A new P-256 key under a new random `kid`.
    pub(super) fn es256() -> Self {
        let secret = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
                break k;
            }
        };
        let kid = format!(
            "sim-es-{}",
            URL_SAFE_NO_PAD.encode(rand::random::<[u8; 6]>())
        );
        let point = secret.public_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| {
            URL_SAFE_NO_PAD.encode(c.map(|b| &b[..]).unwrap_or_default())
        };
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": coordinate(point.x()), "y": coordinate(point.y()),
        });
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a valid P-256 key encodes as PKCS#8");
        Self {
            key: EncodingKey::from_ec_pem(pem.as_bytes()).expect("a PKCS#8 P-256 key"),
            kid,
            alg: Algorithm::ES256,
            jwk,
        }
    }

    /// The fixed RS256 test key.
    pub(super) fn rs256() -> Self {
        Self {
            key: EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("the bundled RSA test key"),
            kid: RSA_KID.into(),
            alg: Algorithm::RS256,
            jwk: json!({"kty": "RSA", "kid": RSA_KID, "alg": "RS256", "use": "sig", "n": RSA_N, "e": "AQAB"}),
        }
    }

    /// A signed JWT of `claims`, its header naming `kid` (normally this key's own).
    pub(super) fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_string());
        encode(&header, claims, &self.key).expect("signing with a valid key")
    }
}

/// The keys the provider publishes and signs with.
pub(super) struct KeyRing {
    /// The ES256 key in use; [`IdpState::rotate`] replaces it (the old one leaves the JWKS).
    pub(super) es256: SigningKey,
    pub(super) rs256: SigningKey,
}

impl KeyRing {
    pub(super) fn new() -> Self {
        Self {
            es256: SigningKey::es256(),
            rs256: SigningKey::rs256(),
        }
    }

    pub(super) fn jwks(&self) -> Value {
        json!({"keys": [self.es256.jwk, self.rs256.jwk]})
    }
}

/// `GET /jwks`.
pub(super) async fn jwks(State(state): State<Arc<IdpState>>) -> Response {
    let body = state.jwks();
    ([(header::CACHE_CONTROL, "max-age=300")], Json(body)).into_response()
}

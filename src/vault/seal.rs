//! AES-256-GCM sealing of the secrets devgate keeps (provider tokens, PKCE verifiers).
//!
//! A sealed value is one printable string, `v1.` + base64url(nonce ‖ ciphertext ‖ tag), with a fresh
//! random 96-bit nonce each time. The additional data is the length-prefixed (user, provider) pair, so a
//! value copied into another user's or provider's row does not open, and ("ab", "c") ≠ ("a", "bc").
//!
//! Other keys devgate needs (the cursor MAC key) are derived from the sealing key with a label, so one
//! secret serves every instance sharing a store and no key is ever used for two purposes.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::Sha256;

use super::StoreError;

/// Version prefix, so the format can change without guessing.
const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Additional data of the key check; it cannot be a length-prefixed pair (its first 4 bytes would
/// announce a 1.8 GB user name), so it never collides with a token's.
const CHECK_AAD: &[u8] = b"key-check";
const CHECK_MARKER: &str = "devgate key check";
/// HKDF salt of derived keys.
const KDF_SALT: &[u8] = b"devgate derived keys";

/// Seals and opens values with one 256-bit key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    /// HKDF over the same key, for keys with other purposes: the AES key itself is only ever used here.
    derive: Hkdf<Sha256>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { key: <redacted> }")
    }
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Self {
        let derive = Hkdf::<Sha256>::new(Some(KDF_SALT), &key);
        let key = Key::<Aes256Gcm>::from(key);
        Self {
            cipher: Aes256Gcm::new(&key),
            derive,
        }
    }

    /// A 256-bit key for the purpose `info` names, independent of the sealing key and of every other
    /// purpose's key.
    pub fn derive_key(&self, info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 8160.
        let _ = self.derive.expand(info, &mut out);
        out
    }

    /// Encrypts `plaintext` for (user, provider).
    pub fn seal(&self, user: &str, provider: &str, plaintext: &str) -> String {
        self.seal_with(&pair_aad(user, provider), plaintext)
    }

    /// Decrypts a value sealed for the same (user, provider) with the same key; anything else
    /// (another row's value, another key, a damaged string) is [`StoreError::Seal`].
    pub fn open(&self, user: &str, provider: &str, sealed: &str) -> Result<String, StoreError> {
        self.open_with(&pair_aad(user, provider), sealed)
    }

    /// A fixed marker sealed with this key, stored once so a later start can tell a wrong key.
    pub fn seal_check(&self) -> String {
        self.seal_with(CHECK_AAD, CHECK_MARKER)
    }

    /// Whether `sealed` is [`Sealer::seal_check`]'s output for this key.
    pub fn verify_check(&self, sealed: &str) -> bool {
        self.open_with(CHECK_AAD, sealed)
            .is_ok_and(|marker| marker == CHECK_MARKER)
    }

    fn seal_with(&self, aad: &[u8], plaintext: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad,
                },
            )
            // AES-GCM only refuses inputs of 64 GB and more.
            .expect("AES-GCM encryption of a small value");
        let mut raw = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    fn open_with(&self, aad: &[u8], sealed: &str) -> Result<String, StoreError> {
        let encoded = sealed.strip_prefix(PREFIX).ok_or(StoreError::Seal)?;
        let raw = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| StoreError::Seal)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(StoreError::Seal);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| StoreError::Seal)?;
        let plaintext = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Seal)?;
        String::from_utf8(plaintext).map_err(|_| StoreError::Seal)
    }
}

/// `len(user) ‖ user ‖ len(provider) ‖ provider`, lengths as 4-byte big-endian.
fn pair_aad(user: &str, provider: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + user.len() + provider.len());
    for part in [user, provider] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn round_trip() {
        let s = Sealer::new(KEY);
        let sealed = s.seal("alice", "bitbucket", "token-123");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("token-123"));
        assert!(
            sealed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        assert_eq!(s.open("alice", "bitbucket", &sealed).unwrap(), "token-123");
        let empty = s.seal("alice", "bitbucket", "");
        assert_eq!(s.open("alice", "bitbucket", &empty).unwrap(), "");
    }

    #[test]
    fn fresh_nonce_each_time() {
        let s = Sealer::new(KEY);
        assert_ne!(s.seal("u", "p", "same"), s.seal("u", "p", "same"));
    }

    #[test]
    fn bound_to_user_and_provider() {
        let s = Sealer::new(KEY);
        let sealed = s.seal("alice", "bitbucket", "token");
        assert!(matches!(
            s.open("bob", "bitbucket", &sealed),
            Err(StoreError::Seal)
        ));
        assert!(matches!(
            s.open("alice", "buddy", &sealed),
            Err(StoreError::Seal)
        ));
        let sealed = s.seal("ab", "c", "token");
        assert!(s.open("a", "bc", &sealed).is_err());
        assert!(s.open("ab", "c", &sealed).is_ok());
    }

    #[test]
    fn other_key_does_not_open() {
        let sealed = Sealer::new(KEY).seal("u", "p", "token");
        assert!(Sealer::new([8; 32]).open("u", "p", &sealed).is_err());
    }

    #[test]
    fn tampered_value_does_not_open() {
        let s = Sealer::new(KEY);
        let sealed = s.seal("u", "p", "a token of some length");
        for i in PREFIX.len()..sealed.len() {
            let mut bytes = sealed.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != sealed {
                assert!(s.open("u", "p", &tampered).is_err(), "position {i}");
            }
        }
        assert!(s.open("u", "p", &sealed[..sealed.len() - 1]).is_err());
        assert!(s.open("u", "p", &sealed[PREFIX.len()..]).is_err());
        assert!(s.open("u", "p", &sealed.replacen("v1.", "v2.", 1)).is_err());
        assert!(s.open("u", "p", "v1.").is_err());
        assert!(s.open("u", "p", "v1.!!!").is_err());
        assert!(s.open("u", "p", "").is_err());
    }

    #[test]
    fn key_check() {
        let s = Sealer::new(KEY);
        let check = s.seal_check();
        assert!(s.verify_check(&check));
        assert!(!Sealer::new([8; 32]).verify_check(&check));
        assert!(!s.verify_check(&s.seal("key-check", "", CHECK_MARKER)));
        assert!(!s.verify_check("v1.garbage"));
        // A check value is not a token of any row.
        assert!(s.open("", "", &check).is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let text = format!("{:?}", Sealer::new([0xAB; 32]));
        assert_eq!(text, "Sealer { key: <redacted> }");
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_from_the_sealing_key() {
        let sealer = Sealer::new([9; 32]);
        let a = sealer.derive_key(b"a");
        assert_eq!(
            a,
            Sealer::new([9; 32]).derive_key(b"a"),
            "stable for one key"
        );
        assert_ne!(a, sealer.derive_key(b"b"));
        assert_ne!(a, Sealer::new([8; 32]).derive_key(b"a"));
        assert_ne!(a, [9; 32]);
    }
}

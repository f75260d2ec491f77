//! devgate API keys: minting one (the key shown once, its hash stored) and finding the user behind one.

use super::*;

pub(super) async fn api_key_user(store: &Arc<dyn Store>, key: &str) -> Result<Resolved, AuthError> {
    store
        .api_key(&digest(key))
        .await?
        .map(|row| Resolved {
            user: row.user,
            groups: row.groups,
            scopes: None,
        })
        .ok_or_else(|| AuthError::Invalid("unknown or revoked API key".into()))
}

/// A new API key for `user` in `groups`: the key (shown once) and the row to store (its hash only).
pub fn new_api_key(user: &str, groups: &[String]) -> (String, ApiKeyRow) {
    let bytes: [u8; 32] = rand::random();
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let row = ApiKeyRow {
        id: key[KEY_PREFIX.len()..KEY_PREFIX.len() + 12].to_string(),
        key_hash: digest(&key),
        user: user.to_string(),
        created_at: now(),
        groups: groups.to_vec(),
    };
    (key, row)
}

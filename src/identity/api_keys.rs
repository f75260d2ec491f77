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
    // The public id is the key's first characters, so the key starts as ids a user types do.
    let key = format!("{KEY_PREFIX}{}", crate::auth_server::random_id(32));
    let row = ApiKeyRow {
        id: key[KEY_PREFIX.len()..KEY_PREFIX.len() + 12].to_string(),
        key_hash: digest(&key),
        user: user.to_string(),
        created_at: now(),
        groups: groups.to_vec(),
    };
    (key, row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A public id is typed after `devgate keys revoke <user>`: one starting with `-` would be read as a
    /// flag (one id in 64 did before).
    #[test]
    fn public_ids_never_start_with_a_hyphen() {
        for _ in 0..2000 {
            let (key, row) = new_api_key("alice", &[]);
            assert!(
                row.id.starts_with(|c: char| c.is_ascii_alphabetic()),
                "{}",
                row.id
            );
            assert!(key[KEY_PREFIX.len()..].starts_with(&row.id));
        }
    }
}

//! AES-256-GCM sealing of tokens. (Implementation in progress.)

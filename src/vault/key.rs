//! Where the sealing key comes from: `DEVGATE_SECRET_KEY` (base64 of 32 bytes), or, for SQLite only, a
//! key file next to the database, created on first run readable by its owner only. The file holds the
//! key in base64 so it can be moved into `DEVGATE_SECRET_KEY` as is.
//!
//! No error or `Debug` output contains the key or the variable's value.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// The environment variable holding the key.
pub const ENV_VAR: &str = "DEVGATE_SECRET_KEY";
/// The key file's name, in the SQLite database's directory.
pub const KEY_FILE_NAME: &str = "devgate.key";

const HOW_TO_MAKE: &str = "generate one with `openssl rand -base64 32`";

/// Where the key was found, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => f.write_str(ENV_VAR),
            KeySource::File(path) => write!(f, "key file {}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `DEVGATE_SECRET_KEY` is set but unusable; the message says why, never what it holds.
    #[error("{ENV_VAR} {0}")]
    Env(String),
    #[error("the key file {path} {detail}")]
    File { path: PathBuf, detail: String },
    #[error("the key file {path} cannot be {action}: {cause}")]
    Io {
        path: PathBuf,
        action: &'static str,
        cause: std::io::Error,
    },
    #[error("no sealing key: {0}")]
    Missing(String),
}

/// The key from `env_value` (the value of `DEVGATE_SECRET_KEY`, if set), else from `key_file`, which is
/// created with a new random key when missing and `create` is true.
pub fn load_key(
    env_value: Option<String>,
    key_file: Option<&Path>,
    create: bool,
) -> Result<([u8; 32], KeySource), KeyError> {
    if let Some(value) = env_value {
        let key = decode(&value).map_err(KeyError::Env)?;
        return Ok((key, KeySource::Env));
    }
    let Some(path) = key_file else {
        return Err(KeyError::Missing(format!(
            "set {ENV_VAR} to the base64 of 32 random bytes ({HOW_TO_MAKE}); only an SQLite store can keep a key file"
        )));
    };
    let source = KeySource::File(path.to_path_buf());
    match read_key_file(path) {
        Ok(key) => Ok((key, source)),
        Err(KeyError::Io { cause: e, .. }) if e.kind() == ErrorKind::NotFound && create => {
            match create_key_file(path) {
                Ok(key) => Ok((key, source)),
                // Another process created it first: use theirs.
                Err(KeyError::Io { cause: e, .. }) if e.kind() == ErrorKind::AlreadyExists => {
                    read_key_file(path).map(|key| (key, source))
                }
                Err(e) => Err(e),
            }
        }
        Err(KeyError::Io { cause: e, .. }) if e.kind() == ErrorKind::NotFound => {
            Err(KeyError::Missing(format!(
                "set {ENV_VAR} ({HOW_TO_MAKE}) or provide the key file {}",
                path.display()
            )))
        }
        Err(e) => Err(e),
    }
}

/// Base64 (standard or URL-safe, padded or not) of exactly 32 bytes; the error says what is wrong.
fn decode(value: &str) -> Result<[u8; 32], String> {
    let text = value.trim();
    if text.is_empty() {
        return Err(format!("is empty; {HOW_TO_MAKE}"));
    }
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| format!("is not base64 (standard or URL-safe alphabet); {HOW_TO_MAKE}"))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("decodes to {len} bytes, not 32; {HOW_TO_MAKE}"))
}

fn read_key_file(path: &Path) -> Result<[u8; 32], KeyError> {
    let io = |action, cause| KeyError::Io {
        path: path.to_path_buf(),
        action,
        cause,
    };
    let mut file = std::fs::File::open(path).map_err(|e| io("read", e))?;
    let meta = file.metadata().map_err(|e| io("read", e))?;
    let refuse = |detail: String| KeyError::File {
        path: path.to_path_buf(),
        detail,
    };
    if !meta.is_file() {
        return Err(refuse("is not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(refuse(format!(
                "has mode {mode:04o}; it must be readable by its owner only (chmod 600 {})",
                path.display()
            )));
        }
    }
    // A key file is 45 bytes; reading a little more is enough to tell a wrong one.
    let mut text = String::new();
    (&mut file)
        .take(1024)
        .read_to_string(&mut text)
        .map_err(|e| io("read", e))?;
    decode(&text).map_err(|why| refuse(format!("is not a key: its content {why}")))
}

/// Writes a new random key; fails with `AlreadyExists` if the file is there, so a key is never replaced.
fn create_key_file(path: &Path) -> Result<[u8; 32], KeyError> {
    let io = |action, cause| KeyError::Io {
        path: path.to_path_buf(),
        action,
        cause,
    };
    let key: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io("created", e))?;
    let written = file
        .write_all(format!("{}\n", STANDARD.encode(key)).as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        // Do not leave a half-written key for the next start to refuse.
        let _ = std::fs::remove_file(path);
        return Err(io("written", e));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!(
                "devgate-key-test-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn env_key_in_every_base64_flavour() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 37 + 250) as u8);
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            let value = format!(" {}\n", engine.encode(key));
            let (got, source) = load_key(Some(value), None, true).unwrap();
            assert_eq!(got, key);
            assert_eq!(source, KeySource::Env);
        }
    }

    #[test]
    fn env_key_wins_over_the_file() {
        let dir = TempDir::new();
        let file = dir.0.join(KEY_FILE_NAME);
        let (_, source) = load_key(Some(STANDARD.encode([1u8; 32])), Some(&file), true).unwrap();
        assert_eq!(source, KeySource::Env);
        assert!(!file.exists());
    }

    #[test]
    fn bad_env_key_is_named_but_not_echoed() {
        let secret_ish = "c2VjcmV0LXZhbHVlLXRoYXQtaXMtdG9vLXNob3J0";
        let not_base64 = "this is not base64 at all!";
        for value in [secret_ish, not_base64, ""] {
            let err = load_key(Some(value.into()), None, true).unwrap_err();
            let (text, debug) = (err.to_string(), format!("{err:?}"));
            assert!(text.contains(ENV_VAR), "{text}");
            if !value.is_empty() {
                assert!(!text.contains(value) && !debug.contains(value), "{text}");
            }
        }
        let err = load_key(Some(secret_ish.into()), None, true).unwrap_err();
        assert!(err.to_string().contains("not 32"), "{err}");
        let err = load_key(Some(not_base64.into()), None, true).unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }

    #[test]
    fn no_env_and_no_file_is_missing() {
        let err = load_key(None, None, true).unwrap_err();
        assert!(matches!(err, KeyError::Missing(_)));
        assert!(err.to_string().contains(ENV_VAR));
    }

    #[cfg(unix)]
    #[test]
    fn key_file_created_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new();
        let file = dir.0.join(KEY_FILE_NAME);
        let (first, source) = load_key(None, Some(&file), true).unwrap();
        assert_eq!(source, KeySource::File(file.clone()));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, _) = load_key(None, Some(&file), true).unwrap();
        assert_eq!(first, second);
        // The file's content works as DEVGATE_SECRET_KEY.
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(load_key(Some(text), None, false).unwrap().0, first);
        // A different directory gets a different key.
        let other = TempDir::new();
        let (third, _) = load_key(None, Some(&other.0.join(KEY_FILE_NAME)), true).unwrap();
        assert_ne!(first, third);
    }

    #[test]
    fn missing_file_without_create_is_an_error() {
        let dir = TempDir::new();
        let file = dir.0.join(KEY_FILE_NAME);
        let err = load_key(None, Some(&file), false).unwrap_err();
        assert!(matches!(err, KeyError::Missing(_)), "{err:?}");
        assert!(!file.exists());
    }

    #[cfg(unix)]
    #[test]
    fn open_permissions_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new();
        let file = dir.0.join(KEY_FILE_NAME);
        load_key(None, Some(&file), true).unwrap();
        for mode in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = load_key(None, Some(&file), true).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("{mode:04o}")) && text.contains("chmod 600"),
                "{text}"
            );
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load_key(None, Some(&file), true).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn wrong_length_file_is_refused_without_echo() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = TempDir::new();
        let file = dir.0.join(KEY_FILE_NAME);
        let content = STANDARD.encode([9u8; 16]);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .unwrap();
        f.write_all(content.as_bytes()).unwrap();
        drop(f);
        let err = load_key(None, Some(&file), true).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("16 bytes, not 32"), "{text}");
        assert!(!text.contains(&content) && !format!("{err:?}").contains(&content));
        // It is refused, not replaced.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), content);
    }
}

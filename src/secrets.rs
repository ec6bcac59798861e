//! Connection secrets sealed at rest (AES-256-GCM) with a key from the configuration, so the
//! store never holds a webhook secret or API key in the clear. At start a node checks that its
//! key opens every stored connection's secrets ([`check_stored`]): a node started with another
//! key (another data directory, a lost `secret.key`) stops, naming the key and the connections,
//! instead of answering their webhooks with 500.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use thiserror::Error;

const NONCE_LEN: usize = 12;

#[derive(Debug, Error)]
pub enum SecretsError {
    #[error("the secret key must be 32 bytes in base64: {0}")]
    BadKey(String),
    #[error("could not read or create the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("a sealed secret could not be opened (wrong key or corrupt data)")]
    Open,
    #[error(
        "the secret key {key} cannot open the stored secrets of {count} connection(s): \
         {connections}; start with the key they were sealed with (the earlier data directory's \
         secret.key, or BILLSYNC_SECRET_KEY), or re-register these connections"
    )]
    WrongKey {
        key: String,
        count: usize,
        connections: String,
    },
    #[error("cannot read the stored connections to check the secret key: {0}")]
    Store(crate::store::StoreError),
}

/// The key a configuration seals with, for messages: `BILLSYNC_SECRET_KEY` or the key file.
pub fn key_name(config: &crate::config::Config) -> String {
    match &config.secret_key {
        Some(_) => "BILLSYNC_SECRET_KEY".into(),
        None => config.data_dir.join("secret.key").display().to_string(),
    }
}

/// Checks that `sealer` opens the secrets of every connection in `store` that is not archived;
/// else [`SecretsError::WrongKey`] naming `key` and the connections (the first ten).
pub async fn check_stored(
    store: &dyn crate::store::Store,
    sealer: &Sealer,
    key: &str,
) -> Result<(), SecretsError> {
    let mut failing = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_connections(None, after.as_deref(), 500)
            .await
            .map_err(SecretsError::Store)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for c in &page {
            if c.state == crate::store::ConnectionState::Archived {
                continue;
            }
            let opens = sealer.open(&c.sealed_webhook_secrets).is_ok()
                && c.sealed_api_key
                    .as_ref()
                    .is_none_or(|k| sealer.open(k).is_ok());
            if !opens {
                failing.push(c.id.clone());
            }
        }
    }
    if failing.is_empty() {
        return Ok(());
    }
    let mut connections = failing
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if failing.len() > 10 {
        connections.push_str(&format!(" and {} more", failing.len() - 10));
    }
    Err(SecretsError::WrongKey {
        key: key.to_owned(),
        count: failing.len(),
        connections,
    })
}

/// Seals and opens connection secrets. Debug output never shows the key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer from a base64 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, SecretsError> {
        let bytes = B64
            .decode(key.trim())
            .map_err(|e| SecretsError::BadKey(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(SecretsError::BadKey(format!("got {} bytes", bytes.len())));
        }
        Ok(Sealer {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
        })
    }

    /// Reads the key file at `path`, creating it (mode 0600) with a random key when missing.
    pub fn from_key_file(path: &Path) -> Result<Self, SecretsError> {
        let io = |source| SecretsError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let key = B64.encode(Aes256Gcm::generate_key(OsRng));
                write_private(path, &key).map_err(io)?;
                Self::from_base64(&key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Seals a list of secrets: `nonce || ciphertext` of their JSON.
    pub fn seal(&self, secrets: &[String]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Serializing a list of strings and encrypting in memory cannot fail.
        let plain = serde_json::to_vec(secrets).expect("a list of strings serializes");
        let sealed = self
            .cipher
            .encrypt(&nonce, plain.as_slice())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<String>, SecretsError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretsError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| SecretsError::Open)?;
        serde_json::from_slice(&plain).map_err(|_| SecretsError::Open)
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_and_do_not_contain_the_plaintext() {
        let sealer = Sealer::from_base64(&B64.encode([7u8; 32])).unwrap();
        let secrets = vec!["whsec_abc".to_string(), "whsec_def".to_string()];
        let sealed = sealer.seal(&secrets);
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(sealer.open(&sealed).unwrap(), secrets);
        let other = Sealer::from_base64(&B64.encode([8u8; 32])).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(sealer.open(b"short").is_err());
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/secret.key");
        let a = Sealer::from_key_file(&path).unwrap();
        let b = Sealer::from_key_file(&path).unwrap();
        assert_eq!(
            b.open(&a.seal(&["x".into()])).unwrap(),
            vec!["x".to_string()]
        );
        assert!(Sealer::from_base64("dG9vIHNob3J0").is_err());
    }
}

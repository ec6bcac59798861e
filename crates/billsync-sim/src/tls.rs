//! The simulator's HTTPS: with a certificate configured it serves the provider personalities
//! over TLS, as the real APIs are served, so billsync's provider clients are tested on the
//! production path (certificate verification included) rather than on plain loopback HTTP.
//! Handshakes run on their own tasks, so a slow or failing client never blocks `accept`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::SimError;

/// A certificate chain and its private key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// The server's certificate first, then any intermediates.
    pub cert_chain_pem: String,
    pub key_pem: String,
}

impl TlsIdentity {
    /// Reads the chain and key from PEM files (`sim serve --tls-cert --tls-key`).
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, SimError> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map_err(|e| SimError::Tls(format!("cannot read {}: {e}", p.display())))
        };
        Ok(TlsIdentity {
            cert_chain_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, SimError> {
        let chain = CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SimError::Tls(format!("certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(SimError::Tls(
                "the certificate chain holds no certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| SimError::Tls(format!("private key: {e}")))?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| SimError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A listener whose connections are TLS streams that finished their handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsListener {
    pub fn new(listener: TcpListener, identity: &TlsIdentity) -> Result<Self, SimError> {
        let acceptor = TlsAcceptor::from(Arc::new(identity.server_config()?));
        let addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        // Out of file descriptors and the like: wait, as axum does.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate aborts here: nothing to serve.
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener { ready, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task ended (it never does while the listener lives): serve nothing.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

//! A TCP proxy in front of the test Postgres that a test can cut and restore: the database
//! made unreachable for real (every open connection closed, new ones dropped on arrival),
//! while the server itself, and the test's own direct connections, stay up.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct DbProxy {
    /// The database URL through the proxy.
    pub url: String,
    cut: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl DbProxy {
    /// A proxy to the server of `url` (a `postgres://` URL); [`DbProxy::url`] is `url` with
    /// the proxy's address.
    pub async fn start(url: &str) -> DbProxy {
        let mut through = url::Url::parse(url).expect("the test database URL is a URL");
        let upstream = format!(
            "{}:{}",
            through
                .host_str()
                .expect("the test database URL has a host"),
            through.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr: SocketAddr = listener.local_addr().expect("proxy address");
        through
            .set_host(Some("127.0.0.1"))
            .expect("an IP is a host");
        through
            .set_port(Some(addr.port()))
            .expect("a port for a URL with a host");
        let (cut, watch) = watch::channel(false);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *watch.borrow() {
                    // Cut: the connection is closed as soon as it arrives.
                    drop(client);
                    continue;
                }
                tokio::spawn(relay(client, upstream.clone(), watch.clone()));
            }
        });
        DbProxy {
            url: through.to_string(),
            cut,
            accept,
        }
    }

    /// Closes every open connection and drops new ones until [`DbProxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Open relays see the channel close and end.
    }
}

async fn relay(mut client: TcpStream, upstream: String, mut cut: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
    // Both sockets are dropped here: the app sees its connection reset mid-session.
}

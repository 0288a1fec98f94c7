//! A TCP relay in front of PostgreSQL that the harness can cut and heal: while cut, relayed
//! connections are dropped and new ones closed at once, as in a network partition.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Relay {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Relay {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if *cut_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut stop = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    pub fn heal(&self) {
        let _ = self.cut.send(false);
    }

    /// `url` with its host and port replaced by the relay's.
    pub fn through(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some(&self.addr.ip().to_string())).unwrap();
        u.set_port(Some(self.addr.port())).unwrap();
        u.to_string()
    }
}

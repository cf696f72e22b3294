//! Real peers on 127.0.0.1 for tests that need a peer to fail for real (its
//! port refusing connections): a one-line protocol over TCP, `ping`
//! answered by `pong <id>`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::{Service, service_fn};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A peer answering `pong <id>` to each line; abort the handle to take it
/// down (its port then refuses connections).
pub async fn peer(id: u32) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = conn.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(_)) = lines.next_line().await {
                    if write
                        .write_all(format!("pong {id}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    (addr, task)
}

/// A client for one peer: one connection per call, 2s at most.
pub fn client(
    addr: SocketAddr,
) -> impl Service<Option<usize>, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(move |_: Option<usize>| async move {
        let call = async {
            let conn = TcpStream::connect(addr).await?;
            let (read, mut write) = conn.into_split();
            write.write_all(b"ping\n").await?;
            let line = BufReader::new(read)
                .lines()
                .next_line()
                .await?
                .ok_or("closed")?;
            let id = line.strip_prefix("pong ").ok_or("bad answer")?.parse()?;
            Ok::<u32, BoxError>(id)
        };
        tokio::time::timeout(Duration::from_secs(2), call).await?
    })
}

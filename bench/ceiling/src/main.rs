//! The benchmark's ceiling: a hyper 1 HTTP/1.1 server on a multi-thread tokio runtime (as the
//! product's daemon) that answers every request with the same 19 bytes. Whatever it costs per
//! request is what hyper and the kernel cost; fake-metadata is measured against it.
//!
//! Usage: ceiling ADDR:PORT

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"i-0123456789abcdef0";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    // The accept loop runs on a worker, as the product's does: connections spawned from a
    // worker start on it, not through the runtime's global queue and a wake-up.
    tokio::spawn(accept_loop(listener)).await.expect("the accept loop does not panic");
    Ok(())
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => continue,
        };
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(BODY))))
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

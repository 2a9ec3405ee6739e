//! Unit tests of each toxic against a local echo server, and of the protocol scanner.

use super::*;
use std::time::Instant;

/// An upstream that echoes, and sends `hello` bytes first when asked.
async fn echo(hello: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                if hello > 0 && s.write_all(&vec![b'h'; hello]).await.is_err() {
                    return;
                }
                let mut b = [0u8; 1024];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn roundtrip(addr: SocketAddr, within: Duration) -> Result<Vec<u8>, String> {
    let io = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        Ok(b.to_vec())
    };
    tokio::time::timeout(within, io)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[tokio::test]
async fn passes_and_delays() {
    let p = Proxy::start(echo(0).await).await;
    assert_eq!(
        roundtrip(p.addr, Duration::from_secs(2)).await.unwrap(),
        b"ping"
    );
    p.delay(Duration::from_millis(150));
    let t = Instant::now();
    assert_eq!(
        roundtrip(p.addr, Duration::from_secs(2)).await.unwrap(),
        b"ping"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "both ways delayed"
    );
}

#[tokio::test]
async fn blackhole_holds_then_releases() {
    let p = Proxy::start(echo(0).await).await;
    p.blackhole(true);
    let mut s = TcpStream::connect(p.addr).await.expect("still accepts");
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut b))
            .await
            .is_err(),
        "nothing passes, nothing closes"
    );
    p.blackhole(false);
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut b))
        .await
        .expect("released")
        .unwrap();
    assert_eq!(&b, b"ping");
}

#[tokio::test]
async fn refuse_and_reset_all() {
    let p = Proxy::start(echo(0).await).await;
    let mut open = TcpStream::connect(p.addr).await.unwrap();
    open.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    open.read_exact(&mut b).await.unwrap();
    p.reset_all();
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(2), open.read_to_end(&mut rest)).await;
    assert!(
        matches!(r, Ok(Err(_)) | Ok(Ok(0))),
        "the open connection is reset: {r:?}"
    );
    p.refuse(true);
    assert!(roundtrip(p.addr, Duration::from_secs(2)).await.is_err());
    p.refuse(false);
    assert!(roundtrip(p.addr, Duration::from_secs(2)).await.is_ok());
}

#[tokio::test]
async fn cut_after_n_bytes() {
    let p = Proxy::start(echo(100).await).await;
    p.cut_after(10, 1);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&b[..n]),
            Err(_) => panic!("not cut"),
        }
    }
    assert_eq!(got.len(), 10);
    // Only the next connection was cut.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut hello = vec![0u8; 100];
    s.read_exact(&mut hello).await.expect("whole greeting");
}

fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn scan_finds_commits_of_marked_transactions_across_chunks() {
    let mut startup = 8u32.to_be_bytes().to_vec();
    startup.extend_from_slice(&196608u32.to_be_bytes());
    let mut stream = startup;
    stream.extend(typed(b'Q', b"BEGIN\0"));
    stream.extend(typed(
        b'P',
        b"s1\0INSERT INTO attempts (id) VALUES ($1)\0\0\0",
    ));
    stream.extend(typed(b'Q', b"COMMIT\0"));
    let first_commit_end = stream.len();
    stream.extend(typed(b'Q', b"BEGIN\0"));
    stream.extend(typed(b'P', b"s2\0SELECT 1\0\0\0"));
    stream.extend(typed(b'Q', b"COMMIT\0"));
    stream.extend(typed(b'Q', b"BEGIN\0"));
    stream.extend(typed(b'B', b"\0s1\0\0\0\0\0\0\0"));
    stream.extend(typed(b'Q', b"COMMIT\0"));
    let mut scan = PgScan::default();
    let mut found = Vec::new();
    let mut off = 0;
    // Fed in awkward 7-byte chunks.
    for (i, chunk) in stream.chunks(7).enumerate() {
        // Armed only after the first statement was prepared, as in a running gateway.
        let needle = (i > 8).then_some("INSERT INTO attempts");
        for (at, marked) in scan.feed(chunk, needle) {
            found.push((off + at, marked));
        }
        off += chunk.len();
    }
    assert_eq!(found.len(), 3);
    assert_eq!(found[0], (first_commit_end, true));
    assert!(!found[1].1, "a transaction without the needle");
    assert!(found[2].1, "the marked prepared statement, bound again");
    assert_eq!(found[2].0, stream.len());
}

#[test]
fn scan_skips_ssl_request() {
    let mut s = 8u32.to_be_bytes().to_vec();
    s.extend_from_slice(&80877103u32.to_be_bytes());
    s.extend_from_slice(&8u32.to_be_bytes());
    s.extend_from_slice(&196608u32.to_be_bytes());
    s.extend(typed(b'Q', b"commit\0"));
    assert_eq!(PgScan::default().feed(&s, None), vec![(s.len(), false)]);
}

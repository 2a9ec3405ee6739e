//! Whose fault a failed send is. A receiver that refuses connections, resets them, times out or
//! answers garbage is failing, and its webhook moves toward auto-disable. The gateway running out
//! of descriptors or memory, its resolver failing, or its client failing to build a request is
//! not the receiver's doing: such attempts are [`AttemptResult::Local`], retried within seconds
//! and never counted against the webhook.
//!
//! The keep-alive race has its own test here: a request sent on a pooled connection the receiver
//! had already closed (without `Connection: close`) fails before any response byte;
//! [`is_stale_connection`] recognises it so the attempt is retried once at once on a fresh
//! connection.
//!
//! [`AttemptResult::Local`]: super::retry::AttemptResult::Local

use std::error::Error;

use rustix::io::Errno;

/// Why a failure is the gateway's own, when it is (a short phrase for the attempt log).
pub fn local_cause(err: &(dyn Error + 'static)) -> Option<&'static str> {
    if let Some(e) = err.downcast_ref::<reqwest::Error>()
        && e.is_builder()
    {
        return Some("the gateway could not build the request");
    }
    chain(err).find_map(|e| e.downcast_ref::<std::io::Error>().and_then(io_cause))
}

/// Local causes an I/O error can carry.
fn io_cause(e: &std::io::Error) -> Option<&'static str> {
    if let Some(errno) = Errno::from_io_error(e) {
        return match errno {
            Errno::MFILE => Some("the gateway is out of file descriptors (EMFILE)"),
            Errno::NFILE => Some("the system is out of file descriptors (ENFILE)"),
            Errno::NOBUFS => Some("the gateway is out of socket buffers (ENOBUFS)"),
            Errno::NOMEM => Some("the gateway is out of memory (ENOMEM)"),
            Errno::ADDRNOTAVAIL => Some("the gateway is out of local ports (EADDRNOTAVAIL)"),
            _ => None,
        };
    }
    // getaddrinfo's own codes come as text (std formats gai_strerror). A name that does not
    // exist ("Name or service not known") is the receiver's; these are the resolver's.
    let text = e.to_string();
    if text.contains("failed to lookup address information") {
        for (needle, cause) in [
            (
                "Temporary failure in name resolution",
                "the gateway's resolver failed (EAI_AGAIN)",
            ),
            (
                "Memory allocation failure",
                "the gateway's resolver is out of memory (EAI_MEMORY)",
            ),
            ("System error", "the gateway's resolver failed (EAI_SYSTEM)"),
        ] {
            if text.contains(needle) {
                return Some(cause);
            }
        }
    }
    None
}

/// The keep-alive race: the connection was closed or reset under a request before any response
/// byte came back (hyper's "connection closed before message completed"), on a connection that
/// had been established (not a failed connect). Retrying once on a fresh connection is safe for
/// receivers that deduplicate on `webhook-id`, which stays the same.
pub fn is_stale_connection(err: &reqwest::Error) -> bool {
    if err.is_connect() || err.is_timeout() || err.is_builder() || err.is_status() {
        return false;
    }
    chain(err).any(|e| {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionReset | BrokenPipe | UnexpectedEof | ConnectionAborted
            );
        }
        false
    })
}

/// `err` and its sources.
fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn Error + 'static)| (*e).source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrap(#[source] std::io::Error);

    fn errno(n: i32) -> Wrap {
        Wrap(std::io::Error::from_raw_os_error(n))
    }

    #[test]
    fn descriptor_and_memory_exhaustion_are_local() {
        for e in [
            Errno::MFILE,
            Errno::NFILE,
            Errno::NOBUFS,
            Errno::NOMEM,
            Errno::ADDRNOTAVAIL,
        ] {
            let err = errno(e.raw_os_error());
            assert!(local_cause(&err).is_some(), "{e:?} should be local");
        }
        let emfile = errno(Errno::MFILE.raw_os_error());
        assert!(local_cause(&emfile).unwrap().contains("EMFILE"));
    }

    #[test]
    fn the_receivers_failures_are_not_local() {
        for e in [
            Errno::CONNREFUSED,
            Errno::CONNRESET,
            Errno::TIMEDOUT,
            Errno::HOSTUNREACH,
            Errno::NETUNREACH,
            Errno::PIPE,
        ] {
            let err = errno(e.raw_os_error());
            assert_eq!(local_cause(&err), None, "{e:?} is the receiver's");
        }
        let nx = Wrap(std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        ));
        assert_eq!(local_cause(&nx), None);
    }

    #[test]
    fn resolver_failures_are_local() {
        let again = Wrap(std::io::Error::other(
            "failed to lookup address information: Temporary failure in name resolution",
        ));
        assert!(local_cause(&again).unwrap().contains("EAI_AGAIN"));
    }

    #[tokio::test]
    async fn real_errors_classify() {
        // A refused connection (nothing listens on the port) is the receiver's.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let client = reqwest::Client::new();
        let err = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(local_cause(&err), None, "{err:?}");
        assert!(
            !is_stale_connection(&err),
            "a failed connect is not the race"
        );

        // A receiver that reads the request and closes without answering: the race's shape.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
        });
        let err = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert!(is_stale_connection(&err), "{err:?}");
        assert_eq!(local_cause(&err), None);
        server.await.unwrap();
    }
}

//! The pools' TCP stream: a tokio `TcpStream` whose reads see what the socket holds even when
//! the runtime has not looked at its sockets since the bytes arrived (issue 19).
//!
//! Tokio learns that a socket is readable only when its runtime polls the sockets, and a blocking
//! runtime (or a user's current-thread runtime) does not run between calls. So a reused
//! connection's reads reported "nothing yet" although the server had written on it while it was
//! idle (an answer nobody asked for, a `408` before a close); hyper then wrote the next request and
//! took those bytes for its answer. Hyper does check, before it writes a request on an idle
//! connection, that a read finds nothing (bytes there: the connection is dropped and the request
//! handed back unwritten, which the pool sends on another connection; end of stream: the same).
//! This stream makes that check true: while the connection is idle (from when the pool is given it
//! back to the next request's first write), when tokio says nothing has arrived, it asks the socket
//! itself with a non-blocking `recv` (one system call per request on a reused connection; none
//! while a request is under way). Over TLS it sits under OpenSSL, so what arrived is decrypted and
//! judged by hyper as well (a session ticket is consumed by OpenSSL and keeps the connection
//! usable); and it follows the TLS records, so that a record whose start arrived but not its end
//! (held by OpenSSL, invisible to hyper) is seen too (see [`super::tls::Conn`]).

use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// At most this much is read past tokio at once: that much of the buffer is zeroed first, and
/// hyper's can be hundreds of KiB.
const DIRECT_READ: usize = 16 * 1024;

/// See the module's docs.
pub(crate) struct Socket {
    tcp: TcpStream,
    /// Over TLS: where the bytes read so far end in the record framing.
    records: Option<Records>,
    /// Set by the pool when it is given the connection back (its answer read whole), cleared
    /// by the next request's first write ([`super::tls::Conn`]).
    idle: Arc<AtomicBool>,
}

impl Socket {
    pub(crate) fn new(tcp: TcpStream, tls: bool) -> Self {
        Socket {
            tcp,
            records: tls.then(Records::default),
            idle: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag of [`Socket::is_idle`], for the pool to set.
    pub(crate) fn idle(&self) -> &Arc<AtomicBool> {
        &self.idle
    }

    /// Whether no request is on the connection: anything that arrives was not asked for.
    pub(crate) fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Acquire)
    }

    /// Whether the bytes read so far end inside a TLS record: OpenSSL holds its start.
    pub(crate) fn mid_record(&self) -> bool {
        self.records.as_ref().is_some_and(Records::mid_record)
    }

    fn read_past_tokio(&self, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // Tokio said pending, so it has registered this task for the socket's next readiness
        // (or woken it already): a `WouldBlock` here can stay pending, and bytes read here make
        // that wake-up a spare one.
        let socket = socket2::SockRef::from(&self.tcp);
        // A one-byte peek first: nearly always nothing has arrived, and then no buffer is zeroed.
        let read = socket.peek(&mut [MaybeUninit::uninit()]).and_then(|n| {
            if n == 0 {
                return Ok(0); // the server closed
            }
            let room = buf.initialize_unfilled_to(buf.remaining().min(DIRECT_READ));
            (&*socket).read(room)
        });
        match read {
            Ok(n) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// TLS's record framing: a 5-byte header whose last two bytes are the length of what follows.
#[derive(Default)]
struct Records {
    /// How many bytes of the current header have been read (0 between records).
    header: usize,
    length: [u8; 2],
    /// How many bytes of the current record's body are still to come.
    body: usize,
}

impl Records {
    fn read(&mut self, mut bytes: &[u8]) {
        while let Some((&b, rest)) = bytes.split_first() {
            if self.body > 0 {
                let n = self.body.min(bytes.len());
                self.body -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.header >= 3 {
                self.length[self.header - 3] = b;
            }
            self.header += 1;
            if self.header == 5 {
                self.header = 0;
                self.body = usize::from(u16::from_be_bytes(self.length));
            }
            bytes = rest;
        }
    }

    fn mid_record(&self) -> bool {
        self.header > 0 || self.body > 0
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let mut polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if polled.is_pending() && buf.remaining() > 0 && self.is_idle() {
            polled = self.read_past_tokio(buf);
        }
        if let Some(records) = &mut self.records {
            records.read(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::Records;

    #[test]
    fn records_are_followed_across_any_split_of_the_bytes() {
        // Two records (bodies of 3 and 0 bytes), then the start of a third.
        let bytes = [
            23, 3, 3, 0, 3, b'a', b'b', b'c', 21, 3, 3, 0, 0, 23, 3, 3, 1,
        ];
        // Where a read may stop, and whether a record is then under way.
        let mid = |at: usize| !(at == 0 || at == 8 || at == 13);
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut r = Records::default();
                for (from, to) in [(0, a), (a, b), (b, bytes.len())] {
                    r.read(&bytes[from..to]);
                    assert_eq!(
                        r.mid_record(),
                        mid(to),
                        "split at {a} and {b}, read to {to}"
                    );
                }
            }
        }
        // A 16 KiB body is followed by its length, not by its bytes' values.
        let mut r = Records::default();
        r.read(&[23, 3, 3, 0x40, 0x00]);
        r.read(&[0x17; 0x3fff]);
        assert!(r.mid_record());
        r.read(&[0x17]);
        assert!(!r.mid_record());
    }
}

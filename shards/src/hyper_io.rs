//! The adapters hyper needs to run on glommio: byte I/O over glommio's `TcpStream` and a timer.
//!
//! - [`HyperIo`] implements `hyper::rt::Read`/`Write` over futures-io. A read initializes at
//!   most [`READ_CHUNK_BYTES`] of hyper's buffer (hyper's cursor zeroes only bytes never
//!   initialized before), and errors are propagated, not turned into EOF — unlike glommio's own
//!   hyper example.
//! - [`GlommioTimer`] implements `hyper::rt::Timer`. hyper requires `Send + Sync` sleeps;
//!   glommio's timer is `!Send` because it holds an `Rc`. Every connection future is spawned
//!   with `spawn_local` and never leaves its executor, so the timer is only ever touched on the
//!   thread that created it — that is the whole safety argument. Without a timer hyper silently
//!   drops its header-read timeout (NOTES.md).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};

/// Upper bound on bytes handed to one read call.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// A futures-io stream seen through hyper's I/O traits.
#[derive(Debug)]
pub struct HyperIo<S>(pub S);

impl<S: AsyncRead + Unpin> hyper::rt::Read for HyperIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let chunk_bytes = buf.remaining().min(READ_CHUNK_BYTES);
        let chunk = buf.initialize_unfilled_to(chunk_bytes);
        match Pin::new(&mut self.0).poll_read(cx, chunk) {
            Poll::Ready(Ok(read_bytes)) => {
                // SAFETY: the first `read_bytes` bytes of the unfilled part were initialized by
                // `initialize_unfilled_to` and then written by the read.
                unsafe { buf.advance(read_bytes) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// hyper's timer, backed by glommio's.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlommioTimer;

impl hyper::rt::Timer for GlommioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(GlommioSleep(glommio::timer::Timer::new(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}

struct GlommioSleep(glommio::timer::Timer);

// SAFETY: see the module doc — a GlommioSleep is created by a connection future running on a
// glommio executor and polled and dropped by that same future, which never changes threads.
unsafe impl Send for GlommioSleep {}
// SAFETY: as above; no `&GlommioSleep` is ever shared with another thread.
unsafe impl Sync for GlommioSleep {}

impl Future for GlommioSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl hyper::rt::Sleep for GlommioSleep {}

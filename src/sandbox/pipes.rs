//! The host ends of a REPL's pipes: writes command frames, reads protocol frames, and
//! collects the code's stdout and stderr (capped) meanwhile. Blocking: the session engine
//! runs [`Pipes::step`] on the blocking pool.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use super::capture::Capture;
use super::protocol::{Decoder, ReplMsg};
use super::sys;

/// What one [`Pipes::step`] ended with.
#[derive(Debug)]
pub(crate) enum Event {
    /// A protocol message (other than output frames, which are collected).
    Msg(ReplMsg),
    /// The REPL closed its protocol pipe (it exited).
    Eof,
    /// The deadline passed.
    Timeout,
    /// A malformed or oversized frame, or an I/O failure.
    Protocol(String),
}

/// Host ends of a REPL's pipes.
#[derive(Debug)]
pub(crate) struct Pipes {
    /// The code's stdout and stderr (absent in multiplexed mode, where output arrives as
    /// frames).
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    /// REPL → host frames.
    msg: OwnedFd,
    /// Host → REPL frames.
    cmd: OwnedFd,
    dec: Decoder,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
}

impl Pipes {
    /// Wraps the host ends of a fresh REPL's pipes (made non-blocking).
    pub(crate) fn new(
        out: Option<OwnedFd>,
        err: Option<OwnedFd>,
        msg: OwnedFd,
        cmd: OwnedFd,
        cap: usize,
    ) -> io::Result<Pipes> {
        for f in [out.as_ref(), err.as_ref(), Some(&msg), Some(&cmd)]
            .into_iter()
            .flatten()
        {
            sys::set_nonblocking(f.as_fd())?;
        }
        Ok(Pipes {
            out,
            err,
            msg,
            cmd,
            dec: Decoder::default(),
            stdout: Capture::new(cap),
            stderr: Capture::new(cap),
        })
    }

    /// Writes `frame` (if any), then waits for the next REPL message, collecting output
    /// meanwhile. With `new_cell`, first checks that the REPL sent nothing since the last
    /// cell ended (a frame between cells is a protocol violation).
    pub(crate) fn step(
        &mut self,
        frame: Option<&[u8]>,
        deadline: Instant,
        new_cell: bool,
    ) -> Event {
        if new_cell && let Some(what) = self.unsolicited() {
            return Event::Protocol(what);
        }
        if let Some(f) = frame
            && let Err(ev) = self.write_all(f, deadline)
        {
            return ev;
        }
        let mut buf = vec![0u8; 65536];
        loop {
            match self.dec.next() {
                Ok(Some(ReplMsg::Output { stream, data })) => {
                    self.capture(&stream, &data);
                    continue;
                }
                Ok(Some(m)) => {
                    self.drain();
                    return Event::Msg(m);
                }
                Ok(None) => {}
                Err(e) => return Event::Protocol(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Event::Timeout;
            }
            let ms = (deadline - now).as_millis().min(i32::MAX as u128) as i32;
            let mut fds = vec![(self.msg.as_fd(), false)];
            for f in [&self.out, &self.err].into_iter().flatten() {
                fds.push((f.as_fd(), false));
            }
            let ready = match sys::poll(&fds, ms) {
                Ok(r) => r,
                Err(e) => return Event::Protocol(format!("poll: {e}")),
            };
            drop(fds);
            let (msg_ready, streams) = (ready[0].readable, ready[1..].to_vec());
            let mut k = 0;
            for is_out in [true, false] {
                let present = if is_out {
                    self.out.is_some()
                } else {
                    self.err.is_some()
                };
                if present {
                    if streams[k].readable {
                        self.read_stream(is_out, &mut buf);
                    }
                    k += 1;
                }
            }
            if msg_ready {
                match sys::read(self.msg.as_fd(), &mut buf) {
                    Ok(0) => {
                        self.drain();
                        return Event::Eof;
                    }
                    Ok(n) => self.dec.push(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        self.drain();
                        return Event::Eof;
                    }
                }
            }
        }
    }

    /// A frame (other than output) the REPL sent while no cell was running, if any.
    /// Output the driver relayed in a frame (bytes carried as Latin-1 characters).
    fn capture(&mut self, stream: &str, data: &str) {
        let bytes: Vec<u8> = data.chars().map(|c| c as u32 as u8).collect();
        match stream {
            "stderr" => self.stderr.push(&bytes),
            _ => self.stdout.push(&bytes),
        }
    }

    fn unsolicited(&mut self) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        loop {
            match sys::read(self.msg.as_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => self.dec.push(&buf[..n]),
                Err(_) => break,
            }
        }
        loop {
            match self.dec.next() {
                Ok(Some(ReplMsg::Output { stream, data })) => self.capture(&stream, &data),
                Ok(Some(m)) => {
                    let kind = match m {
                        ReplMsg::Call { .. } => "a host call",
                        ReplMsg::Done { .. } => "a completion frame",
                        _ => "a frame",
                    };
                    return Some(format!("the REPL sent {kind} between blocks"));
                }
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        }
    }

    /// Reads what `is_out`'s stream holds; end of file (or an error) closes the host end.
    fn read_stream(&mut self, is_out: bool, buf: &mut [u8]) -> bool {
        let slot = if is_out { &mut self.out } else { &mut self.err };
        let Some(fd) = slot.as_ref() else {
            return false;
        };
        match sys::read(fd.as_fd(), buf) {
            Ok(0) => {
                *slot = None;
                false
            }
            Ok(n) => {
                if is_out {
                    self.stdout.push(&buf[..n]);
                } else {
                    self.stderr.push(&buf[..n]);
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => {
                *slot = None;
                false
            }
        }
    }

    /// Reads whatever output is already in the pipes.
    fn drain(&mut self) {
        let mut buf = vec![0u8; 65536];
        for is_out in [true, false] {
            while self.read_stream(is_out, &mut buf) {}
        }
    }

    fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> Result<(), Event> {
        while !data.is_empty() {
            match sys::write(self.cmd.as_fd(), data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(Event::Timeout);
                    }
                    // Keep reading output while the REPL is busy, so neither side stalls.
                    if let Err(e) = sys::poll(&[(self.cmd.as_fd(), true)], 50) {
                        return Err(Event::Protocol(format!("poll: {e}")));
                    }
                    self.drain();
                }
                Err(_) => return Err(Event::Eof),
            }
        }
        Ok(())
    }
}

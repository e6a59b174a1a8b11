//! Pseudo-terminal pairs: the wire every simulator sits on.
//!
//! A simulator owns the *master* side of a PTY and a client (the box) opens the *slave*
//! path (`/dev/pts/N`) with `serialport`, exactly as it opens a real device.
//!
//! ## Connection, vanish and return
//! The master learns whether a client has the slave open from `poll(2)`: while no process
//! holds the slave open, the master reports `POLLHUP` (and reads fail with `EIO`). A
//! simulator therefore treats "`POLLHUP` cleared" as *a client connected* (a real USB
//! device sees the same thing as the port being opened) and only writes while connected,
//! so no stale bytes pile up for the next client.
//!
//! A device *vanishing* (USB unplugged) is simulated by closing the master: every client
//! holding the slave sees a hangup (`POLLHUP`, reads fail) and the `/dev/pts/N` node goes
//! away, like `/dev/ttyACM0` does. The kernel may hand out a different number for the next
//! PTY, so a simulator can publish a **stable path**: a symbolic link that it points at the
//! current `/dev/pts/N`, removes when the device vanishes and re-creates when it comes back.
//! That is exactly how `/dev/serial/by-id/...` behaves on real hardware, and the box
//! reconnects by reopening that same path.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{OpenptyResult, openpty};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

/// An error while creating or driving a pseudo-terminal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PtyError {
    /// A system call on the PTY failed.
    #[error("pty {op} failed: {source}")]
    Sys {
        /// The operation that failed.
        op: &'static str,
        /// The error reported by the system.
        source: nix::Error,
    },
    /// Creating or replacing the stable link failed.
    #[error("cannot link {path}: {source}")]
    Link {
        /// The link path.
        path: PathBuf,
        /// The underlying IO error.
        source: io::Error,
    },
}

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> PtyError {
    move |source| PtyError::Sys { op, source }
}

/// A PTY pair in raw mode: the master end and the path of the slave end.
#[derive(Debug)]
pub struct Pty {
    master: File,
    slave_path: PathBuf,
}

impl Pty {
    /// Opens a new PTY pair, puts it in raw mode (no echo, no line discipline, 8-bit clean)
    /// and closes the slave end, so that the master reports a hangup until a client opens
    /// [`Pty::slave_path`].
    ///
    /// The master is non-blocking and close-on-exec.
    pub fn open() -> Result<Pty, PtyError> {
        let OpenptyResult { master, slave } = openpty(None, None).map_err(sys("openpty"))?;
        let mut termios = tcgetattr(&slave).map_err(sys("tcgetattr"))?;
        cfmakeraw(&mut termios);
        tcsetattr(&slave, SetArg::TCSANOW, &termios).map_err(sys("tcsetattr"))?;
        let slave_path = nix::unistd::ttyname(&slave).map_err(sys("ttyname"))?;
        drop(slave);
        fcntl(master.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(sys("fcntl"))?;
        fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(sys("fcntl"))?;
        Ok(Pty {
            master: File::from(master),
            slave_path,
        })
    }

    /// The slave device path (`/dev/pts/N`) a client opens.
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// The master end (non-blocking).
    pub fn master(&self) -> &File {
        &self.master
    }

    /// Consumes the pair, returning the master end. Dropping it makes the device vanish.
    pub fn into_master(self) -> File {
        self.master
    }

    /// Waits up to `timeout` for the master to become readable or to report a hangup.
    pub fn wait(&self, timeout: Duration) -> io::Result<Readiness> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        Ok(Readiness {
            client_present: !revents.contains(PollFlags::POLLHUP),
            readable: revents.contains(PollFlags::POLLIN),
        })
    }

    /// Reads what is available without blocking; `Ok(0)` when nothing is or no client
    /// has the slave open.
    pub fn read_available(&self, buf: &mut [u8]) -> io::Result<usize> {
        match (&self.master).read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            // EIO: the slave is not open by anyone (yet, or any more).
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes all of `bytes`, waiting up to `timeout` in total for room in the PTY buffer.
    ///
    /// Fails with `TimedOut` when the client does not drain its side in time.
    pub fn write_all_timeout(&self, bytes: &[u8], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            match (&self.master).write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    let ms = u16::try_from(left.as_millis().clamp(1, 50)).unwrap_or(50);
                    let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(ms));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// What [`Pty::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// A client holds the slave end open.
    pub client_present: bool,
    /// Bytes are waiting to be read.
    pub readable: bool,
}

/// The master side of a simulated device: a [`Pty`] that can vanish and come back, with an
/// optional stable symbolic link (see the module documentation).
#[derive(Debug)]
pub struct SimPort {
    pty: Option<Pty>,
    link: Option<PathBuf>,
    connected: bool,
}

/// A change of connection seen by [`SimPort::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChange {
    /// Nothing changed.
    None,
    /// A client opened the device.
    Connected,
    /// The last client closed the device (or the device vanished).
    Disconnected,
}

impl SimPort {
    /// Creates a device on a new PTY; if `link` is given, it is (re)pointed at the slave.
    pub fn open(link: Option<PathBuf>) -> Result<SimPort, PtyError> {
        let mut port = SimPort {
            pty: None,
            link,
            connected: false,
        };
        port.come_back()?;
        Ok(port)
    }

    /// The path a client opens: the stable link if any, else the current slave path.
    pub fn path(&self) -> PathBuf {
        match (&self.link, &self.pty) {
            (Some(link), _) => link.clone(),
            (None, Some(pty)) => pty.slave_path().to_path_buf(),
            (None, None) => PathBuf::new(),
        }
    }

    /// The current PTY, if the device is present.
    pub fn pty(&self) -> Option<&Pty> {
        self.pty.as_ref()
    }

    /// Whether a client has the device open (as of the last [`SimPort::poll`]).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Closes the master (clients see a hangup) and removes the stable link.
    pub fn vanish(&mut self) {
        self.pty = None;
        self.connected = false;
        if let Some(link) = &self.link {
            let _ = std::fs::remove_file(link);
        }
    }

    /// Creates a fresh PTY and points the stable link at it. A no-op if present.
    pub fn come_back(&mut self) -> Result<(), PtyError> {
        if self.pty.is_some() {
            return Ok(());
        }
        let pty = Pty::open()?;
        if let Some(link) = &self.link {
            let tmp = link.with_extension("tmp-link");
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(pty.slave_path(), &tmp)
                .and_then(|()| std::fs::rename(&tmp, link))
                .map_err(|source| PtyError::Link {
                    path: link.clone(),
                    source,
                })?;
        }
        self.pty = Some(pty);
        self.connected = false;
        Ok(())
    }

    /// Waits up to `timeout` for input, reads it into `buf` and reports connection changes.
    ///
    /// Returns the change and the number of bytes read (0 when nothing was read).
    pub fn poll(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<(PortChange, usize)> {
        let Some(pty) = &self.pty else {
            std::thread::sleep(timeout);
            return Ok((PortChange::None, 0));
        };
        let ready = pty.wait(timeout)?;
        let mut change = PortChange::None;
        if ready.client_present != self.connected {
            self.connected = ready.client_present;
            change = if self.connected {
                PortChange::Connected
            } else {
                PortChange::Disconnected
            };
        }
        if !ready.client_present {
            // The master keeps reporting a hangup without blocking: do not spin.
            std::thread::sleep(timeout);
            return Ok((change, 0));
        }
        let n = if ready.readable {
            pty.read_available(buf)?
        } else {
            0
        };
        Ok((change, n))
    }

    /// Writes `bytes` if a client is connected; silently drops them otherwise (a device
    /// talking to an unplugged cable).
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        match &self.pty {
            Some(pty) if self.connected => pty.write_all_timeout(bytes, Duration::from_secs(1)),
            _ => Ok(()),
        }
    }
}

impl Drop for SimPort {
    fn drop(&mut self) {
        self.vanish();
    }
}

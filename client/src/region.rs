//! A shared-memory region opened through the broker ([`Region`]) and a
//! mapping of it ([`Mapping`]).
//!
//! The broker owns each region's memory file and decides who may open it;
//! an open is answered with a descriptor of the file (read-only or
//! read-write, as asked and allowed), which this process maps. The bytes
//! never pass through the broker: processes that map one region share its
//! memory.
//!
//! Read-only is the kernel's rule, not this library's: the descriptor of a
//! read-only open is itself read-only, so a writable shared mapping of it
//! fails (`EACCES`) whatever the process tries.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use mailbox_proto::{RegionAccess, RegionInfo};
use rustix::mm::{MapFlags, ProtFlags};

/// An opened region: its descriptor, what it is, and what the descriptor
/// allows. Dropping it closes the descriptor; mappings made from it stay
/// valid until they are dropped.
#[derive(Debug)]
pub struct Region {
    file: OwnedFd,
    info: RegionInfo,
    access: RegionAccess,
}

impl Region {
    pub(crate) fn new(file: OwnedFd, info: RegionInfo, access: RegionAccess) -> Self {
        Self { file, info, access }
    }

    /// The region as the broker described it when it was opened.
    pub fn info(&self) -> &RegionInfo {
        &self.info
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.info.size
    }

    /// What the descriptor allows.
    pub fn access(&self) -> RegionAccess {
        self.access
    }

    /// The descriptor itself, to pass on or map another way.
    pub fn into_fd(self) -> OwnedFd {
        self.file
    }

    /// Maps the whole region into this process: readable, and writable
    /// when it was opened [`RegionAccess::ReadWrite`]. Every mapping of
    /// the region, in any process, shows the same bytes.
    pub fn map(&self) -> io::Result<Mapping> {
        let len = usize::try_from(self.info.size)
            .map_err(|_| io::Error::other("the region is larger than this address space"))?;
        let writable = self.access.writes();
        let protection = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a new mapping at an address the kernel chooses, of the
        // file's own size (sealed by the broker: it cannot shrink under
        // the mapping); it is only reached through `Mapping`, which unmaps
        // it once.
        let address = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                protection,
                MapFlags::SHARED,
                &self.file,
                0,
            )?
        };
        let address = NonNull::new(address.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mapping {
            address,
            len,
            writable,
        })
    }
}

impl AsFd for Region {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// A shared mapping of a whole region. Reads and writes are copies in and
/// out of the shared memory, checked against its bounds; other processes
/// may write the same bytes at any time, so order them (for example with a
/// mailbox message per filled slot, as the producer/consumer example of
/// the README does): bytes read while another process writes them may be
/// a mix of old and new. Dropping it unmaps it.
#[derive(Debug)]
pub struct Mapping {
    address: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain shared memory, reached only by copies
// through `&self`; nothing in it is tied to a thread.
unsafe impl Send for Mapping {}
// SAFETY: as above: concurrent copies are what shared memory is for, and
// the bounds are checked on every access.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Its length in bytes (the region's size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never: a region has at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it may be written.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Copies `buffer.len()` bytes from `offset` into `buffer`; an error of
    /// kind `InvalidInput` past the end.
    pub fn read_at(&self, offset: usize, buffer: &mut [u8]) -> io::Result<()> {
        self.check(offset, buffer.len())?;
        // SAFETY: `check` keeps `offset..offset + len` inside the mapping,
        // which `buffer` (our own memory) cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.address.as_ptr().add(offset),
                buffer.as_mut_ptr(),
                buffer.len(),
            );
        }
        Ok(())
    }

    /// Copies `bytes` into the region at `offset`; an error of kind
    /// `PermissionDenied` on a read-only mapping, `InvalidInput` past the
    /// end.
    pub fn write_at(&self, offset: usize, bytes: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the region was opened read-only",
            ));
        }
        self.check(offset, bytes.len())?;
        // SAFETY: `check` keeps the range inside the mapping, which is
        // writable (`writable`); `bytes` may even lie in the mapping
        // itself: `copy` allows the two to overlap.
        unsafe {
            std::ptr::copy(
                bytes.as_ptr(),
                self.address.as_ptr().add(offset),
                bytes.len(),
            );
        }
        Ok(())
    }

    /// The start of the mapping, for code that reads the memory in place
    /// (and takes on ordering the accesses with other processes).
    pub fn as_ptr(&self) -> *const u8 {
        self.address.as_ptr()
    }

    /// The start of a writable mapping, for code that writes in place;
    /// `None` for a read-only one.
    pub fn as_mut_ptr(&self) -> Option<*mut u8> {
        self.writable.then_some(self.address.as_ptr())
    }

    fn check(&self, offset: usize, len: usize) -> io::Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{len} bytes at offset {offset} go past the end of the region ({} bytes)",
                    self.len
                ),
            )),
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `Region::map` with this address
        // and length and is unmapped only here.
        let _ = unsafe { rustix::mm::munmap(self.address.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(size: u64, access: RegionAccess) -> Region {
        let file =
            rustix::fs::memfd_create("test", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd");
        rustix::fs::ftruncate(&file, size).expect("sized");
        let info = RegionInfo {
            name: "test".into(),
            size,
            ..RegionInfo::default()
        };
        Region::new(file, info, access)
    }

    #[test]
    fn two_mappings_of_one_file_share_their_bytes_within_bounds() {
        let writer = region(4096, RegionAccess::ReadWrite);
        let file = rustix::io::fcntl_dupfd_cloexec(&writer, 0).expect("dup");
        let reader = Region::new(file, writer.info().clone(), RegionAccess::Read);
        let written = writer.map().expect("maps");
        let read = reader.map().expect("maps");
        written.write_at(4090, b"hello!").expect("fits");
        let mut buffer = [0u8; 6];
        read.read_at(4090, &mut buffer).expect("fits");
        assert_eq!(&buffer, b"hello!");
        assert_eq!(
            written
                .write_at(4091, b"hello!")
                .expect_err("past the end")
                .kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            read.write_at(0, b"x").expect_err("read-only").kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(read.as_mut_ptr().is_none());
        assert_eq!((read.len(), read.is_writable()), (4096, false));
    }
}

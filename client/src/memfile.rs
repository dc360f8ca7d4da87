//! Payloads as sealed memory files, the sender's side: [`SealedFile`] (a
//! `memfd` sealed against writing, growing, shrinking and resealing) and
//! [`FileWriter`] (reserve N bytes, fill them in place, seal), sent with
//! [`blocking::Client::send_file`](crate::blocking::Client::send_file).
//!
//! Once sealed, nobody can change the bytes, the sender included: a
//! `write(2)` or a writable shared mapping of the file fails with `EPERM`.
//! That is what lets the broker pass the same file to every receiver
//! without copying it. Receivers need nothing of this module: a message
//! whose payload came as a file reads through `Message::payload` like any
//! other (a read-only mapping behind the `Bytes`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use mailbox_proto::memfile::required_seals;
use rustix::fs::MemfdFlags;
use rustix::mm::{MapFlags, ProtFlags};

/// The [file threshold](crate::blocking::Client::set_file_threshold) the
/// design suggests, 64 KiB: below some size, copying a payload through the
/// socket costs less than making, filling, sealing and mapping a memory
/// file (where exactly is not measured yet).
pub const DEFAULT_FILE_THRESHOLD: usize = 64 * 1024;

/// A memory file sealed for sending: its bytes can no longer change.
#[derive(Debug)]
pub struct SealedFile {
    file: OwnedFd,
    len: u64,
}

impl SealedFile {
    /// A sealed memory file holding a copy of `bytes` (one copy, into the
    /// file; [`FileWriter`] avoids even that).
    ///
    /// ```
    /// let file = mailbox_client::SealedFile::from_bytes(b"a large payload")?;
    /// assert_eq!(file.len(), 15);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> io::Result<Self> {
        Self::from_slices(&[bytes])
    }

    /// A sealed memory file holding `parts` one after the other (say a
    /// header and a body), written with `pwritev`: the kernel copies into
    /// the file's pages as it allocates them, without the page faults and
    /// the zeroing of a fresh mapping, about twice as fast as
    /// [`FileWriter`] when the bytes already exist (measured on 1 MiB
    /// payloads; `FileWriter` is for bytes produced in place).
    ///
    /// ```
    /// let file = mailbox_client::SealedFile::from_slices(&[b"head:", b"body"])?;
    /// assert_eq!(file.len(), 9);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_slices(parts: &[&[u8]]) -> io::Result<Self> {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        let file = new_memory_file(len)?;
        let mut slices: Vec<io::IoSlice<'_>> = parts
            .iter()
            .filter(|part| !part.is_empty())
            .map(|part| io::IoSlice::new(part))
            .collect();
        let mut remaining = &mut slices[..];
        let mut offset = 0u64;
        while !remaining.is_empty() {
            let written = match rustix::io::pwritev(&file, remaining, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(rustix::io::Errno::INTR) => continue,
                Err(error) => return Err(error.into()),
            };
            offset += written as u64;
            io::IoSlice::advance_slices(&mut remaining, written);
        }
        rustix::fs::fcntl_add_seals(&file, required_seals())?;
        Ok(Self {
            file,
            len: len as u64,
        })
    }

    /// A descriptor to send as it is, claiming `len` bytes. Nothing is
    /// checked here: the broker refuses (kind `InvalidRequest`) a file that
    /// is not a memory file of `len` bytes with every seal. For a file
    /// sealed by other means, and for tests of the refusals.
    pub fn from_descriptor(file: OwnedFd, len: u64) -> Self {
        Self { file, len }
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The descriptor, given up.
    pub fn into_descriptor(self) -> OwnedFd {
        self.file
    }
}

/// A memory file of a fixed size being filled in place: reserve, write
/// through [`as_mut_slice`](Self::as_mut_slice), then [`seal`](Self::seal).
///
/// ```
/// let mut writer = mailbox_client::FileWriter::new(4096)?;
/// writer.as_mut_slice()[..5].copy_from_slice(b"frame");
/// let file = writer.seal()?;
/// assert_eq!(file.len(), 4096);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FileWriter {
    file: OwnedFd,
    mapping: WritableMapping,
}

/// The writer's mapping, unmapped when dropped.
#[derive(Debug)]
struct WritableMapping {
    address: usize,
    len: usize,
}

// SAFETY: the mapping is owned by its writer alone (no other reference to
// it exists), like a `Vec<u8>`'s heap.
unsafe impl Send for WritableMapping {}

impl Drop for WritableMapping {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: the mapping made in `FileWriter::new`, unmapped once;
            // no slice of it outlives the writer's `&mut self`.
            let _ = unsafe { rustix::mm::munmap(self.address as *mut std::ffi::c_void, self.len) };
        }
    }
}

impl FileWriter {
    /// A new memory file of `len` zero bytes, mapped for writing.
    pub fn new(len: usize) -> io::Result<Self> {
        let file = new_memory_file(len)?;
        let address = if len == 0 {
            0
        } else {
            // SAFETY: a fresh shared mapping chosen by the kernel, of a file
            // of `len` bytes only this writer can resize (nobody else has
            // it yet); unmapped when the mapping is dropped.
            let address = unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    // Every page is about to be written: one call that
                    // allocates them all costs less than a fault per page
                    // (about 10% of a 1 MiB payload's making, measured).
                    // Not for huge-page candidates: populating first would
                    // make them small pages before the advice below.
                    if len >= HUGE_PAGE {
                        MapFlags::SHARED
                    } else {
                        MapFlags::SHARED | MapFlags::POPULATE
                    },
                    &file,
                    0,
                )?
            };
            if len >= HUGE_PAGE {
                // Where the machine allows huge pages for shared memory
                // (`/sys/kernel/mm/transparent_hugepage/shmem_enabled` is
                // `advise`), a file of 2 MiB and more is made of them:
                // making, filling and freeing 16 MiB then costs about a
                // quarter (measured: 1,318 -> 362 us/MiB). Elsewhere the
                // advice changes nothing, and refusing it is no error.
                // SAFETY: advice on the mapping just made, of `len` bytes.
                let _ =
                    unsafe { rustix::mm::madvise(address, len, rustix::mm::Advice::LinuxHugepage) };
            }
            address as usize
        };
        Ok(Self {
            file,
            mapping: WritableMapping { address, len },
        })
    }

    /// The bytes to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.mapping.len == 0 {
            return &mut [];
        }
        // SAFETY: `len` writable bytes mapped at `address` while the
        // mapping lives; borrowed from `&mut self`, so no other slice of
        // them exists.
        unsafe { std::slice::from_raw_parts_mut(self.mapping.address as *mut u8, self.mapping.len) }
    }

    /// Unmaps it and seals it: from here on nobody can change it.
    /// (`F_SEAL_WRITE` is refused while a writable mapping exists, so the
    /// mapping goes first.)
    pub fn seal(self) -> io::Result<SealedFile> {
        let len = self.mapping.len as u64;
        drop(self.mapping);
        rustix::fs::fcntl_add_seals(&self.file, required_seals())?;
        Ok(SealedFile {
            file: self.file,
            len,
        })
    }
}

/// The size of a transparent huge page on x86-64 and arm64 (4K pages).
const HUGE_PAGE: usize = 2 * 1024 * 1024;

/// A memory file of `len` zero bytes that may be sealed.
fn new_memory_file(len: usize) -> io::Result<OwnedFd> {
    let file = rustix::fs::memfd_create(
        "mailbox-payload",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    rustix::fs::ftruncate(&file, len as u64)?;
    Ok(file)
}

/// Whether `payload` (a received message's) arrived as a memory file (a
/// read-only mapping of the broker's sealed file) rather than inline: the
/// same bytes either way, this only tells the form. A slice or copy of it
/// is inline bytes. A lookup in a small process-wide table, no system call.
pub fn is_memory_file(payload: &bytes::Bytes) -> bool {
    mailbox_proto::memfile::is_file(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_file_cannot_be_written_or_mapped_writable() {
        let file = SealedFile::from_bytes(b"fixed").expect("sealed");
        let written = rustix::io::write(file.as_fd(), b"x").expect_err("sealed");
        assert_eq!(written, rustix::io::Errno::PERM);
        // SAFETY: the mapping fails; nothing to unmap.
        let mapped = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                5,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file.as_fd(),
                0,
            )
        };
        assert_eq!(mapped.expect_err("sealed"), rustix::io::Errno::PERM);
        mailbox_proto::memfile::check_sealed(&file.into_descriptor(), 5).expect("valid");
    }

    #[test]
    fn a_writer_of_huge_page_size_fills_and_seals() {
        let len = 3 * 1024 * 1024 + 5;
        let mut writer = FileWriter::new(len).expect("writer");
        writer.as_mut_slice().fill(9);
        let file = writer.seal().expect("sealed");
        let bytes = mailbox_proto::memfile::map_sealed(file.into_descriptor(), len as u64, false)
            .expect("mapped");
        assert_eq!(bytes.len(), len);
        assert!(bytes.iter().all(|&b| b == 9));
    }

    #[test]
    fn slices_are_written_in_order_and_sealed() {
        let big = vec![7u8; 300 * 1024];
        let file = SealedFile::from_slices(&[b"head", &[], &big, b"tail"]).expect("sealed");
        assert_eq!(file.len(), 4 + big.len() as u64 + 4);
        let bytes =
            mailbox_proto::memfile::map_sealed(file.into_descriptor(), 4 + 300 * 1024 + 4, false)
                .expect("mapped");
        assert_eq!(&bytes[..4], b"head");
        assert!(bytes[4..4 + big.len()].iter().all(|&b| b == 7));
        assert_eq!(&bytes[4 + big.len()..], b"tail");
    }
}

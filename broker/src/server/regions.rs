//! The memory files of shared-memory regions. The core decides which
//! regions exist and who may open them (`mailbox_core`'s `regions.rs`);
//! this module holds the files: one `memfd` per region, made when the core
//! reports a region created and dropped when it reports one deleted (or
//! when the broker stops).
//!
//! Each region keeps two descriptors of one file: read-write, and
//! read-only (the same file reopened through `/proc/self/fd` with
//! `O_RDONLY`). An open is answered with one of them, shared, not
//! duplicated: the kernel takes its own reference when the writer sends it
//! (`SCM_RIGHTS`), so nothing here makes a system call under the lock to
//! open a region. A read-only descriptor cannot be mapped writable
//! (`mmap(PROT_WRITE, MAP_SHARED)` fails with `EACCES`), so read-only
//! access is the kernel's to enforce, not the client's to honour.
//!
//! After the read-only reopen the file's mode is set to 0: a client that
//! got the read-only descriptor cannot reopen it read-write through its
//! own `/proc/self/fd` (the open checks the file's mode, and the file
//! belongs to the broker's uid). A client running as the broker's uid (or
//! root) could change the mode back: it is the broker's own user.
//!
//! The file is sealed against growing and shrinking (and further sealing):
//! no client can change a region's size, so a mapping of `size` bytes
//! never faults past the end of the file.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use mailbox_proto::RegionAccess;
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

/// The longest memfd name the kernel takes is 249 bytes; the region's
/// name is cut to fit after the prefix (the name is only shown in
/// `/proc/PID/fd` and `/proc/PID/maps`).
const MAX_SHOWN_NAME: usize = 200;

/// One region's memory file.
#[derive(Debug)]
pub(crate) struct RegionFile {
    read_write: Arc<OwnedFd>,
    read_only: Arc<OwnedFd>,
}

impl RegionFile {
    /// A new memory file of `size` zero bytes for region `name`, sealed
    /// against resizing, with its read-only twin.
    pub(crate) fn create(name: &str, size: u64) -> io::Result<Self> {
        // Region names are ASCII (the rule of mailbox names); a slash is
        // kept out of the shown name, which reads like a path.
        let shown: String = name
            .chars()
            .take(MAX_SHOWN_NAME)
            .map(|c| if c == '/' { '_' } else { c })
            .collect();
        let file = rustix::fs::memfd_create(
            format!("mailbox-region:{shown}"),
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        rustix::fs::ftruncate(&file, size)?;
        rustix::fs::fcntl_add_seals(&file, SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL)?;
        let read_only = rustix::fs::open(
            format!("/proc/self/fd/{}", file.as_raw_fd()),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::fs::fchmod(&file, Mode::empty())?;
        Ok(Self {
            read_write: Arc::new(file),
            read_only: Arc::new(read_only),
        })
    }

    /// The descriptor that allows `access`.
    pub(crate) fn descriptor(&self, access: RegionAccess) -> Arc<OwnedFd> {
        match access {
            RegionAccess::Read => Arc::clone(&self.read_only),
            RegionAccess::ReadWrite => Arc::clone(&self.read_write),
        }
    }
}

/// Every region's file, by name.
pub(crate) type RegionFiles = HashMap<String, RegionFile>;

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::mm::{MapFlags, ProtFlags};

    fn map(fd: &OwnedFd, len: usize, prot: ProtFlags) -> io::Result<*mut std::ffi::c_void> {
        // SAFETY: a fresh mapping chosen by the kernel; unmapped by the
        // caller, never turned into a reference.
        unsafe {
            rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)
                .map_err(io::Error::from)
        }
    }

    #[test]
    fn a_region_file_has_its_size_and_cannot_be_resized() {
        let region = RegionFile::create("frames/left", 8192).expect("made");
        let file = region.descriptor(RegionAccess::ReadWrite);
        assert_eq!(rustix::fs::fstat(&*file).expect("stat").st_size, 8192);
        assert!(rustix::fs::ftruncate(&*file, 4096).is_err());
        assert!(rustix::fs::ftruncate(&*file, 16384).is_err());
        let seals = rustix::fs::fcntl_get_seals(&*file).expect("seals");
        assert!(seals.contains(SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL));
    }

    #[test]
    fn the_read_only_descriptor_refuses_a_writable_mapping_and_sees_the_writes() {
        let region = RegionFile::create("r", 4096).expect("made");
        let writable = region.descriptor(RegionAccess::ReadWrite);
        let read_only = region.descriptor(RegionAccess::Read);
        let denied = map(&read_only, 4096, ProtFlags::READ | ProtFlags::WRITE)
            .expect_err("a writable mapping of a read-only descriptor");
        assert_eq!(denied.raw_os_error(), Some(libc::EACCES));

        let writer = map(&writable, 4096, ProtFlags::READ | ProtFlags::WRITE).expect("maps");
        let reader = map(&read_only, 4096, ProtFlags::READ).expect("maps");
        // SAFETY: both mappings are 4096 bytes long and live until unmapped
        // below; only raw pointer reads and writes.
        unsafe {
            writer.cast::<u8>().add(100).write_volatile(42);
            assert_eq!(reader.cast::<u8>().add(100).read_volatile(), 42);
            rustix::mm::munmap(writer, 4096).expect("unmaps");
            rustix::mm::munmap(reader, 4096).expect("unmaps");
        }
    }
}

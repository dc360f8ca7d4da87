//! Memory-file payloads: sealed `memfd`s that travel as `SCM_RIGHTS` with
//! their frame (`Request::SendFile`, `Response::ReceivedFile`; see
//! "Memory-file payloads" in `PROTOCOL.md`).
//!
//! Both ends need the same two things, so they live here, next to the
//! frames that carry the files: the check that a file is sealed and as
//! long as claimed ([`check_sealed`]), and a read-only mapping of it as
//! [`Bytes`] ([`map_sealed`]), so that a file payload travels through
//! queues and reaches `Message::payload` as any other payload does.
//!
//! The broker maps with `register: true`: it must find the file again
//! when it hands the message to a receiver that takes files. `Bytes` has
//! no way back to its owner, so a process-wide table keyed by the
//! mapping's address (unique while the mapping lives) holds each file
//! until the mapping is dropped ([`file_of`]). Clients map with
//! `register: false`: the table then only remembers the mapping, so that
//! [`is_file`] tells which form a payload arrived in, and the file is
//! closed at once (the mapping keeps its memory).

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use rustix::fs::SealFlags;
use rustix::mm::{MapFlags, ProtFlags};

/// The largest memory-file payload, in bytes: files have their own limit
/// in place of a mailbox's `max_message_size` (whose ceiling is the frame
/// limit, which files do not pass through).
pub const MAX_FILE_PAYLOAD: u64 = 1 << 30;

/// The seals a memory-file payload must carry: nobody can write, grow or
/// shrink it, and nobody can take the seals off (there is no unsealing;
/// `F_SEAL_SEAL` only stops further changes).
pub fn required_seals() -> SealFlags {
    SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL
}

/// Why a file cannot be a payload.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not a memory file (a pipe, a socket, a regular file on disk).
    #[error("the descriptor is not a sealable memory file (memfd): {0}")]
    NotAMemoryFile(String),
    /// A memory file without every seal.
    #[error(
        "the memory file is not sealed against writing, growing, shrinking and resealing \
         (F_SEAL_WRITE|F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_SEAL); it has {0:?}"
    )]
    NotSealed(SealFlags),
    /// Its size is not the length the frame claims.
    #[error("the memory file has {actual} bytes, but the request claims {claimed}")]
    WrongSize {
        /// What the frame said.
        claimed: u64,
        /// What `fstat` said.
        actual: u64,
    },
    /// Above [`MAX_FILE_PAYLOAD`].
    #[error("a memory-file payload of {0} bytes is above the limit of {MAX_FILE_PAYLOAD} bytes")]
    TooLarge(u64),
    /// The mapping failed (out of address space or memory).
    #[error("cannot map the memory file: {0}")]
    Map(io::Error),
}

/// Checks that `file` is a memory file of exactly `claimed` bytes carrying
/// every seal of [`required_seals`].
pub fn check_sealed(file: &OwnedFd, claimed: u64) -> Result<(), FileError> {
    if claimed > MAX_FILE_PAYLOAD {
        return Err(FileError::TooLarge(claimed));
    }
    let stat = rustix::fs::fstat(file).map_err(|e| FileError::NotAMemoryFile(e.to_string()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(FileError::NotAMemoryFile(
            "it is not a regular file".to_owned(),
        ));
    }
    // Only files that support sealing (memfd, and shmem files made with
    // sealing allowed) answer F_GET_SEALS; a file on disk says EINVAL.
    let seals = rustix::fs::fcntl_get_seals(file)
        .map_err(|e| FileError::NotAMemoryFile(format!("F_GET_SEALS: {e}")))?;
    if !seals.contains(required_seals()) {
        return Err(FileError::NotSealed(seals));
    }
    let actual = u64::try_from(stat.st_size).unwrap_or(0);
    if actual != claimed {
        return Err(FileError::WrongSize { claimed, actual });
    }
    Ok(())
}

/// Checks `file` ([`check_sealed`]) and maps it read-only as [`Bytes`].
/// With `register`, [`file_of`] finds the file from the bytes (or any
/// clone of them) while they live. An empty file is an empty `Bytes`
/// (nothing to map, nothing to register).
pub fn map_sealed(file: OwnedFd, claimed: u64, register: bool) -> Result<Bytes, FileError> {
    check_sealed(&file, claimed)?;
    if claimed == 0 {
        return Ok(Bytes::new());
    }
    let len = usize::try_from(claimed).map_err(|_| FileError::TooLarge(claimed))?;
    // SAFETY: a fresh shared read-only mapping chosen by the kernel, of a
    // file sealed against shrinking (no SIGBUS past its end) and writing
    // (the bytes behind the slice never change); unmapped in `Drop`.
    let address = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::SHARED,
            &file,
            0,
        )
    }
    .map_err(|e| FileError::Map(e.into()))?;
    let mapping = Mapping {
        address: address as usize,
        len,
    };
    // Every mapping is in the table, so that `is_file` can tell a file
    // payload from inline bytes; only registered ones keep their file
    // (an unregistered mapping keeps the file's memory alive by itself).
    let file = register.then(|| Arc::new(file));
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(mapping.address, (len, file));
    REGISTERED.fetch_add(1, Ordering::Relaxed);
    Ok(Bytes::from_owner(mapping))
}

/// Whether `payload` is a whole mapping of a memory file made by
/// [`map_sealed`] (registered or not) that is still alive: how a client
/// tells a message that arrived as a file from one that arrived inline.
/// One lock of a small table, no system call.
pub fn is_file(payload: &Bytes) -> bool {
    if payload.is_empty() || REGISTERED.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let table = registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    matches!(table.get(&(payload.as_ptr() as usize)), Some((len, _)) if *len == payload.len())
}

/// The memory files behind the payloads of `messages`, as
/// ([`file_of`]) for each, by index, in order: one lock for them all.
pub fn files_in(messages: &[crate::Message]) -> Vec<(usize, Arc<OwnedFd>)> {
    if REGISTERED.load(Ordering::Relaxed) == 0 {
        return Vec::new();
    }
    let table = registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.payload.is_empty())
        .filter_map(
            |(index, m)| match table.get(&(m.payload.as_ptr() as usize)) {
                Some((len, Some(file))) if *len == m.payload.len() => {
                    Some((index, Arc::clone(file)))
                }
                _ => None,
            },
        )
        .collect()
}

/// The memory file behind `payload`, when it is a whole registered
/// mapping ([`map_sealed`] with `register`); `None` for inline bytes.
pub fn file_of(payload: &Bytes) -> Option<Arc<OwnedFd>> {
    if payload.is_empty() || REGISTERED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let table = registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match table.get(&(payload.as_ptr() as usize)) {
        Some((len, Some(file))) if *len == payload.len() => Some(Arc::clone(file)),
        _ => None,
    }
}

/// How many mappings of memory files are alive in this process (for
/// tests and `status`).
pub fn registered_files() -> usize {
    REGISTERED.load(Ordering::Relaxed)
}

static REGISTERED: AtomicUsize = AtomicUsize::new(0);

/// Mappings by address: their length and, when registered, their file.
type Registry = Mutex<HashMap<usize, (usize, Option<Arc<OwnedFd>>)>>;

fn registry() -> &'static Registry {
    static TABLE: OnceLock<Registry> = OnceLock::new();
    TABLE.get_or_init(Registry::default)
}

/// A read-only shared mapping, the owner behind a file payload's `Bytes`.
struct Mapping {
    address: usize,
    len: usize,
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `len` readable bytes at `address` while the mapping lives
        // (until `Drop`); sealed against writing, so never changed.
        unsafe { std::slice::from_raw_parts(self.address as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Out of the table before the address can be reused.
        let file = registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.address);
        if file.is_some() {
            REGISTERED.fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: the mapping made in `map_sealed`, unmapped once; no slice
        // of it outlives the owner (`Bytes` drops the owner last).
        let _ = unsafe { rustix::mm::munmap(self.address as *mut std::ffi::c_void, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::MemfdFlags;

    fn memfd(bytes: &[u8], seals: SealFlags) -> OwnedFd {
        let file = rustix::fs::memfd_create("t", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .expect("memfd");
        rustix::io::write(&file, bytes).expect("write");
        rustix::fs::fcntl_add_seals(&file, seals).expect("seal");
        file
    }

    #[test]
    fn a_sealed_file_maps_as_its_bytes_and_is_found_again_while_alive() {
        let payload = map_sealed(memfd(b"hello", required_seals()), 5, true).expect("mapped");
        assert_eq!(&payload[..], b"hello");
        let file = file_of(&payload.clone()).expect("registered");
        assert_eq!(rustix::fs::fstat(&*file).expect("stat").st_size, 5);
        assert!(file_of(&payload.slice(1..)).is_none());
        assert!(file_of(&Bytes::from_static(b"hello")).is_none());
        assert!(is_file(&payload) && !is_file(&payload.slice(1..)));
        let unregistered = map_sealed(memfd(b"hi", required_seals()), 2, false).expect("mapped");
        assert!(is_file(&unregistered) && file_of(&unregistered).is_none());
        assert!(!is_file(&Bytes::from_static(b"hi")));
        let address = payload.as_ptr() as usize;
        drop(payload);
        assert!(!registry().lock().expect("lock").contains_key(&address));
    }

    #[test]
    fn unsealed_short_and_foreign_files_are_refused() {
        let unsealed = memfd(b"abc", SealFlags::GROW);
        assert!(matches!(
            check_sealed(&unsealed, 3),
            Err(FileError::NotSealed(_))
        ));
        let short = memfd(b"abc", required_seals());
        assert!(matches!(
            check_sealed(&short, 4),
            Err(FileError::WrongSize {
                claimed: 4,
                actual: 3
            })
        ));
        let (socket, _other) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert!(matches!(
            check_sealed(&OwnedFd::from(socket), 0),
            Err(FileError::NotAMemoryFile(_))
        ));
        let disk = std::fs::File::open("/proc/self/stat").expect("file");
        assert!(matches!(
            check_sealed(&OwnedFd::from(disk), 0),
            Err(FileError::NotAMemoryFile(_))
        ));
    }
}

//! User and group names to ids, the way both the broker (its configuration
//! file) and `mailboxctl` (`chown`, `create --group`) read them: through the
//! system's account database (`getpwnam_r`, `getgrnam_r`), so NSS sources
//! work too. Like [`crate::socket_path`], a rule both sides must apply alike.
//! And back, ids to names (`getpwuid_r`, `getgrgid_r`), for showing them.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;

type Lookup<K, T> =
    unsafe extern "C" fn(K, *mut T, *mut libc::c_char, libc::size_t, *mut *mut T) -> libc::c_int;

/// The uid of the user `name` (`getpwnam_r`); `Ok(None)` when there is none.
pub fn user_id(name: &str) -> io::Result<Option<u32>> {
    lookup(name, libc::getpwnam_r, |entry: &libc::passwd| entry.pw_uid)
}

/// The gid of the group `name` (`getgrnam_r`); `Ok(None)` when there is none.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    lookup(name, libc::getgrnam_r, |entry: &libc::group| entry.gr_gid)
}

/// The name of the user `uid` (`getpwuid_r`); `Ok(None)` when it has none.
///
/// ```
/// use mailbox_proto::accounts::user_name;
/// assert_eq!(user_name(0).unwrap().as_deref(), Some("root"));
/// ```
pub fn user_name(uid: u32) -> io::Result<Option<String>> {
    find(uid, libc::getpwuid_r, |entry: &libc::passwd| {
        // SAFETY: a found entry's name is a C string in the buffer.
        unsafe { text(entry.pw_name) }
    })
}

/// The name of the group `gid` (`getgrgid_r`); `Ok(None)` when it has none.
pub fn group_name(gid: u32) -> io::Result<Option<String>> {
    find(gid, libc::getgrgid_r, |entry: &libc::group| {
        // SAFETY: a found entry's name is a C string in the buffer.
        unsafe { text(entry.gr_name) }
    })
}

/// A C string as text (lossy: names are ASCII in practice).
///
/// # Safety
/// `name` is null or points at a NUL-terminated string.
unsafe fn text(name: *const libc::c_char) -> String {
    if name.is_null() {
        return String::new();
    }
    // SAFETY: the caller's promise.
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

fn lookup<T>(
    name: &str,
    call: Lookup<*const libc::c_char, T>,
    id: fn(&T) -> u32,
) -> io::Result<Option<u32>> {
    let Ok(c_name) = CString::new(name) else {
        // A name with a NUL byte names nobody.
        return Ok(None);
    };
    find(c_name.as_ptr(), call, id)
}

/// One `get*_r` call by `key`, retried with a larger buffer while it is
/// too small; `what` reads the entry found.
fn find<K: Copy, T, R>(key: K, call: Lookup<K, T>, what: fn(&T) -> R) -> io::Result<Option<R>> {
    let mut buffer: Vec<libc::c_char> = vec![0; 1024];
    loop {
        let mut entry = MaybeUninit::<T>::uninit();
        let mut found: *mut T = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: a name key is a C
        // string, `entry` has room for one `T`, the buffer is `len` bytes.
        let rc = unsafe {
            call(
                key,
                entry.as_mut_ptr(),
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => return Ok(None),
            // SAFETY: on success `found` points at `entry`, which the call
            // filled in (its strings point into `buffer`, still alive).
            0 => return Ok(Some(what(unsafe { &*found }))),
            libc::ERANGE if buffer.len() < 1 << 24 => {
                let len = buffer.len() * 2;
                buffer.resize(len, 0);
            }
            // Some systems say "not found" with one of these.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            rc => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_resolve_by_name() {
        assert_eq!(user_id("root").unwrap(), Some(0));
        assert_eq!(group_id("root").unwrap(), Some(0));
        assert_eq!(user_id("no-such-user-here").unwrap(), None);
        assert_eq!(group_id("no-such-group-here").unwrap(), None);
        assert_eq!(user_id("nul\0byte").unwrap(), None);
        assert_eq!(user_name(0).unwrap().as_deref(), Some("root"));
        assert_eq!(group_name(0).unwrap().as_deref(), Some("root"));
        assert_eq!(user_name(4_000_000_000).unwrap(), None);
    }
}

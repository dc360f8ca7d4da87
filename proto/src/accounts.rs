//! User and group names to ids, the way both the broker (its configuration
//! file) and `mailboxctl` (`chown`, `create --group`) read them: through the
//! system's account database (`getpwnam_r`, `getgrnam_r`), so NSS sources
//! work too. Like [`crate::socket_path`], a rule both sides must apply alike.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;

type Lookup<T> = unsafe extern "C" fn(
    *const libc::c_char,
    *mut T,
    *mut libc::c_char,
    libc::size_t,
    *mut *mut T,
) -> libc::c_int;

/// The uid of the user `name` (`getpwnam_r`); `Ok(None)` when there is none.
pub fn user_id(name: &str) -> io::Result<Option<u32>> {
    lookup(name, libc::getpwnam_r, |entry: &libc::passwd| entry.pw_uid)
}

/// The gid of the group `name` (`getgrnam_r`); `Ok(None)` when there is none.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    lookup(name, libc::getgrnam_r, |entry: &libc::group| entry.gr_gid)
}

fn lookup<T>(name: &str, call: Lookup<T>, id: fn(&T) -> u32) -> io::Result<Option<u32>> {
    let Ok(c_name) = CString::new(name) else {
        // A name with a NUL byte names nobody.
        return Ok(None);
    };
    let mut buffer: Vec<libc::c_char> = vec![0; 1024];
    loop {
        let mut entry = MaybeUninit::<T>::uninit();
        let mut found: *mut T = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: the name is a C
        // string, `entry` has room for one `T`, the buffer is `len` bytes.
        let rc = unsafe {
            call(
                c_name.as_ptr(),
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
            0 => return Ok(Some(id(unsafe { &*found }))),
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
    }
}

//! The public methods of both clients, each written once.
//!
//! [`client_methods!`] turns one definition (its docs, its signature, and
//! the operation it runs) into the method of the async
//! [`Client`](crate::Client) (`&self`, `async`) and that of the
//! [`blocking::Client`](crate::blocking::Client) (`&mut self`). Docs that
//! hold for one client only (what dropping a future does, the examples,
//! which differ by `.await`) go in an `async { ... }` or `blocking { ... }`
//! block, appended to the shared ones.
//!
//! The body names the driver method that runs the operation: `run` (one
//! request, one answer), `all_pages` (a listing, page after page) or
//! `run_window` (a window of requests in flight). Both clients have these
//! three.

mod acknowledgements;
mod admin;
mod calls;
mod inbox;
mod mailboxes;
mod messages;
mod names;
mod pipelines;
mod regions;

/// Defines public methods of both clients at once; see the [module](self).
macro_rules! client_methods {
    ($(
        $(#[doc = $doc:literal])*
        $(async { $(#[doc = $async_doc:literal])* })?
        $(blocking { $(#[doc = $blocking_doc:literal])* })?
        pub fn $name:ident $(<$($generic:ident),*>)? ($($arg:ident: $type:ty),* $(,)?) -> $output:ty
        $(where [$($bound:tt)*])?
        { $driver:ident($($operation:expr),* $(,)?) }
    )*) => {
        impl crate::Client {
            $(
                $(#[doc = $doc])*
                $($(#[doc = $async_doc])*)?
                pub async fn $name $(<$($generic),*>)? (&self, $($arg: $type),*) -> $output
                $(where $($bound)*)?
                {
                    self.$driver($($operation),*).await
                }
            )*
        }

        impl crate::blocking::Client {
            $(
                $(#[doc = $doc])*
                $($(#[doc = $blocking_doc])*)?
                pub fn $name $(<$($generic),*>)? (&mut self, $($arg: $type),*) -> $output
                $(where $($bound)*)?
                {
                    self.$driver($($operation),*)
                }
            )*
        }
    };
}
pub(crate) use client_methods;

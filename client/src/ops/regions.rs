//! Operations on shared-memory regions: create, delete, describe, list,
//! open (whose answer carries the region's descriptor).

use mailbox_proto::{RegionAccess, RegionInfo, Request, Response};

use crate::descriptors::Descriptors;
use crate::error::Error;
use crate::ops::pages::{Listing, Page, PageCursor, Paged};
use crate::ops::{expect_answer, Operation};
use crate::region::Region;

/// `CreateRegion` → whether it was created (false: this uid had it
/// already, with the same size).
#[derive(Debug)]
pub(crate) struct CreateRegion<'a> {
    pub(crate) name: &'a str,
    pub(crate) size: u64,
    pub(crate) mode: Option<u32>,
    pub(crate) group: Option<u32>,
}

impl Operation for CreateRegion<'_> {
    type Output = bool;

    fn request(&mut self) -> Request {
        Request::CreateRegion {
            name: self.name.to_owned(),
            size: self.size,
            mode: self.mode,
            group: self.group,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<bool, Error> {
        expect_answer!(answer, Created { created } => created)
    }
}

/// `DeleteRegion` → done.
#[derive(Debug)]
pub(crate) struct DeleteRegion<'a>(pub(crate) &'a str);

impl Operation for DeleteRegion<'_> {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::DeleteRegion {
            name: self.0.to_owned(),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, Deleted => ())
    }
}

/// `RegionInfo` → one region.
#[derive(Debug)]
pub(crate) struct DescribeRegion<'a>(pub(crate) &'a str);

impl Operation for DescribeRegion<'_> {
    type Output = RegionInfo;

    fn request(&mut self) -> Request {
        Request::RegionInfo {
            name: self.0.to_owned(),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<RegionInfo, Error> {
        expect_answer!(answer, RegionInfo(info) => *info)
    }
}

/// `ListRegionPage` → a page of regions.
#[derive(Debug)]
pub(crate) struct RegionPage(PageCursor);

impl Operation for RegionPage {
    type Output = Page<RegionInfo>;

    fn request(&mut self) -> Request {
        Request::ListRegionPage {
            after: self.0.after.take(),
            max: self.0.max,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Page<RegionInfo>, Error> {
        expect_answer!(answer, RegionPage { regions, next } => Page { items: regions, next })
    }
}

impl Paged for RegionPage {
    type Row = RegionInfo;
    type Cursor = String;

    fn split(page: Page<RegionInfo>) -> (Vec<RegionInfo>, Option<String>) {
        (page.items, page.next)
    }
}

impl Listing for RegionPage {
    fn at(cursor: PageCursor) -> Self {
        Self(cursor)
    }
}

/// `OpenRegion` → the region, holding the descriptor its answer carried.
#[derive(Debug)]
pub(crate) struct OpenRegion<'a> {
    pub(crate) name: &'a str,
    pub(crate) access: RegionAccess,
}

impl Operation for OpenRegion<'_> {
    type Output = Region;

    fn request(&mut self) -> Request {
        Request::OpenRegion {
            name: self.name.to_owned(),
            access: self.access,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Region, Error> {
        self.decode_with(answer, Vec::new())
    }

    fn decode_with(
        self,
        answer: Result<Response, Error>,
        descriptors: Descriptors,
    ) -> Result<Region, Error> {
        let (info, access) =
            expect_answer!(answer, RegionOpened { region, access } => (*region, access))?;
        if access != self.access {
            return Err(Error::Protocol(format!(
                "the broker opened region {} {access:?} where {:?} was asked",
                self.name, self.access
            )));
        }
        let mut descriptors = descriptors.into_iter();
        match (descriptors.next(), descriptors.next()) {
            (Some(file), None) => Ok(Region::new(file, info, access)),
            _ => Err(Error::Protocol(format!(
                "the broker's answer to opening region {} did not carry exactly one descriptor",
                self.name
            ))),
        }
    }
}

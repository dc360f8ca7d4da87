//! Shared-memory regions: who may create, see, open, delete them; their
//! sizes against the limits and the budget; the records that tell the
//! broker to make or drop a region's memory file. Connections as in
//! `access_and_limits.rs`: `cN` has uid 2000+N and gid 3000+N, `c2` is
//! also in group 3001; `c9` is root.

use mailbox_proto::{ErrorKind, RegionAccess, RegionInfo, Request, Response};

use super::access_and_limits::harness_with_root;
use super::{ConnectionId, Harness, Limits};
use crate::{AccessPolicy, Outcome, RegionChange, Ticket};

fn with_root(limits: Limits) -> Harness {
    harness_with_root(limits, AccessPolicy::default())
}

/// Applies `request` of connection `who`: its one answer and the region
/// records of the outcome (invariants checked, the budget among them).
fn apply(
    harness: &mut Harness,
    who: u64,
    request: Request,
) -> (Result<Response, ErrorKind>, Vec<RegionChange>) {
    let clock = harness.clock();
    let mut out = Outcome::new();
    harness
        .core
        .apply(ConnectionId(who), 1, request, &clock, &mut out);
    harness.core.check_invariants();
    assert_eq!(out.replies.len(), 1, "{:?}", out.replies);
    let reply = out.replies.remove(0);
    (reply.result.map_err(|error| error.kind), out.regions)
}

fn answer(harness: &mut Harness, who: u64, request: Request) -> Result<Response, ErrorKind> {
    apply(harness, who, request).0
}

fn create(name: &str, size: u64, mode: Option<u32>, group: Option<u32>) -> Request {
    Request::CreateRegion {
        name: name.into(),
        size,
        mode,
        group,
    }
}

fn open(name: &str, access: RegionAccess) -> Request {
    Request::OpenRegion {
        name: name.into(),
        access,
    }
}

fn info(name: &str) -> Request {
    Request::RegionInfo { name: name.into() }
}

fn delete(name: &str) -> Request {
    Request::DeleteRegion { name: name.into() }
}

fn listed(harness: &mut Harness, who: u64) -> Vec<String> {
    match answer(
        harness,
        who,
        Request::ListRegionPage {
            after: None,
            max: 100,
        },
    ) {
        Ok(Response::RegionPage { regions, next }) => {
            assert_eq!(next, None);
            regions.into_iter().map(|region| region.name).collect()
        }
        other => panic!("list: {other:?}"),
    }
}

#[test]
fn a_created_region_tells_the_broker_to_make_its_file_and_a_delete_to_drop_it() {
    let mut harness = with_root(Limits::default());
    let (created, changes) = apply(&mut harness, 1, create("frames", 4096, None, None));
    assert_eq!(created, Ok(Response::Created { created: true }));
    assert_eq!(
        changes,
        [RegionChange::Created {
            ticket: Ticket {
                connection: ConnectionId(1),
                request: 1
            },
            name: "frames".into(),
            size: 4096
        }]
    );
    // Again with the same size: accepted, nothing to make.
    let (again, changes) = apply(&mut harness, 1, create("frames", 4096, None, None));
    assert_eq!(again, Ok(Response::Created { created: false }));
    assert!(changes.is_empty());
    assert_eq!(harness.core.budget.usage(2001).bytes, 4096);

    let (deleted, changes) = apply(&mut harness, 1, delete("frames"));
    assert_eq!(deleted, Ok(Response::Deleted));
    assert_eq!(
        changes,
        [RegionChange::Deleted {
            name: "frames".into()
        }]
    );
    assert_eq!(harness.core.budget.usage(2001).bytes, 0);
    assert_eq!(
        answer(&mut harness, 1, info("frames")),
        Err(ErrorKind::NoSuchRegion)
    );
    assert_eq!(
        answer(&mut harness, 1, delete("frames")),
        Err(ErrorKind::NoSuchRegion)
    );
}

#[test]
fn rights_follow_the_mode_read_write_manage() {
    let mut harness = with_root(Limits::default());
    // Owner everything, group (3001: c1's primary group, c2's
    // supplementary one) read, others nothing.
    assert!(answer(&mut harness, 1, create("shared", 100, Some(0o740), None)).is_ok());

    // The owner opens it either way.
    let opened = answer(&mut harness, 1, open("shared", RegionAccess::ReadWrite));
    let Ok(Response::RegionOpened { region, access }) = opened else {
        panic!("{opened:?}");
    };
    assert_eq!(access, RegionAccess::ReadWrite);
    assert_eq!((region.size, region.mode, region.opens), (100, 0o740, 1));

    // The group reads, does not write or manage.
    assert!(matches!(
        answer(&mut harness, 2, open("shared", RegionAccess::Read)),
        Ok(Response::RegionOpened {
            access: RegionAccess::Read,
            ..
        })
    ));
    assert_eq!(
        answer(&mut harness, 2, open("shared", RegionAccess::ReadWrite)),
        Err(ErrorKind::PermissionDenied)
    );
    assert_eq!(
        answer(&mut harness, 2, delete("shared")),
        Err(ErrorKind::PermissionDenied)
    );
    assert!(answer(&mut harness, 2, info("shared")).is_ok());

    // A stranger gets nothing: no open, no info, no delete, not listed.
    for request in [
        open("shared", RegionAccess::Read),
        open("shared", RegionAccess::ReadWrite),
        info("shared"),
        delete("shared"),
    ] {
        assert_eq!(
            answer(&mut harness, 3, request),
            Err(ErrorKind::PermissionDenied)
        );
    }
    assert_eq!(listed(&mut harness, 3), Vec::<String>::new());
    assert_eq!(listed(&mut harness, 2), ["shared"]);

    // Root may do everything; the opens were counted.
    let Ok(Response::RegionInfo(shown)) = answer(&mut harness, 9, info("shared")) else {
        panic!("root's info");
    };
    assert_eq!(
        *shown,
        RegionInfo {
            name: "shared".into(),
            size: 100,
            owner_uid: 2001,
            group_gid: 3001,
            mode: 0o740,
            opens: 2,
        }
    );
    assert_eq!(
        answer(&mut harness, 9, delete("shared")),
        Ok(Response::Deleted)
    );
}

#[test]
fn a_denied_message_names_the_region_and_the_right() {
    let mut harness = with_root(Limits::default());
    assert!(answer(&mut harness, 1, create("private", 10, Some(0o700), None)).is_ok());
    let clock = harness.clock();
    let mut out = Outcome::new();
    harness.core.apply(
        ConnectionId(3),
        1,
        open("private", RegionAccess::Read),
        &clock,
        &mut out,
    );
    let error = out.replies[0].result.as_ref().expect_err("denied");
    assert!(
        error.message.contains("may not read region private"),
        "{}",
        error.message
    );
}

#[test]
fn someone_elses_region_or_another_size_is_region_exists() {
    let mut harness = with_root(Limits::default());
    assert!(answer(&mut harness, 1, create("r", 10, None, None)).is_ok());
    assert_eq!(
        answer(&mut harness, 3, create("r", 10, None, None)),
        Err(ErrorKind::RegionExists)
    );
    assert_eq!(
        answer(&mut harness, 9, create("r", 10, None, None)),
        Err(ErrorKind::RegionExists)
    );
    assert_eq!(
        answer(&mut harness, 1, create("r", 11, None, None)),
        Err(ErrorKind::RegionExists)
    );
}

#[test]
fn names_sizes_modes_and_groups_are_checked() {
    let mut harness = with_root(Limits {
        max_region_size: 1000,
        ..Limits::default()
    });
    assert_eq!(
        answer(&mut harness, 1, create("bad name", 10, None, None)),
        Err(ErrorKind::InvalidName)
    );
    assert_eq!(
        answer(&mut harness, 1, create("empty", 0, None, None)),
        Err(ErrorKind::InvalidSettings)
    );
    assert_eq!(
        answer(&mut harness, 1, create("huge", 1001, None, None)),
        Err(ErrorKind::InvalidSettings)
    );
    assert_eq!(
        answer(&mut harness, 1, create("odd", 10, Some(0o1777), None)),
        Err(ErrorKind::InvalidSettings)
    );
    // A group the caller is not in.
    assert_eq!(
        answer(&mut harness, 1, create("given", 10, None, Some(3003))),
        Err(ErrorKind::PermissionDenied)
    );
    assert!(answer(&mut harness, 1, create("fits", 1000, None, None)).is_ok());
    assert_eq!(harness.core.region_count(), 1);
}

#[test]
fn regions_per_uid_are_limited_but_not_for_root() {
    let mut harness = with_root(Limits {
        max_regions_per_uid: 2,
        ..Limits::default()
    });
    assert!(answer(&mut harness, 1, create("a", 1, None, None)).is_ok());
    assert!(answer(&mut harness, 1, create("b", 1, None, None)).is_ok());
    assert_eq!(
        answer(&mut harness, 1, create("c", 1, None, None)),
        Err(ErrorKind::TooManyRequests)
    );
    // Another uid has its own count; root none.
    assert!(answer(&mut harness, 2, create("c", 1, None, None)).is_ok());
    for name in ["d", "e", "f"] {
        assert!(answer(&mut harness, 9, create(name, 1, None, None)).is_ok());
    }
    // A delete makes room.
    assert!(answer(&mut harness, 1, delete("a")).is_ok());
    assert!(answer(&mut harness, 1, create("g", 1, None, None)).is_ok());
}

#[test]
fn region_bytes_count_against_the_budget_and_the_owners_share() {
    let mut harness = with_root(Limits {
        memory_budget: 8000,
        max_queued_bytes_per_uid: Some(3000),
        admin_reserve_bytes: Some(1000),
        ..Limits::default()
    });
    assert!(answer(&mut harness, 1, create("a", 2000, None, None)).is_ok());
    // Past the owner's share.
    assert_eq!(
        answer(&mut harness, 1, create("b", 1001, None, None)),
        Err(ErrorKind::BrokerFull)
    );
    assert!(answer(&mut harness, 2, create("c", 3000, None, None)).is_ok());
    // Past the budget less the reserve (7000 - 5000 held).
    assert_eq!(
        answer(&mut harness, 3, create("d", 2001, None, None)),
        Err(ErrorKind::BrokerFull)
    );
    // Root may fill the reserve.
    assert!(answer(&mut harness, 9, create("e", 3000, None, None)).is_ok());
    assert_eq!(harness.core.budget.held(), 8000);
    // A message now finds the budget spent.
    harness.run(
        "
        c3#1 create q                   => c3#1 created
        c3#2 send q hi                  => c3#2 BrokerFull
        ",
    );
    // Deleting gives the bytes back.
    assert!(answer(&mut harness, 2, delete("c")).is_ok());
    harness.run("c3#3 send q hi => c3#3 sent 1 to 1");
}

#[test]
fn an_abandoned_region_is_forgotten_and_its_bytes_given_back() {
    let mut harness = with_root(Limits::default());
    assert!(answer(&mut harness, 1, create("a", 500, None, None)).is_ok());
    harness.core.abandon_region("a");
    harness.core.check_invariants();
    assert_eq!(harness.core.budget.held(), 0);
    assert_eq!(
        answer(&mut harness, 1, info("a")),
        Err(ErrorKind::NoSuchRegion)
    );
}

#[test]
fn listing_pages_go_in_name_order() {
    let mut harness = with_root(Limits::default());
    for name in ["c", "a", "b"] {
        assert!(answer(&mut harness, 1, create(name, 1, None, None)).is_ok());
    }
    let page = answer(
        &mut harness,
        1,
        Request::ListRegionPage {
            after: None,
            max: 2,
        },
    );
    let Ok(Response::RegionPage { regions, next }) = page else {
        panic!("{page:?}");
    };
    let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!((names, next.as_deref()), (vec!["a", "b"], Some("b")));
    let page = answer(
        &mut harness,
        1,
        Request::ListRegionPage {
            after: Some("b".into()),
            max: 2,
        },
    );
    let Ok(Response::RegionPage { regions, next }) = page else {
        panic!("{page:?}");
    };
    assert_eq!((regions.len(), next), (1, None));
}

#[test]
fn limits_report_the_region_limits() {
    let harness = with_root(Limits::default());
    let limits = harness.core.limit_list();
    let value = |name: &str| {
        limits
            .iter()
            .find(|limit| limit.name == name)
            .map(|limit| limit.value)
    };
    assert_eq!(value("max_region_size"), Some(1 << 30));
    assert_eq!(value("max_regions_per_uid"), Some(64));
}

//! A shared-memory region shown: `region info` (text and JSON) and
//! `region list`'s table (or its JSON lines).

use mailbox_client::RegionInfo;
use serde_json::json;

use super::text::{group, human_size, key_values, user};

/// `region info --json`, and one line of `region list --json`.
pub(crate) fn json(info: &RegionInfo) -> serde_json::Value {
    json!({
        "name": info.name,
        "size": info.size,
        "owner_uid": info.owner_uid,
        "group_gid": info.group_gid,
        "owner": mailbox_proto::accounts::user_name(info.owner_uid).ok().flatten(),
        "group": mailbox_proto::accounts::group_name(info.group_gid).ok().flatten(),
        "mode": format!("{:04o}", info.mode),
        "opens": info.opens,
    })
}

/// `region info`: one `key: value` line each.
pub(crate) fn text(info: &RegionInfo) -> String {
    key_values(&[
        ("name", info.name.clone()),
        ("size", human_size(info.size)),
        ("owner", user(info.owner_uid)),
        ("group", group(info.group_gid)),
        ("mode", format!("{:04o}", info.mode)),
        ("opens", info.opens.to_string()),
    ])
}

/// `region list`: a table of every region.
pub(crate) fn table(regions: &[RegionInfo]) -> String {
    let header = ["NAME", "OWNER", "GROUP", "MODE", "SIZE", "OPENS"];
    let rows: Vec<[String; 6]> = regions
        .iter()
        .map(|info| {
            [
                info.name.clone(),
                user(info.owner_uid),
                group(info.group_gid),
                format!("{:04o}", info.mode),
                human_size(info.size),
                info.opens.to_string(),
            ]
        })
        .collect();
    super::text::table(header, &rows, 4)
}

/// `region list --json`: one object per line.
pub(crate) fn json_lines(regions: &[RegionInfo]) -> String {
    let mut lines = String::new();
    for info in regions {
        lines.push_str(&json(info).to_string());
        lines.push('\n');
    }
    lines
}

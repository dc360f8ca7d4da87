//! The claimed well-known names shown (`names`): who holds each and how
//! many claims wait behind it.

use mailbox_client::NameInfo;
use serde_json::json;

/// `names --json`: one name and its holder.
pub(crate) fn json(info: &NameInfo) -> serde_json::Value {
    json!({
        "name": info.name,
        "process": info.process,
        "pid": info.pid,
        "uid": info.uid,
        "user": mailbox_proto::accounts::user_name(info.uid).ok().flatten(),
        "queued_claims": info.queued_claims,
    })
}

/// `names`: one line per name; its holder's user by name (its uid when it
/// has none), as `ps` shows it.
pub(crate) fn table(names: &[NameInfo]) -> String {
    let header = ["NAME", "PROCESS", "PID", "USER", "QUEUED"];
    let rows: Vec<[String; 5]> = names
        .iter()
        .map(|info| {
            [
                info.name.clone(),
                info.process.to_string(),
                info.pid.to_string(),
                super::text::user_name_or_id(info.uid),
                info.queued_claims.to_string(),
            ]
        })
        .collect();
    super::text::table(header, &rows, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_table_lines_up_and_json_has_every_field() {
        let info = NameInfo {
            name: "resolver".into(),
            process: 12,
            pid: 4242,
            uid: 0,
            queued_claims: 1,
        };
        let table = table(std::slice::from_ref(&info));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "NAME      PROCESS   PID  USER  QUEUED");
        assert_eq!(lines[1], "resolver       12  4242  root       1");
        let value = json(&info);
        assert_eq!(value["process"], 12);
        assert_eq!(value["queued_claims"], 1);
    }
}

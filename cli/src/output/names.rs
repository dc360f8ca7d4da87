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
        "queued_claims": info.queued_claims,
    })
}

/// `names`: one line per name.
pub(crate) fn table(names: &[NameInfo]) -> String {
    let header = ["NAME", "PROCESS", "PID", "UID", "QUEUED"];
    let rows: Vec<[String; 5]> = names
        .iter()
        .map(|info| {
            [
                info.name.clone(),
                info.process.to_string(),
                info.pid.to_string(),
                info.uid.to_string(),
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
            uid: 1000,
            queued_claims: 1,
        };
        let table = table(std::slice::from_ref(&info));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "NAME      PROCESS   PID   UID  QUEUED");
        assert_eq!(lines[1], "resolver       12  4242  1000       1");
        let value = json(&info);
        assert_eq!(value["process"], 12);
        assert_eq!(value["queued_claims"], 1);
    }
}

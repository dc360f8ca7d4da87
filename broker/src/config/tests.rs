//! The configuration file, end to end: every key read, every error located.

use std::path::Path;
use std::time::Duration;

use mailbox_proto::{Capacity, DeliveryPolicy, MailboxSettings};

use super::*;
use crate::core::{Permissions, Reservation};

fn parse_text(text: &str) -> Result<FileConfig> {
    parse(Path::new("/etc/mailbox/mailboxd.toml"), text)
}

fn error_of(text: &str) -> String {
    match parse_text(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn an_empty_file_is_the_defaults() {
    let config = parse_text("").unwrap();
    assert_eq!(
        FileConfig {
            source: None,
            ..config
        },
        FileConfig::default()
    );
}

#[test]
fn every_key_is_read() {
    let text = r#"
        [socket]
        path = "/run/mailbox/other.sock"
        mode = "0660"
        group = "root"

        [limits]
        memory_budget = "64M"
        max_queued_messages = 1000
        max_requests_in_flight = 50
        max_connections = 100
        max_connections_per_uid = 10
        max_mailboxes_per_uid = 20
        max_queued_bytes_per_mailbox = "1M"
        max_queued_bytes_per_uid = "16M"
        max_queued_messages_per_uid = 500
        admin_reserve_bytes = "8M"
        admin_reserve_messages = 0
        max_message_size = "64K"
        max_region_size = "256M"
        max_regions_per_uid = 8
        max_file_size = "512M"
        max_frame_size = "1M"
        handshake_timeout = "200ms"
        max_unread_reply_bytes = "32M"
        reserved_connections = 0
        max_buffered_bytes = "100M"
        max_buffered_bytes_per_uid = "10M"
        frame_timeout = "2s"
        write_timeout = "3s"
        max_held_files = 100
        max_held_files_per_uid = 10

        [access]
        admin_group = 10
        default_mode = "0700"

        default_inbox_mode = "0620"
        dead_letter_targets = ["jobs.dead"]

        [access.names]
        "org.example.svc" = [1000, "root", "65534"]

        [access.reserved_prefixes]
        "payroll." = "root"
        "ops." = [1000, "@root", "@7"]

        [[mailbox]]
        name = "jobs"
        capacity = 64
        policy = "priority"
        max_message_size = "4K"
        fixed_size = 16
        max_deliveries = 3
        dead_letter = "jobs.dead"
        ttl = "10m"
        ack_timeout = "30s"
        owner = "root"
        group = 100
        mode = "0764"

        [[mailbox]]
        name = "jobs.dead"
        capacity = "zero"

        [[mailbox]]
        name = "news"
        capacity = 8
        policy = "broadcast"
        cut_slow_subscribers_after = "5s"
    "#;
    let config = parse_text(text).unwrap();
    assert_eq!(
        config.socket,
        SocketConfig {
            path: Some("/run/mailbox/other.sock".into()),
            mode: Some(0o660),
            group: Some(0),
        }
    );
    assert_eq!(
        config.limits,
        Limits {
            memory_budget: 64 << 20,
            max_queued_messages: 1000,
            max_requests_in_flight: 50,
            max_connections: 100,
            max_connections_per_uid: 10,
            reserved_connections: 0,
            max_mailboxes_per_uid: 20,
            max_queued_bytes_per_mailbox: 1 << 20,
            max_queued_bytes_per_uid: Some(16 << 20),
            max_queued_messages_per_uid: Some(500),
            admin_reserve_bytes: Some(8 << 20),
            admin_reserve_messages: Some(0),
            max_message_size: 64 << 10,
            max_region_size: 256 << 20,
            max_regions_per_uid: 8,
            max_file_size: 512 << 20,
            // The server's, from its frame limit when it applies them.
            max_inline_payload: Limits::default().max_inline_payload,
        }
    );
    assert_eq!(config.max_frame_size, 1 << 20);
    assert_eq!(config.handshake_timeout, Duration::from_millis(200));
    assert_eq!(config.max_unread_reply_bytes, 32 << 20);
    assert_eq!(
        config.buffers,
        BufferLimits {
            max_buffered_bytes: 100 << 20,
            max_buffered_bytes_per_uid: 10 << 20,
            frame_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(3),
            max_held_files: 100,
            max_held_files_per_uid: 10,
        }
    );
    assert_eq!(config.access.admin_group, Some(10));
    assert_eq!(config.access.default_mode, 0o700);
    assert_eq!(config.access.default_inbox_mode, 0o620);
    assert!(config.access.dead_letter_targets.contains("jobs.dead"));
    assert_eq!(
        config.access.reserved_prefixes.get("payroll."),
        Some(&Reservation {
            uids: vec![0],
            gids: vec![]
        })
    );
    assert_eq!(
        config.access.reserved_prefixes.get("ops."),
        Some(&Reservation {
            uids: vec![1000],
            gids: vec![0, 7]
        })
    );
    assert_eq!(
        config.access.reserved_names.get("org.example.svc"),
        Some(&vec![1000, 0, 65534])
    );
    assert_eq!(config.mailboxes.len(), 3);
    let jobs = &config.mailboxes[0];
    assert_eq!(jobs.name, "jobs");
    assert_eq!(
        jobs.settings,
        MailboxSettings {
            capacity: Capacity::Bounded(64),
            policy: DeliveryPolicy::Priority,
            max_message_size: 4096,
            fixed_size: Some(16),
            max_deliveries: Some(3),
            dead_letter: Some("jobs.dead".into()),
            ttl_millis: Some(600_000),
            ack_timeout_millis: Some(30_000),
            cut_slow_subscribers_after_millis: None,
        }
    );
    assert_eq!(
        config.mailboxes[2]
            .settings
            .cut_slow_subscribers_after_millis,
        Some(5000)
    );
    assert_eq!(
        jobs.permissions,
        Permissions {
            owner: 0,
            group: 100,
            mode: 0o764,
        }
    );
    let dead = &config.mailboxes[1];
    assert_eq!(dead.settings.capacity, Capacity::Zero);
    // The default size, capped by the broker's limit.
    assert_eq!(dead.settings.max_message_size, 64 << 10);
    // Defaults: the broker's own uid and gid, and [access] default_mode.
    // SAFETY: no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert_eq!(
        dead.permissions,
        Permissions {
            owner: uid,
            group: gid,
            mode: 0o700,
        }
    );
}

#[test]
fn a_wrong_type_names_the_file_line_and_key() {
    let text = "[socket]\nmode = \"0666\"\n\n[limits]\nmax_connections = \"lots\"\n";
    assert_eq!(
        error_of(text),
        "/etc/mailbox/mailboxd.toml:5: limits.max_connections: expected a number"
    );
}

#[test]
fn unknown_keys_are_errors_with_their_line_and_key() {
    let error = error_of("[limits]\nmax_connections = 5\nmax_conections = 6\n");
    assert!(
        error.starts_with("/etc/mailbox/mailboxd.toml:3: limits.max_conections: unknown key"),
        "{error}"
    );
    let error = error_of("[limit]\nmax_connections = 5\n");
    assert!(
        error.starts_with("/etc/mailbox/mailboxd.toml:1: limit: unknown key `limit`"),
        "{error}"
    );
    let error = error_of("[[mailbox]]\nname = \"a\"\n[[mailbox]]\nname = \"b\"\ncolour = 1\n");
    assert!(
        error.starts_with("/etc/mailbox/mailboxd.toml:5: mailbox[1].colour: unknown key"),
        "{error}"
    );
}

#[test]
fn syntax_errors_name_their_line() {
    let error = error_of("[limits]\nmax_connections = = 5\n");
    assert!(
        error.starts_with("/etc/mailbox/mailboxd.toml:2: "),
        "{error}"
    );
}

#[test]
fn bad_values_are_explained() {
    for (text, expected) in [
        (
            "[limits]\nframe_timeout = \"0s\"\n",
            ":2: limits.frame_timeout: must be longer than 0",
        ),
        (
            "[limits]\nwrite_timeout = 30\n",
            ":2: limits.write_timeout: expected a duration in quotes",
        ),
        (
            "[limits]\nmax_buffered_bytes_per_uid = 0\n",
            ":2: limits.max_buffered_bytes_per_uid: must be at least 1",
        ),
        (
            "[limits]\nmemory_budget = \"64Q\"\n",
            ":2: limits.memory_budget: unknown unit \"Q\" in \"64Q\"; use K, M or G",
        ),
        (
            "[limits]\nmemory_budget = true\n",
            ":2: limits.memory_budget: expected a size",
        ),
        (
            "[limits]\nmax_connections = 0\n",
            ":2: limits.max_connections: must be at least 1",
        ),
        (
            "[limits]\nmax_connections = -3\n",
            ":2: limits.max_connections: expected a number, not a negative one",
        ),
        (
            "[limits]\nhandshake_timeout = 5\n",
            ":2: limits.handshake_timeout: expected a duration in quotes",
        ),
        (
            "[limits]\nhandshake_timeout = \"5\"\n",
            ":2: limits.handshake_timeout: \"5\" needs a unit",
        ),
        (
            "[limits]\nmax_message_size = \"32M\"\n",
            ":2: limits.max_message_size: 33554432 is above the most",
        ),
        (
            "[limits]\nmax_file_size = \"2G\"\n",
            ":2: limits.max_file_size: 2147483648 is above the most",
        ),
        (
            "[limits]\nmax_frame_size = \"64K\"\n",
            ":2: limits.max_frame_size: max_frame_size (65536) must be at least",
        ),
        (
            "[socket]\nmode = 660\n",
            ":2: socket.mode: expected an octal mode in quotes",
        ),
        (
            "[socket]\nmode = \"0988\"\n",
            ":2: socket.mode: \"0988\" is not an octal mode",
        ),
        (
            "[socket]\nmode = \"01777\"\n",
            ":2: socket.mode: \"01777\" is not an octal mode",
        ),
        (
            "[socket]\ngroup = \"no-such-group-here\"\n",
            ":2: socket.group: no group named \"no-such-group-here\"",
        ),
        (
            "[access]\nadmin_group = -1\n",
            ":2: access.admin_group: -1 is not a valid gid",
        ),
        (
            "[access.names]\n\"svc\" = 1000\n",
            ":2: access.names.svc: expected a list of users",
        ),
        (
            "[access.names]\n\"svc\" = [\"no-such-user-here\"]\n",
            ":2: access.names.svc: no user named \"no-such-user-here\"",
        ),
        (
            "[access.names]\n\"bad name\" = [1]\n",
            ":2: access.names.bad name: not a valid name",
        ),
        (
            "[[mailbox]]\ncapacity = 3\n",
            ":1: mailbox[0]: missing key `name`",
        ),
        (
            "[[mailbox]]\nname = \"a\"\ncapacity = \"lots\"\n",
            ":3: mailbox[0].capacity: \"lots\": expected \"zero\"",
        ),
        (
            "[[mailbox]]\nname = \"a\"\npolicy = \"fifo\"\n",
            ":3: mailbox[0].policy: \"fifo\": expected \"round-robin\"",
        ),
        (
            "[[mailbox]]\nname = \"a\"\n[[mailbox]]\nname = \"a\"\n",
            ":4: mailbox[1].name: mailbox a is declared twice (first at line 2)",
        ),
        ("[[mailbox]]\nname = \"a b\"\n", ":2: mailbox[0].name: "),
        (
            "[[mailbox]]\nname = \"a\"\nfixed_size = \"2M\"\n",
            ":1: mailbox[0]: fixed size 2097152 is above the max message size",
        ),
        (
            "[limits]\nmax_message_size = \"64K\"\n[[mailbox]]\nname = \"a\"\nmax_message_size = \"1M\"\n",
            ":5: mailbox[0].max_message_size: 1048576 is above limits.max_message_size",
        ),
        (
            "[[mailbox]]\nname = \"a\"\nowner = \"no-such-user-here\"\n",
            ":3: mailbox[0].owner: no user named",
        ),
        (
            "[[mailbox]]\nname = \"a\"\nack_timeout = 30\n",
            ":3: mailbox[0].ack_timeout: expected a duration in quotes",
        ),
        (
            "[[mailbox]]\nname = \"a\"\npolicy = \"broadcast\"\nack_timeout = \"1s\"\n",
            ":1: mailbox[0]: an acknowledgement timeout needs manual acknowledgement",
        ),
        (
            "[[mailbox]]\nname = \"a\"\npolicy = \"broadcast\"\ncut_slow_subscribers_after = \"5s\"\n",
            ":1: mailbox[0]: cutting slow subscribers needs a bounded capacity",
        ),
        (
            "[[mailbox]]\nname = \"a\"\ncapacity = 4\ncut_slow_subscribers_after = \"5s\"\n",
            ":1: mailbox[0]: cutting slow subscribers applies to broadcast, not round-robin",
        ),
        (
            "limits = 5\n",
            ":1: limits: invalid type: integer `5`, expected a [limits] table",
        ),
        (
            "[[mailbox]]\nname = \"a\"\nowner = 1000\ndead_letter = \"b\"\n[[mailbox]]\nname = \"b\"\nowner = 1001\n",
            ":4: mailbox[0].dead_letter: b is owned by uid 1001, a by uid 1000",
        ),
        (
            "[access.reserved_prefixes]\n\"p.\" = \"@no-such-group-here\"\n",
            ":2: access.reserved_prefixes.p.: no group named",
        ),
        (
            "[access]\ndead_letter_targets = \"dead\"\n",
            ":2: access.dead_letter_targets: expected a list of mailbox names",
        ),
    ] {
        let error = error_of(text);
        let expected = format!("/etc/mailbox/mailboxd.toml{expected}");
        assert!(
            error.starts_with(&expected),
            "{text:?}:\n got {error}\nwant {expected}"
        );
    }
}

#[test]
fn a_missing_default_file_is_the_defaults_but_a_missing_named_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("mailboxd.toml");
    let error = load(Some(&missing)).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{}: cannot read it", missing.display())),
        "{error}"
    );
    std::fs::write(&missing, "[limits]\nmax_connections = 7\n").unwrap();
    let config = load(Some(&missing)).unwrap();
    assert_eq!(config.limits.max_connections, 7);
    assert_eq!(config.source.as_deref(), Some(missing.as_path()));
}

#[test]
fn values_are_written_as_on_every_command_line() {
    // The syntaxes of mailbox_proto::units: decimal durations, `min`, and
    // every spelling of the size units.
    let config = parse_text(
        "[limits]\nhandshake_timeout = \"1.5s\"\nmax_buffered_bytes = \"256MiB\"\n\
         frame_timeout = \"0.25min\"\n[[mailbox]]\nname = \"a\"\nttl = \"10min\"\n\
         max_message_size = \"64kb\"\n",
    )
    .unwrap();
    assert_eq!(config.handshake_timeout, Duration::from_millis(1500));
    assert_eq!(config.buffers.max_buffered_bytes, 256 << 20);
    assert_eq!(config.buffers.frame_timeout, Duration::from_secs(15));
    assert_eq!(config.mailboxes[0].settings.ttl_millis, Some(600_000));
    assert_eq!(config.mailboxes[0].settings.max_message_size, 64 << 10);
}

//! How the batched path drives each workload: payloads per `SendMany`,
//! batches in flight, `max` per `ReceiveMany` and receives posted, and the
//! measurements behind each default ([`Batching::plan`]).

use crate::roles::RoleArgs;
use crate::spec::{Shape, Workload, UNBOUNDED};

/// Payload bytes one `ReceiveMany` answer may carry: the broker caps a
/// batch there, and the client accepts no larger frame.
const MAX_ANSWER_BYTES: usize = mailbox_client::MAX_MESSAGE_SIZE_LIMIT as usize;

/// Payload bytes a consumer's posted receives may have answered and
/// unread at once: half the broker's default per-uid room for unread
/// replies (`max_buffered_bytes_per_uid`, 64 MiB), which cuts a client
/// past it. Only `--size` above 2 MiB meets it (`large` at 16 MiB: one
/// message per receive, two posted).
const MAX_UNREAD_BYTES: usize = 32 << 20;

/// Receives the rendezvous consumer keeps posted.
pub(super) const RENDEZVOUS_POSTED: usize = 2;

/// How the batched path drives a workload: payloads per `SendMany` and
/// batches in flight on a producer's connection; `max` per `ReceiveMany`
/// and receives in flight on a consumer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Payloads per `SendMany`.
    pub send_batch: usize,
    /// `SendMany`s in flight per producer.
    pub send_window: usize,
    /// `max` of each `ReceiveMany`.
    pub receive_max: u32,
    /// `ReceiveMany`s in flight per consumer.
    pub receive_window: usize,
}

impl Batching {
    /// The batching of `workload` (`batch` and `batches` override the
    /// defaults on both sides), cut so that the spec's semantics hold: a
    /// producer never has more messages in flight than the mailbox holds
    /// (one, for a rendezvous), no one receive asks for more than the
    /// mailbox holds, and no answer is above the 16 MiB a batch may carry.
    ///
    /// The defaults were measured on 2 vCPUs (bench/README.md): batches of
    /// 256, 4 in flight, where one consumer drains (stream, fanout: 128 to
    /// 1024 per batch all measured alike); for `workq` each producer keeps
    /// only 4 x 64 in flight (4 producers: the capacity in all) and each
    /// consumer keeps 128 receives of 64 posted: the broker serves
    /// receivers (connections) in turn whatever each has posted, so posting
    /// ahead only keeps a consumer's turn while its process waits for a CPU
    /// (2 posted per consumer gave fairness 1.23-1.33 median at scale 0.3;
    /// at scale 1, 5 rounds, twice each, 32 gave 1.02-1.10 with worst
    /// rounds 1.06-1.12, 128 gave 1.000 in every round, at 3.6-4.4x
    /// posix-mq); for
    /// `large`, single 1 MiB
    /// sends with the window full and receives of 4 x 4 (0.7-0.9 GiB/s,
    /// against 0.3-0.5 for batches of 16 and 0.65 for single receives);
    /// `memory` fills and drains like `stream` (with batches of 1024, whose
    /// ~80 KiB frames the broker keeps without copying, the queued payloads
    /// hold on to their read buffers: 155 MiB instead of 135).
    pub fn plan(
        workload: Workload,
        shape: &Shape,
        batch: Option<usize>,
        batches: Option<usize>,
    ) -> Batching {
        let (send_batch, send_window, receive_max, receive_window) = match workload {
            Workload::Stream | Workload::Fanout => (256, 4, 256, 4),
            Workload::Workq => (64, 4, 64, 128),
            Workload::Large => (1, 16, 4, 4),
            // Eight subscribers of one uid share the broker's per-uid room
            // for unread replies (64 MiB by default): 16 MiB posted each
            // would pass it while a subscriber waits for a CPU, and the
            // broker rightly cuts a client that leaves that much unread.
            Workload::FanoutLarge => (1, 16, 2, 2),
            Workload::Rendezvous => (1, 1, 1, RENDEZVOUS_POSTED),
            Workload::Memory => (256, 4, 256, 4),
            Workload::Rtt | Workload::Conns | Workload::IdleMailboxes => (1, 1, 1, 1),
        };
        let room = match shape.capacity {
            0 => 1,
            UNBOUNDED => usize::MAX,
            capacity => capacity as usize,
        };
        let (send_batch, send_window) = fit(
            batch.unwrap_or(send_batch),
            batches.unwrap_or(send_window),
            room,
        );
        let answer_room = (MAX_ANSWER_BYTES / shape.size.max(1)).max(1);
        let receive_max = batch.unwrap_or(receive_max).min(answer_room);
        let receive_window = batches
            .unwrap_or(receive_window)
            .min((MAX_UNREAD_BYTES / (receive_max.max(1) * shape.size.max(1))).max(1));
        let (receive_max, receive_window) = match shape.capacity {
            // Receives posted ahead are the point of a rendezvous consumer.
            0 => (1, receive_window.max(1)),
            // One answer holds at most what the mailbox holds; how many
            // receives wait is not bounded by the capacity (a waiting
            // receive holds no message), and on workq it is what keeps a
            // consumer's turn while its process is off the CPU.
            _ => (receive_max.min(room), receive_window.max(1)),
        };
        Batching {
            send_batch,
            send_window,
            receive_max: u32::try_from(receive_max).unwrap_or(u32::MAX),
            receive_window,
        }
    }

    /// What the `note` field says about it.
    pub(super) fn describe(&self, workload: Workload) -> String {
        let receive = format!(
            "receive_stream max {} x {} in flight",
            self.receive_max, self.receive_window
        );
        match workload {
            Workload::Rendezvous => format!(
                "blocking send, one in flight; consumer keeps receives posted ahead ({receive})"
            ),
            _ => format!(
                "send_stream batches of {} x {} in flight; {receive}",
                self.send_batch, self.send_window
            ),
        }
    }
}

/// `batch` and `window` (each at least 1) cut so that `batch x window`
/// stays within `room` where it can.
fn fit(batch: usize, window: usize, room: usize) -> (usize, usize) {
    let batch = batch.clamp(1, room.max(1));
    let window = window.clamp(1, (room / batch).max(1));
    (batch, window)
}

/// The batching of `args`' workload.
pub(super) fn batching(args: &RoleArgs) -> Batching {
    let shape = Shape {
        producers: args.producers,
        consumers: args.consumers,
        messages: args.messages,
        warmup: args.warmup,
        size: args.size,
        capacity: args.capacity,
    };
    Batching::plan(args.workload, &shape, args.batch, args.batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(workload: Workload, batch: Option<usize>, batches: Option<usize>) -> Batching {
        Batching::plan(workload, &workload.shape(1.0), batch, batches)
    }

    #[test]
    fn batches_respect_the_spec() {
        for workload in Workload::ALL {
            let shape = workload.shape(1.0);
            for (batch, batches) in [(None, None), (Some(4096), Some(64)), (Some(1), Some(1))] {
                let plan = Batching::plan(workload, &shape, batch, batches);
                assert!(plan.send_batch >= 1 && plan.send_window >= 1, "{plan:?}");
                assert!(
                    plan.receive_max >= 1 && plan.receive_window >= 1,
                    "{plan:?}"
                );
                let in_flight = plan.send_batch * plan.send_window;
                match shape.capacity {
                    0 => {
                        assert_eq!(in_flight, 1, "{workload}: one send in flight");
                        assert_eq!(plan.receive_max, 1, "{workload}");
                    }
                    UNBOUNDED => {}
                    capacity => {
                        assert!(in_flight <= capacity as usize, "{workload}: {plan:?}");
                        // One answer holds no more than the mailbox can;
                        // how many receives wait is not the capacity's.
                        assert!(
                            plan.receive_max as usize <= capacity as usize,
                            "{workload}: {plan:?}"
                        );
                    }
                }
                let answer = plan.receive_max as usize * shape.size;
                assert!(answer <= MAX_ANSWER_BYTES, "{workload}: {plan:?}");
            }
        }
    }

    #[test]
    fn the_defaults_per_workload() {
        let stream = plan(Workload::Stream, None, None);
        assert_eq!((stream.send_batch, stream.send_window), (256, 4));
        assert_eq!((stream.receive_max, stream.receive_window), (256, 4));
        let workq = plan(Workload::Workq, None, None);
        assert!((32..=128).contains(&workq.receive_max), "{workq:?}");
        // Enough receives posted to keep each consumer's turn while its
        // process waits for a CPU (9 processes on 2 cores).
        assert!(workq.receive_window >= 16, "{workq:?}");
        let large = plan(Workload::Large, None, None);
        assert_eq!((large.send_batch, large.send_window), (1, 16));
        assert_eq!((large.receive_max, large.receive_window), (4, 4));
        // --size 16M: what posted receives may leave unread stays in the
        // broker's per-uid room.
        let shape = Shape {
            size: 16 << 20,
            ..Workload::Large.shape(1.0)
        };
        let huge = Batching::plan(Workload::Large, &shape, None, None);
        assert_eq!((huge.receive_max, huge.receive_window), (1, 2));
        let rendezvous = plan(Workload::Rendezvous, None, None);
        assert_eq!(
            (rendezvous.receive_max, rendezvous.receive_window),
            (1, RENDEZVOUS_POSTED)
        );
        // A receive stays posted while the other one is being answered.
        const { assert!(RENDEZVOUS_POSTED >= 2) };
        // Overrides apply to both sides, then are cut to fit.
        let big = plan(Workload::Stream, Some(4096), Some(8));
        assert_eq!((big.send_batch, big.send_window), (1024, 1));
        assert_eq!((big.receive_max, big.receive_window), (1024, 8));
        let large = plan(Workload::Large, Some(16), Some(16));
        assert_eq!((large.send_batch, large.send_window), (16, 1));
        assert_eq!(large.receive_max, 16);
        let posted = plan(Workload::Rendezvous, Some(64), Some(8));
        assert_eq!((posted.send_batch, posted.send_window), (1, 1));
        assert_eq!((posted.receive_max, posted.receive_window), (1, 8));
    }

    #[test]
    fn fitting_a_window_into_room() {
        assert_eq!(fit(256, 4, 1024), (256, 4));
        assert_eq!(fit(256, 8, 1024), (256, 4));
        assert_eq!(fit(2048, 2, 1024), (1024, 1));
        assert_eq!(fit(0, 0, 16), (1, 1));
        assert_eq!(fit(3, 9, 16), (3, 5));
        assert_eq!(fit(64, 64, usize::MAX), (64, 64));
    }
}

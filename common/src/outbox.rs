//! The outbox bookkeeping of the publisher, sans I/O: which stored message is in flight under which
//! MQTT packet id, how many may be in flight, and where to resume after a reconnect.
//!
//! The async shell (agent `publisher`) feeds it events and asks it questions; it never touches a
//! socket, a clock or the store:
//!
//! - [`Outbox::on_connected`] when the broker accepted the connection (CONNACK),
//! - [`Outbox::on_disconnected`] when the connection broke,
//! - [`Outbox::submitted_data`] / [`Outbox::submitted_other`] when the shell handed a QoS 1 publish
//!   to the MQTT client (in that order the client will send them),
//! - [`Outbox::on_outgoing`] when the client reports that a publish went out under a packet id,
//! - [`Outbox::on_puback`] when the broker acknowledged a packet id: returns the seq that may now be
//!   deleted from the store.
//!
//! Every reconnect resends every unacknowledged message from the store, from the oldest, in seq
//! order: the cursor goes back to 0 and the shell reads the store from the first key at or after it.
//! (rumqttc drops its own queue when the broker has no session; we never rely on it.)

use std::collections::{BTreeSet, HashMap, VecDeque};

/// What a submitted publish carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A data message of the store, by seq.
    Data(u64),
    /// Anything else (status, health, audit): acknowledged, but nothing to delete.
    Other,
}

/// An event the outbox did not expect: a sign that the client and the bookkeeping disagree.
/// The shell should treat it as a broken connection (reconnect, resend everything unacknowledged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The client reported an outgoing publish that was never submitted.
    #[error("the MQTT client sent a publish (packet id {0}) that the outbox did not submit")]
    UnexpectedOutgoing(u16),
}

/// Publisher bookkeeping for QoS 1 at-least-once delivery in seq order. See the module docs.
#[derive(Debug, Clone)]
pub struct Outbox {
    window: usize,
    connected: bool,
    /// The next data seq to look for in the store (the first stored key >= cursor).
    cursor: u64,
    /// Submitted to the client, not yet reported as sent: in submission order.
    submitted: VecDeque<Tag>,
    /// Sent under a packet id, waiting for PUBACK.
    inflight: HashMap<u16, Tag>,
    /// Data seqs submitted and not yet acknowledged (the window).
    unacked: BTreeSet<u64>,
    /// Data messages acknowledged since creation.
    acked_total: u64,
    /// Connections accepted since creation.
    connects: u64,
}

impl Outbox {
    /// A disconnected outbox allowing `window` (at least 1) unacknowledged data messages.
    pub fn new(window: usize) -> Outbox {
        Outbox {
            window: window.max(1),
            connected: false,
            cursor: 0,
            submitted: VecDeque::new(),
            inflight: HashMap::new(),
            unacked: BTreeSet::new(),
            acked_total: 0,
            connects: 0,
        }
    }

    /// The broker accepted a connection: start sending from the oldest stored message.
    pub fn on_connected(&mut self) {
        self.reset();
        self.connected = true;
        self.connects += 1;
    }

    /// The connection broke: nothing is in flight any more; everything unacknowledged goes again
    /// after the next [`Outbox::on_connected`].
    pub fn on_disconnected(&mut self) {
        self.reset();
        self.connected = false;
    }

    fn reset(&mut self) {
        self.cursor = 0;
        self.submitted.clear();
        self.inflight.clear();
        self.unacked.clear();
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// How many more data messages may be submitted now (0 when disconnected or the window is full).
    pub fn room(&self) -> usize {
        if self.connected {
            self.window.saturating_sub(self.unacked.len())
        } else {
            0
        }
    }

    /// The shell should submit the first stored seq >= this one next.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The shell handed data message `seq` to the client. Seqs must increase within a connection.
    pub fn submitted_data(&mut self, seq: u64) {
        self.submitted.push_back(Tag::Data(seq));
        self.unacked.insert(seq);
        self.cursor = self.cursor.max(seq.saturating_add(1));
    }

    /// The shell handed some other QoS 1 publish (status, health, audit) to the client.
    pub fn submitted_other(&mut self) {
        self.submitted.push_back(Tag::Other);
    }

    /// The client sent the oldest submitted publish under packet id `pkid`.
    pub fn on_outgoing(&mut self, pkid: u16) -> Result<Tag, OutboxError> {
        let tag = self
            .submitted
            .pop_front()
            .ok_or(OutboxError::UnexpectedOutgoing(pkid))?;
        self.inflight.insert(pkid, tag);
        Ok(tag)
    }

    /// The broker acknowledged `pkid`. Returns the tag it carried (`Tag::Data(seq)`: delete `seq`
    /// from the store now), or None for an ack the outbox does not know (stale, from an earlier
    /// connection: ignore it).
    pub fn on_puback(&mut self, pkid: u16) -> Option<Tag> {
        let tag = self.inflight.remove(&pkid)?;
        if let Tag::Data(seq) = tag {
            self.unacked.remove(&seq);
            self.acked_total += 1;
        }
        Some(tag)
    }

    /// Data messages submitted and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// Publishes submitted or sent and not yet acknowledged, data and other.
    pub fn pending(&self) -> usize {
        self.submitted.len() + self.inflight.len()
    }

    /// Data messages acknowledged since creation.
    pub fn acked_total(&self) -> u64 {
        self.acked_total
    }

    /// Connections accepted since creation.
    pub fn connects(&self) -> u64 {
        self.connects
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn window_bounds_submissions_and_acks_free_room() {
        let mut o = Outbox::new(2);
        assert_eq!(o.room(), 0, "nothing goes out before a connection");
        o.on_connected();
        assert_eq!(o.room(), 2);
        o.submitted_data(1);
        o.submitted_data(2);
        assert_eq!(o.room(), 0);
        assert_eq!(o.cursor(), 3);
        assert_eq!(o.on_outgoing(1), Ok(Tag::Data(1)));
        assert_eq!(o.on_outgoing(2), Ok(Tag::Data(2)));
        assert_eq!(o.on_puback(1), Some(Tag::Data(1)));
        assert_eq!(o.room(), 1);
        assert_eq!(o.on_puback(1), None, "a second ack of the same id is stale");
    }

    #[test]
    fn reconnect_resends_from_the_oldest() {
        let mut o = Outbox::new(10);
        o.on_connected();
        for s in 5..9 {
            o.submitted_data(s);
        }
        o.on_outgoing(1).unwrap();
        o.on_puback(1);
        o.on_disconnected();
        assert_eq!(o.room(), 0);
        assert_eq!(
            o.on_puback(2),
            None,
            "acks of a dead connection are ignored"
        );
        o.on_connected();
        assert_eq!(o.cursor(), 0, "resend from the first stored message");
        assert_eq!(o.unacked(), 0);
        assert_eq!(o.connects(), 2);
    }

    #[test]
    fn other_publishes_share_the_packet_ids_but_not_the_window() {
        let mut o = Outbox::new(1);
        o.on_connected();
        o.submitted_other();
        o.submitted_data(7);
        assert_eq!(o.on_outgoing(1), Ok(Tag::Other));
        assert_eq!(o.on_outgoing(2), Ok(Tag::Data(7)));
        assert_eq!(o.on_outgoing(3), Err(OutboxError::UnexpectedOutgoing(3)));
        assert_eq!(o.on_puback(2), Some(Tag::Data(7)));
        assert_eq!(o.on_puback(1), Some(Tag::Other));
        assert_eq!(o.pending(), 0);
    }

    /// A simulated store, client and broker: random acks, disconnects and new messages. Whatever
    /// happens, a message leaves the store only after its ack, every message is eventually delivered,
    /// and within one connection the broker sees seqs in increasing order.
    #[derive(Debug, Clone)]
    enum Step {
        Append(u8),
        Send,
        Ack,
        Drop,
        Connect,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (1u8..5).prop_map(Step::Append),
            4 => Just(Step::Send),
            4 => Just(Step::Ack),
            1 => Just(Step::Drop),
            1 => Just(Step::Connect),
        ]
    }

    proptest! {
        #[test]
        fn at_least_once_in_order_per_connection(steps in proptest::collection::vec(step(), 1..200), window in 1usize..6) {
            let mut o = Outbox::new(window);
            let mut store: BTreeMap<u64, ()> = BTreeMap::new();
            let mut next_seq = 1u64;
            let mut next_pkid = 1u16;
            // (pkid) sent on the wire, not yet acked, in order
            let mut wire: VecDeque<u16> = VecDeque::new();
            let mut delivered: BTreeSet<u64> = BTreeSet::new();
            let mut last_this_conn: Option<u64> = None;
            let mut online = false;
            let mut seq_of: HashMap<u16, u64> = HashMap::new();

            let run = |o: &mut Outbox, store: &BTreeMap<u64, ()>, next_pkid: &mut u16, wire: &mut VecDeque<u16>, seq_of: &mut HashMap<u16, u64>, delivered: &mut BTreeSet<u64>, last: &mut Option<u64>| {
                while o.room() > 0 {
                    let Some((&seq, _)) = store.range(o.cursor()..).next() else { break };
                    o.submitted_data(seq);
                    let pkid = *next_pkid;
                    *next_pkid = next_pkid.wrapping_add(1).max(1);
                    prop_assert_eq!(o.on_outgoing(pkid), Ok(Tag::Data(seq)));
                    if let Some(l) = *last { prop_assert!(seq > l, "seq {} after {} in one connection", seq, l); }
                    *last = Some(seq);
                    delivered.insert(seq);
                    wire.push_back(pkid);
                    seq_of.insert(pkid, seq);
                }
                Ok(())
            };

            for s in steps {
                match s {
                    Step::Append(n) => for _ in 0..n { store.insert(next_seq, ()); next_seq += 1; },
                    Step::Send => if online { run(&mut o, &store, &mut next_pkid, &mut wire, &mut seq_of, &mut delivered, &mut last_this_conn)?; },
                    Step::Ack => if let Some(pkid) = wire.pop_front() {
                        if let Some(Tag::Data(seq)) = o.on_puback(pkid) {
                            prop_assert_eq!(seq_of.get(&pkid).copied(), Some(seq));
                            prop_assert!(delivered.contains(&seq), "acked before delivered");
                            store.remove(&seq);
                        }
                    },
                    Step::Drop => { o.on_disconnected(); wire.clear(); online = false; }
                    Step::Connect => { if !online { o.on_connected(); online = true; last_this_conn = None; } }
                }
            }
            // Settle: connect and drain everything.
            if !online { o.on_connected(); }
            last_this_conn = None;
            for _ in 0..10_000 {
                run(&mut o, &store, &mut next_pkid, &mut wire, &mut seq_of, &mut delivered, &mut last_this_conn)?;
                let Some(pkid) = wire.pop_front() else { break };
                if let Some(Tag::Data(seq)) = o.on_puback(pkid) { store.remove(&seq); }
            }
            prop_assert!(store.is_empty(), "left in the store: {:?}", store.keys().collect::<Vec<_>>());
            prop_assert_eq!(delivered.len() as u64, next_seq - 1);
        }
    }
}

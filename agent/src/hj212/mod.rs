//! The HJ 212-2017 uplink to an environmental monitoring platform (`[hj212]`).
//!
//! Two parts, off the poll -> store -> MQTT path:
//! - the builder (a thread: sled calls block) reads the stored records from its cursor, as the
//!   live audit does, folds them into the interval statistics ([`stats`]) and, when an interval
//!   closes, builds its packet once (QN, Flag, frames) and stores it with the statistics and the
//!   cursor in one atomic batch ([`outbox`]); the main store keeps acknowledged records until that
//!   cursor passes them (`Store::set_uplink_gate`), so a crash anywhere loses nothing and builds
//!   nothing twice;
//! - the link ([`link`]) sends the stored packets in order over TCP and, with `ack`, re-sends the
//!   one in flight until the platform's CN 9014 with its QN arrives; it answers the platform's
//!   history requests from the stored intervals.
//!
//! Real-time data (CN 2011) is sent only while connected and is not stored (what a real-time
//! value is worth an hour later is what the minute and hour data say).

pub mod link;
pub mod outbox;
pub mod settings;
pub mod stats;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use plantmeter_common::hj212::data::{self, DataCn, FactorValues, Flag, Station};
use plantmeter_common::plan::Hj212Plan;
use plantmeter_common::{Clock, DataMessage, Plan};
use tokio::sync::{watch, Notify};

use crate::store::Store;
use outbox::{HistoryEntry, Outbox, Persisted, Queued};
use stats::{Closed, Setup, Stats};

/// Records read from the store at once.
const READ_CHUNK: usize = 512;
/// How often the builder looks for new records and due intervals (wall time).
const TICK: Duration = Duration::from_millis(100);
/// The statistics are persisted at least this often while records come in (wall time); a packet
/// is persisted at once.
const PERSIST_EVERY: Duration = Duration::from_secs(2);

/// What the uplink counts, for logs and status.
#[derive(Debug, Default)]
pub struct Counters {
    /// Packets written to the platform (re-sends included).
    pub sent: AtomicU64,
    /// Packets the platform acknowledged (CN 9014).
    pub acked: AtomicU64,
    pub connected: AtomicBool,
}

/// Shared between the builder and the link.
pub struct Shared {
    /// The config's `[hj212]`, with the platform's stored intervals applied at start.
    pub plan: Hj212Plan,
    /// ST, PW and MN; the PW changes with CN 1072.
    pub station: Mutex<Station>,
    /// The uplink's folder (`data_dir/hj212`): the platform's settings live there.
    pub dir: PathBuf,
    /// The platform's settings as stored (CN 1062, 1064).
    pub settings: Mutex<settings::Stored>,
    /// The real-time data interval (CN 2011), as the config or the platform (CN 1062) set it.
    pub rtd_interval: Mutex<Duration>,
    /// The minute data interval in minutes (0: none) the builder is to use (CN 1064).
    pub minute: AtomicU32,
    pub outbox: Outbox,
    pub counters: Counters,
    /// A packet was stored.
    pub queued: Notify,
    /// The latest values for real-time data.
    pub realtime: Mutex<Vec<FactorValues>>,
    pub clock: Clock,
    /// HJ 212-2025 with an SM4 key: how frames are encrypted on the wire.
    pub wire: Option<plantmeter_common::hj212::sm4::Wire>,
}

/// Real-time data every 30 s when the platform asks for it (CN 2011) and nothing else set it.
pub const DEFAULT_RTD_INTERVAL: Duration = Duration::from_secs(30);

impl Shared {
    /// ST, PW and MN as they are now.
    pub fn station(&self) -> Station {
        match self.station.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// `values` grouped by the ST their factor is sent under: the station's first (the pollutants),
    /// then ST 44 (分表计电: the facilities' electricity, HJ 212-2025) in packets of its own; groups
    /// without values are left out.
    pub fn by_st(&self, values: &[FactorValues]) -> Vec<(Station, Vec<FactorValues>)> {
        let station = self.station();
        let st_of = |code: &str| {
            self.plan
                .factors
                .iter()
                .find(|f| f.code == code)
                .and_then(|f| f.st)
        };
        let (own, facilities): (Vec<FactorValues>, Vec<FactorValues>) = values
            .iter()
            .cloned()
            .partition(|v| st_of(&v.code).is_none());
        let mut out = Vec::new();
        if !own.is_empty() {
            out.push((station.clone(), own));
        }
        if !facilities.is_empty() {
            out.push((
                Station {
                    st: "44".to_string(),
                    ..station
                },
                facilities,
            ));
        }
        out
    }

    /// The real-time data interval now.
    pub fn rtd_interval(&self) -> Duration {
        match self.rtd_interval.lock() {
            Ok(d) => *d,
            Err(p) => *p.into_inner(),
        }
    }

    /// The bytes of a stored (plain) frame on the wire: with `RF=1` when it is sent again (2025),
    /// its data region encrypted when the link has a key, and the current password when the
    /// platform changed it (CN 1072) after the packet was built (it would refuse the old one).
    pub fn wire_frame(&self, frame: &str, resent: bool) -> Result<Vec<u8>, String> {
        let pw = self.station().pw;
        let stale_pw = !frame.contains(&format!(";PW={pw};"));
        if self.plan.version != 2025 && !stale_pw {
            return Ok(frame.as_bytes().to_vec());
        }
        let seg = plantmeter_common::hj212::decode_frame(frame).map_err(|e| e.to_string())?;
        let mut seg = if resent && self.plan.version == 2025 && !seg.contains(";RF=1;") {
            seg.replacen(";CP=&&", ";RF=1;CP=&&", 1)
        } else {
            seg.to_string()
        };
        if stale_pw {
            let mut p = plantmeter_common::hj212::Packet::parse(&seg).map_err(|e| e.to_string())?;
            p.pw = pw;
            seg = p.data_segment().map_err(|e| e.to_string())?;
        }
        self.wire_segment(&seg)
    }

    /// A plain data segment as its frame's bytes (encrypted when the link has a key).
    pub fn wire_segment(&self, seg: &str) -> Result<Vec<u8>, String> {
        match &self.wire {
            Some(w) => w.encode(seg).map_err(|e| e.to_string()),
            None => plantmeter_common::hj212::encode_frame(seg)
                .map(String::into_bytes)
                .map_err(|e| e.to_string()),
        }
    }

    /// The `Flag` of this link's version.
    pub fn flag(&self, ack: bool) -> Flag {
        Flag::of(self.plan.version, ack)
    }
}

impl Shared {
    /// Packets waiting to be sent or acknowledged.
    pub fn waiting(&self) -> u64 {
        self.outbox.pending()
    }
}

/// What `plantmeter status` shows of the uplink (`data_dir/hj212/status.json`, rewritten every
/// 2 s while the agent runs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UplinkStatus {
    pub platform: String,
    pub connected: bool,
    /// Packets written since start (re-sends included) and acknowledged (CN 9014) since start.
    pub sent: u64,
    pub acked: u64,
    /// Packets waiting to be sent or acknowledged.
    pub waiting: u64,
    /// Wall ms of this status.
    pub updated_ms: i64,
    pub running: bool,
}

const STATUS_EVERY: Duration = Duration::from_secs(2);

impl Shared {
    fn status(&self, running: bool) -> UplinkStatus {
        UplinkStatus {
            platform: self.plan.address.clone(),
            connected: running
                && self
                    .counters
                    .connected
                    .load(std::sync::atomic::Ordering::Acquire),
            sent: self
                .counters
                .sent
                .load(std::sync::atomic::Ordering::Relaxed),
            acked: self
                .counters
                .acked
                .load(std::sync::atomic::Ordering::Relaxed),
            waiting: self.waiting(),
            updated_ms: plantmeter_common::clock::system_ms(),
            running,
        }
    }
}

fn write_status(dir: &std::path::Path, s: &UplinkStatus) {
    let written = serde_json::to_vec(s)
        .map_err(std::io::Error::other)
        .and_then(|b| crate::state::write_status_bytes(dir, &b));
    if let Err(e) = written {
        tracing::debug!(error = %e, "cannot write the HJ 212 status file");
    }
}

/// The uplink's last status, if the agent wrote one.
pub fn read_status(plan: &Plan) -> Option<UplinkStatus> {
    let bytes = std::fs::read(dir(plan).join(crate::state::STATUS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One line for `plantmeter status`.
pub fn status_line(plan: &Plan) -> Option<String> {
    plan.hj212.as_ref()?;
    Some(match read_status(plan) {
        None => "hj212     no status yet (the uplink has not run)\n".to_string(),
        Some(s) => format!(
            "hj212     platform {}: {}, {} packets waiting, {} sent and {} acknowledged{}\n",
            s.platform,
            if s.connected {
                "connected"
            } else {
                "not connected"
            },
            s.waiting,
            s.sent,
            s.acked,
            if s.running {
                " since the agent started"
            } else {
                " in the last run"
            }
        ),
    })
}

/// The folder of the uplink's database.
pub fn dir(plan: &Plan) -> PathBuf {
    plan.gateway.data_dir.join("hj212")
}

/// The running uplink.
pub struct Uplink {
    pub shared: Arc<Shared>,
    dir: PathBuf,
    builder: Option<std::thread::JoinHandle<()>>,
    link: Option<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Uplink {
    /// Stop both parts; the builder persists what it took in.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(l) = self.link.take() {
            let _ = l.await;
        }
        if let Some(b) = self.builder.take() {
            let _ = tokio::task::spawn_blocking(move || b.join()).await;
        }
        let _ = self.shared.outbox.flush();
        write_status(&self.dir, &self.shared.status(false));
    }
}

/// Start the uplink of `plan` (None without `[hj212]`). Call it before anything is published: from
/// here on the store keeps acknowledged records until the uplink has taken them in.
pub fn start(plan: &Plan, store: Arc<Store>, clock: Clock) -> anyhow::Result<Option<Uplink>> {
    let Some(h) = plan.hj212.clone() else {
        store.set_uplink_gate(None);
        return Ok(None);
    };
    // A password file that cannot serve is bad input (exit 2), as `check` says.
    let pw = plantmeter_common::config::files::read_hj212_password(&h).map_err(|e| {
        anyhow::Error::new(crate::exit::BadInput(format!(
            "{}: {e}",
            plan.source.display()
        )))
    })?;
    let outbox = Outbox::open(&dir(plan))?;
    let fresh = || Persisted {
        cursor: store.durable_next(),
        ..Default::default()
    };
    let persisted = match outbox.load() {
        Ok(Some(p)) => p,
        // A new uplink starts with what is polled from now on.
        Ok(None) => fresh(),
        // The waiting packets are kept; the open intervals are lost (logged), polling goes on.
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), dir = %dir(plan).display(), "HJ 212: the uplink's state is unreadable; starting over from the readings stored from now on");
            let mut p = fresh();
            p.next_id = outbox.last_id()?.map_or(0, |id| id + 1);
            p
        }
    };
    store.set_uplink_gate(Some(persisted.cursor));
    let wire = match &h.sm4_key_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::Error::new(crate::exit::BadInput(format!(
                    "{}: hj212.sm4_key_file {}: {e}",
                    plan.source.display(),
                    path.display()
                )))
            })?;
            let key = plantmeter_common::hj212::sm4::Key::parse(&text).map_err(|e| {
                anyhow::Error::new(crate::exit::BadInput(format!(
                    "{}: hj212.sm4_key_file {}: {e}",
                    plan.source.display(),
                    path.display()
                )))
            })?;
            Some(plantmeter_common::hj212::sm4::Wire {
                key,
                form: h.sm4_form,
                length: h.sm4_length,
            })
        }
    };
    let station = Station {
        st: format!("{:02}", h.st),
        pw,
        mn: h.mn.clone(),
    };
    let stored = settings::Stored::load(&dir(plan), &h);
    let mut h = h;
    stored.apply(&mut h);
    if stored.rtd_interval_s.is_some() || stored.min_interval_min.is_some() {
        tracing::info!(minute = h.minute, rtd_interval_s = ?stored.rtd_interval_s, "HJ 212: intervals as the platform set them (CN 1062/1064)");
    }
    let rtd = stored
        .rtd_interval_s
        .map(|s| Duration::from_secs(u64::from(s)))
        .or(h.realtime)
        .unwrap_or(DEFAULT_RTD_INTERVAL);
    let mut setup = Setup::new(plan, &h);
    setup.started_ms = clock.now_ms();
    let shared = Arc::new(Shared {
        minute: AtomicU32::new(h.minute),
        plan: h,
        station: Mutex::new(station),
        dir: dir(plan),
        settings: Mutex::new(stored),
        rtd_interval: Mutex::new(rtd),
        outbox,
        counters: Counters::default(),
        queued: Notify::new(),
        realtime: Mutex::new(Vec::new()),
        clock,
        wire,
    });
    tracing::info!(
        platform = %shared.plan.address,
        waiting = shared.waiting(),
        from_seq = persisted.cursor,
        "HJ 212 uplink started"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = {
        let (shared, store, stop) = (shared.clone(), store.clone(), stop_rx.clone());
        let mut b = Builder {
            stats: Stats::new(setup, persisted.stats.clone()),
            persisted,
            shared,
            store,
            dirty: false,
            last_persist: Instant::now(),
            unsaved: Default::default(),
        };
        std::thread::Builder::new()
            .name("hj212-builder".into())
            .spawn(move || b.run(stop))
            .context("cannot start the HJ 212 builder thread")?
    };
    let link = tokio::spawn(link::run(shared.clone(), stop_rx.clone()));
    {
        let (shared, dir, mut stop) = (shared.clone(), dir(plan), stop_rx);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATUS_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => write_status(&dir, &shared.status(true)),
                    _ = stop.changed() => return,
                }
            }
        });
    }
    Ok(Some(Uplink {
        shared,
        dir: dir(plan),
        builder: Some(builder),
        link: Some(link),
        stop: stop_tx,
    }))
}

struct Builder {
    stats: Stats,
    persisted: Persisted,
    shared: Arc<Shared>,
    store: Arc<Store>,
    /// Records taken in since the last persist.
    dirty: bool,
    last_persist: Instant,
    /// Packets built but not persisted yet (a failed commit): written with the next one.
    unsaved: (Vec<Queued>, Vec<(DataCn, HistoryEntry)>),
}

impl Builder {
    fn run(&mut self, stop: watch::Receiver<bool>) {
        loop {
            let more = self.step();
            if *stop.borrow() {
                break;
            }
            if !more {
                std::thread::sleep(TICK);
            }
        }
        // Take in what is durable, then persist (intervals not due stay open for the next run).
        while self.step() {}
        self.persist(Vec::new(), Vec::new());
    }

    /// Take in a chunk of records and close what is due; true when more records wait.
    fn step(&mut self) -> bool {
        let records = match self.store.read_for_audit(self.persisted.cursor, READ_CHUNK) {
            Ok(r) => r,
            // The store is unusable for now: the writer reopens it.
            Err(_) => return false,
        };
        let more = records.len() == READ_CHUNK;
        let carried = self.stats.state.carried;
        for (seq, payload) in &records {
            match serde_json::from_slice::<DataMessage>(payload) {
                Ok(m) => self.stats.ingest(&m),
                Err(e) => {
                    tracing::warn!(seq, error = %e, "HJ 212: a stored record is not a data message; left out")
                }
            }
            self.persisted.cursor = seq + 1;
            self.dirty = true;
        }
        // While catching up, only intervals every meter has passed close (not the time fallback).
        let now = if more {
            i64::MIN / 2
        } else {
            self.shared.clock.now_ms()
        };
        let mut closed = self.minute_change();
        closed.extend(self.stats.close_due(now));
        if self.stats.state.carried > carried {
            tracing::warn!(
                shares = self.stats.state.carried - carried,
                "HJ 212: a counter's increase spans intervals already sent (a meter silent past close_after); their shares went to the first open interval"
            );
        }
        if let Ok(mut rt) = self.shared.realtime.lock() {
            *rt = self.stats.realtime();
        }
        if !closed.is_empty() || !self.unsaved.0.is_empty() {
            let (packets, history) = self.build(&closed);
            self.persist(packets, history);
            self.shared.queued.notify_one();
        } else if self.dirty && self.last_persist.elapsed() >= PERSIST_EVERY {
            self.persist(Vec::new(), Vec::new());
        }
        more
    }

    /// The minute intervals the platform set (CN 1064), or that changed since the state was
    /// persisted: the open ones close as they are ([`Stats::set_minute`]).
    fn minute_change(&mut self) -> Vec<Closed> {
        let want = self
            .shared
            .minute
            .load(std::sync::atomic::Ordering::Acquire);
        let want_ms = i64::from(want) * 60_000;
        if want == 0
            || (self.stats.minute_ms() == Some(want_ms)
                && self.stats.state.minute_ms == Some(want_ms))
        {
            return Vec::new();
        }
        let before = self.stats.state.minute_ms;
        let closed = self.stats.set_minute(want_ms);
        if before.is_some_and(|b| b != want_ms) {
            tracing::info!(minutes = want, cut_short = closed.len(), "HJ 212: minute data every {want} minutes from the next boundary; the minute intervals open at the change were sent as they were");
        }
        self.dirty = true;
        closed
    }

    /// The packets of closed intervals, each with a new QN and its frames.
    fn build(&mut self, closed: &[Closed]) -> (Vec<Queued>, Vec<(DataCn, HistoryEntry)>) {
        let h = &self.shared.plan;
        let mut packets = Vec::new();
        let mut history = Vec::new();
        for c in closed {
            let qn_ms = self
                .shared
                .clock
                .now_ms()
                .max(self.persisted.last_qn_ms + 1);
            self.persisted.last_qn_ms = qn_ms;
            for (gi, (station, values)) in self.shared.by_st(&c.values).into_iter().enumerate() {
                // Each packet its own QN (the ST 44 one follows the pollutants' by a millisecond).
                let qn_ms = if gi == 0 {
                    qn_ms
                } else {
                    let next = self.persisted.last_qn_ms + 1;
                    self.persisted.last_qn_ms = next;
                    next
                };
                let qn = data::qn(qn_ms, h.timezone);
                let p = data::data_packet(
                    &station,
                    c.cn,
                    &qn,
                    Flag::of(h.version, h.ack),
                    &data::data_time(c.start_ms, h.timezone),
                    &values,
                );
                // History requests (CN 2xxx with BeginTime/EndTime) are answered from the station's own
                // packets; a facility's (ST 44) are sent live only.
                if station.st == self.shared.station().st {
                    history.push((
                        c.cn,
                        HistoryEntry {
                            start_ms: c.start_ms,
                            cp: p.cp.clone(),
                        },
                    ));
                }
                let frames: Result<Vec<String>, _> = data::split_for(&p, h.version)
                    .and_then(|parts| parts.iter().map(|q| q.encode()).collect());
                match frames {
                    Ok(frames) => {
                        let id = self.persisted.next_id;
                        self.persisted.next_id += 1;
                        packets.push(Queued {
                            id,
                            cn: c.cn.code().to_string(),
                            start_ms: c.start_ms,
                            qn,
                            frames,
                        });
                    }
                    Err(e) => tracing::error!(
                        cn = c.cn.code(),
                        data_time = %data::data_time(c.start_ms, h.timezone),
                        error = %e,
                        "HJ 212: cannot build the packet of an interval; not sent"
                    ),
                }
            }
        }
        (packets, history)
    }

    fn persist(&mut self, packets: Vec<Queued>, history: Vec<(DataCn, HistoryEntry)>) {
        self.persisted.stats = self.stats.state.clone();
        self.unsaved.0.extend(packets);
        self.unsaved.1.extend(history);
        match self.shared.outbox.commit(
            &mut self.persisted,
            &self.unsaved.0,
            &self.unsaved.1,
            self.shared.clock.now_ms(),
        ) {
            Ok(dropped) => {
                if dropped > 0 {
                    tracing::error!(
                        platform = %self.shared.plan.address,
                        dropped,
                        max = outbox::MAX_PENDING,
                        "HJ 212: too many packets waiting for the platform; the oldest were dropped"
                    );
                }
                self.store.set_uplink_gate(Some(self.persisted.cursor));
                self.unsaved = Default::default();
                self.dirty = false;
                self.last_persist = Instant::now();
            }
            Err(e) => {
                // Not persisted: the store keeps the records; the next persist writes all of it.
                tracing::error!(error = %format!("{e:#}"), "HJ 212: cannot persist the uplink's state")
            }
        }
    }
}

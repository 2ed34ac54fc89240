//! Connection slots of the HTTP server: a cap on all connections, a cap per peer, and, when a
//! new connection finds no free slot, eviction of the connection that has waited longest for a
//! request head.
//!
//! Why evict rather than refuse the newcomer: a connection that sent half a request head and
//! stalled holds its slot until the header timeout. Refusing new connections while such
//! connections hold every slot lets anyone who can open a few dozen sockets take `/healthz`
//! down — under Kubernetes, a restart loop. nginx answers the same problem the same way: a
//! connection waiting for a request is "reusable", and when `worker_connections` run out it
//! closes the reusable connections that have waited longest (`ngx_drain_connections`). A
//! connection that is waiting costs the client nothing to re-open, so closing the stalest one
//! loses nothing a legitimate client needs, and a fresh connection — a probe that sends its
//! request as it connects — is served.
//!
//! Which connection gives way: never one answering a request. First those that sent part of a
//! request head and went quiet — the shape of a slowloris flood — longest waiting first; only
//! then those that have sent nothing yet (just accepted, or kept alive between requests),
//! longest waiting first. The second rule matters when a client's request reaches the server a
//! moment after its connection does (the client was descheduled, the network is slow): a
//! flood of stalled connections then never pushes it out, however fast it arrives. A flood of
//! connections that send nothing at all competes with such a client by age alone.
//!
//! Why a cap per peer as well: a peer at its cap evicts only its own connections, so a flood
//! from one address churns its own slots and never closes another peer's. IPv6 peers are
//! counted by /64, the prefix one host is usually given. Peers behind one proxy share a cap;
//! eviction still serves each of their fresh connections.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// What a cap applies to: an IPv4 address (IPv4-mapped IPv6 included) or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer(IpAddr);

impl Peer {
    pub fn of(ip: IpAddr) -> Peer {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Peer(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
            }
            v4 => Peer(v4),
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// What one connection is doing, as the accept loop sees it.
#[derive(Debug, Default)]
struct Activity {
    /// Requests being answered (HTTP/1.1 without pipelining: 0 or 1).
    in_flight: AtomicU32,
    /// Bytes have been read since the connection began waiting for a request head: part of a
    /// head arrived, the rest has not.
    partial: AtomicBool,
    /// When it last began waiting for a request head (accepted, or its last response sent), on
    /// the slots' own clock: a counter, so the order is exact.
    waiting_since: AtomicU64,
}

struct Entry {
    peer: Peer,
    activity: Arc<Activity>,
    evict: Option<oneshot::Sender<()>>,
}

/// The slots of one listener.
#[derive(Debug)]
pub struct Slots {
    max_total: usize,
    max_per_peer: usize,
    conns: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
    tick: AtomicU64,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("peer", &self.peer).field("activity", &self.activity).finish()
    }
}

/// What admitting a connection did.
#[derive(Debug)]
pub enum Admission {
    /// A free slot.
    Free(Slot),
    /// The slot of a connection that was waiting for a request head, from this peer or (when
    /// the listener is full) from the peer holding the most connections; it is being closed.
    Evicted { slot: Slot, from: Peer },
    /// Every connection that could give way is answering a request: close the new one.
    Refused,
}

/// A connection's slot: given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    activity: Arc<Activity>,
    /// Resolves when the connection is evicted.
    pub evicted: oneshot::Receiver<()>,
}

/// Held while a request is being answered (until its response body is sent or dropped).
#[derive(Debug)]
pub struct Busy {
    slots: Arc<Slots>,
    activity: Arc<Activity>,
}

impl Slots {
    pub fn new(max_total: usize, max_per_peer: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max_total: max_total.max(1),
            max_per_peer: max_per_peer.max(1),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            tick: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// Finds a slot for a new connection from `ip`, evicting a waiting connection if need be.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Admission {
        let peer = Peer::of(ip);
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let mut per_peer: HashMap<Peer, usize> = HashMap::new();
        for e in conns.values() {
            *per_peer.entry(e.peer).or_default() += 1;
        }
        // At its own cap a peer gives way itself; otherwise, when the listener is full, the
        // heaviest peer does.
        let scope = if per_peer.get(&peer).copied().unwrap_or(0) >= self.max_per_peer {
            Some(peer)
        } else if conns.len() >= self.max_total {
            None
        } else {
            return Admission::Free(self.insert(&mut conns, peer));
        };
        let victim = conns
            .iter()
            .filter(|(_, e)| scope.is_none_or(|p| e.peer == p) && e.activity.in_flight.load(Ordering::SeqCst) == 0)
            .min_by_key(|(id, e)| {
                let heaviest_first = std::cmp::Reverse(per_peer.get(&e.peer).copied().unwrap_or(0));
                let stalled_first = !e.activity.partial.load(Ordering::SeqCst);
                (heaviest_first, stalled_first, e.activity.waiting_since.load(Ordering::SeqCst), **id)
            })
            .map(|(id, _)| *id);
        let Some(victim) = victim else { return Admission::Refused };
        let Some(mut gone) = conns.remove(&victim) else { return Admission::Refused };
        if let Some(tx) = gone.evict.take() {
            let _ = tx.send(());
        }
        Admission::Evicted { slot: self.insert(&mut conns, peer), from: gone.peer }
    }

    fn insert(self: &Arc<Self>, conns: &mut HashMap<u64, Entry>, peer: Peer) -> Slot {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity { waiting_since: AtomicU64::new(self.now()), ..Activity::default() });
        let (tx, rx) = oneshot::channel();
        conns.insert(id, Entry { peer, activity: Arc::clone(&activity), evict: Some(tx) });
        Slot { slots: Arc::clone(self), id, activity, evicted: rx }
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Slot {
    /// Whether a request is being answered.
    pub fn is_busy(&self) -> bool {
        self.activity.in_flight.load(Ordering::SeqCst) > 0
    }

    /// Wraps the connection's stream so that reads tell the slots part of a head has arrived.
    pub fn watch<T>(&self, io: T) -> Watched<T> {
        Watched { io, activity: Arc::clone(&self.activity) }
    }

    /// A handle that can mark the connection busy from the request handler.
    pub fn tracker(&self) -> Tracker {
        Tracker { slots: Arc::clone(&self.slots), activity: Arc::clone(&self.activity) }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

/// Marks a connection busy from inside its request handler.
#[derive(Debug, Clone)]
pub struct Tracker {
    slots: Arc<Slots>,
    activity: Arc<Activity>,
}

impl Tracker {
    /// A request head arrived: the connection cannot be evicted until the guard drops.
    pub fn busy(&self) -> Busy {
        self.activity.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy { slots: Arc::clone(&self.slots), activity: Arc::clone(&self.activity) }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // Waiting again from now: the next request head, on a kept-alive connection.
        self.activity.partial.store(false, Ordering::SeqCst);
        self.activity.waiting_since.store(self.slots.now(), Ordering::SeqCst);
        self.activity.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's stream that notes when bytes arrive (see [`Slot::watch`]).
#[derive(Debug)]
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before && self.activity.in_flight.load(Ordering::SeqCst) == 0 {
            self.activity.partial.store(true, Ordering::SeqCst);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn slot(a: Admission) -> Slot {
        match a {
            Admission::Free(s) | Admission::Evicted { slot: s, .. } => s,
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn a_peer_at_its_cap_evicts_its_own_longest_waiting_connection() {
        let slots = Slots::new(8, 3);
        let mut a: Vec<Slot> = (0..3).map(|_| slot(slots.admit(ip("10.0.0.1")))).collect();
        let b = slot(slots.admit(ip("10.0.0.2")));
        // The oldest is answering a request: the second oldest gives way.
        let busy = a[0].tracker().busy();
        let Admission::Evicted { slot: a4, from } = slots.admit(ip("10.0.0.1")) else { panic!("no eviction") };
        assert_eq!(from, Peer::of(ip("10.0.0.1")));
        assert!(a[1].evicted.try_recv().is_ok(), "the longest-waiting idle connection is evicted");
        assert!(a[0].evicted.try_recv().is_err() && a[2].evicted.try_recv().is_err());
        assert_eq!(slots.held(), 4, "10.0.0.2 untouched");
        drop(b);
        // Once answered, the first connection waits again, newest of all: a[2] goes next.
        drop(busy);
        a.push(a4);
        assert!(matches!(slots.admit(ip("10.0.0.1")), Admission::Evicted { .. }));
        assert!(a[2].evicted.try_recv().is_ok(), "a[2] has waited longest now");
        assert!(a[0].evicted.try_recv().is_err());
    }

    #[tokio::test]
    async fn connections_that_sent_part_of_a_head_give_way_before_silent_ones() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let slots = Slots::new(8, 2);
        let mut silent = slot(slots.admit(ip("10.0.0.1")));
        let mut stalled = slot(slots.admit(ip("10.0.0.1")));
        let (mut client, server) = tokio::io::duplex(64);
        let mut watched = stalled.watch(server);
        client.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(watched.read(&mut buf).await.unwrap() > 0);
        let _new = slot(slots.admit(ip("10.0.0.1")));
        assert!(stalled.evicted.try_recv().is_ok(), "the stalled connection goes first, though newer");
        assert!(silent.evicted.try_recv().is_err());
    }

    #[test]
    fn connections_answering_a_request_are_never_evicted() {
        let slots = Slots::new(8, 2);
        let (one, two) = (slot(slots.admit(ip("10.0.0.1"))), slot(slots.admit(ip("10.0.0.1"))));
        let _busy = (one.tracker().busy(), two.tracker().busy());
        assert!(matches!(slots.admit(ip("10.0.0.1")), Admission::Refused), "every slot of the peer is answering a request");
        assert!(matches!(slots.admit(ip("10.0.0.2")), Admission::Free(_)), "another peer is not affected");
    }

    #[test]
    fn a_full_listener_takes_from_the_heaviest_peer() {
        let slots = Slots::new(4, 3);
        let light = slot(slots.admit(ip("10.0.0.2")));
        let mut heavy: Vec<Slot> = (0..3).map(|_| slot(slots.admit(ip("10.0.0.1")))).collect();
        let Admission::Evicted { from, .. } = slots.admit(ip("10.0.0.3")) else { panic!("no eviction") };
        assert_eq!(from, Peer::of(ip("10.0.0.1")), "not the light peer, though its connection is older");
        assert!(heavy[0].evicted.try_recv().is_ok());
        drop(light);
    }

    #[test]
    fn ipv6_peers_are_counted_by_slash_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(Peer::of(ip("2001:db8:1:2::1")), Peer::of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(Peer::of(ip("2001:db8:1:2::1")), Peer::of(ip("2001:db8:1:3::1")));
        assert_eq!(Peer::of(ip("::ffff:127.0.0.1")), Peer::of(ip("127.0.0.1")));
        assert_eq!(Peer::of(ip("2001:db8:1:2::1")).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let slots = Slots::new(1, 1);
        let s = slot(slots.admit(ip("10.0.0.1")));
        let busy = s.tracker().busy();
        assert!(matches!(slots.admit(ip("10.0.0.2")), Admission::Refused));
        drop(busy);
        drop(s);
        assert!(matches!(slots.admit(ip("10.0.0.2")), Admission::Free(_)));
    }
}

//! One trace over Linux's unprivileged ICMP ("ping") sockets, as iputils `ping` and
//! `tracepath` use them: for a process without `CAP_NET_RAW` whose group the sysctl
//! `net.ipv4.ping_group_range` allows (it governs IPv4 and IPv6). ICMP only.
//!
//! One `SOCK_DGRAM`/`IPPROTO_ICMP` (`IPPROTO_ICMPV6`) socket per trace: the kernel sets
//! each echo request's identifier to the socket's own and hands a socket only the
//! answers to it, so concurrent traces never see each other's. A round sends an echo
//! request at every TTL from 1 up (`IP_TTL`, `IPV6_UNICAST_HOPS`); its sequence number
//! names the round and the TTL. The destination's echo reply arrives on the socket; a
//! router's time exceeded or unreachable arrives on its error queue (`IP_RECVERR`,
//! `recvmsg` with `MSG_ERRQUEUE`): the router's address in the control message, the
//! echo request it answers as the data. Rounds are timed as trippy-core's are, and what
//! each TTL saw is the same [`Hop`], so the path is made from it the same way.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    self, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrStorage, sockopt,
};

use crate::error::ProbeError;
use crate::options::{ProbeOptions, Protocol};
use crate::trace::Hop;

/// TTLs tried past the lowest one the destination answered at: an answer of the
/// destination lost at that TTL is then found at the next, and the round need not wait
/// out its timeout.
const PAST_TARGET: u8 = 2;

/// How often a send is tried again after the socket reported an earlier ICMP error.
const SEND_TRIES: usize = 8;

/// The echo request's data after its 8-byte header.
const PAYLOAD: &[u8; 24] = b"telltale path probe 0123";

/// Whether this process may open an unprivileged ICMP socket.
pub(crate) fn available() -> bool {
    Family::V4.open().is_ok()
}

/// Traces `addr` (the resolved `target`) in `opts.echoes` rounds and returns every TTL
/// tried, as trippy-core's trace does.
pub(crate) fn trace(
    target: &str,
    addr: IpAddr,
    opts: &ProbeOptions,
) -> Result<Vec<Hop>, ProbeError> {
    if opts.protocol != Protocol::Icmp {
        return Err(ProbeError::no_privilege(
            &[target.to_owned()],
            opts.protocol,
        ));
    }
    let family = Family::of(addr);
    let sock = PingSocket::open(family).map_err(|e| open_error(target, family, e))?;
    let dest = SockaddrStorage::from(SocketAddr::new(addr, 0));
    let timing = Timing::of(opts);
    let max_ttl = opts.max_ttl.max(1);
    let mut tally = Tally::new(addr);
    let mut limit = max_ttl;
    for number in 0..opts.echoes.max(1) {
        let mut round = Round::new(number, Instant::now());
        for ttl in 1..=limit {
            let seq = sequence(number, ttl);
            let at = Instant::now();
            sock.send(&dest, ttl, seq).map_err(|e| ProbeError::Trace {
                target: target.to_owned(),
                reason: format!(
                    "sending an ICMP echo request (TTL {ttl}) on an unprivileged ICMP \
                         socket: {e}"
                ),
            })?;
            round.sent(ttl, seq, at);
            tally.sent(ttl);
            // Answers read as soon as they come: their time is not held back by the sends.
            collect(&sock, &mut round, &mut tally);
        }
        while let Some(wait) = round.wait(Instant::now(), &timing) {
            sock.wait(wait);
            collect(&sock, &mut round, &mut tally);
        }
        limit = next_limit(tally.target_ttl(), round.target_after.is_some(), max_ttl);
    }
    Ok(tally.hops())
}

/// Reads every answer waiting on the socket into the round and the tally.
fn collect(sock: &PingSocket, round: &mut Round, tally: &mut Tally) {
    let target = tally.target;
    sock.drain(|seq, from, at| {
        if let Some((ttl, rtt)) = round.answer(seq, from == target, at) {
            tally.answered(ttl, from, rtt);
        }
    });
}

/// Why the socket did not open: not allowed (the error naming both fixes), or another
/// reason.
fn open_error(target: &str, family: Family, e: Errno) -> ProbeError {
    match e {
        Errno::EACCES | Errno::EPERM => {
            ProbeError::no_privilege(&[target.to_owned()], Protocol::Icmp)
        }
        Errno::EAFNOSUPPORT | Errno::EPROTONOSUPPORT if family == Family::V6 => ProbeError::Trace {
            target: target.to_owned(),
            reason: format!("this host has no IPv6 ICMP sockets: {e}"),
        },
        e => ProbeError::Trace {
            target: target.to_owned(),
            reason: format!("opening an unprivileged ICMP socket: {e}"),
        },
    }
}

/// IPv4 or IPv6: the socket, the options and the ICMP types differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    fn echo_request(self) -> u8 {
        match self {
            Self::V4 => 8,
            Self::V6 => 128,
        }
    }

    fn echo_reply(self) -> u8 {
        match self {
            Self::V4 => 0,
            Self::V6 => 129,
        }
    }

    /// Whether an error from the error queue (its origin and ICMP type) is a router's
    /// answer to a probe: time exceeded, or destination unreachable (a router answering
    /// for a target it cannot reach). Local errors are not.
    fn is_hop_answer(self, origin: u8, icmp_type: u8) -> bool {
        match self {
            // Time exceeded 11, destination unreachable 3.
            Self::V4 => origin == libc::SO_EE_ORIGIN_ICMP && matches!(icmp_type, 11 | 3),
            // Time exceeded 3, destination unreachable 1.
            Self::V6 => origin == libc::SO_EE_ORIGIN_ICMP6 && matches!(icmp_type, 3 | 1),
        }
    }

    fn open(self) -> nix::Result<OwnedFd> {
        let (domain, protocol) = match self {
            Self::V4 => (AddressFamily::Inet, SockProtocol::Icmp),
            Self::V6 => (AddressFamily::Inet6, SockProtocol::IcmpV6),
        };
        socket::socket(
            domain,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            protocol,
        )
    }
}

/// The sequence number of the probe at `ttl` in round `round`: the round's low byte
/// above the TTL. An answer is only matched to a probe of the round still waiting, so a
/// round number that wrapped never names an old probe.
fn sequence(round: usize, ttl: u8) -> u16 {
    (((round % 256) as u16) << 8) | u16::from(ttl)
}

/// An echo request with this sequence number: type, code, checksum, identifier,
/// sequence, data. The kernel fills in the checksum and the identifier.
fn echo_request(family: Family, seq: u16) -> Vec<u8> {
    let mut packet = vec![family.echo_request(), 0, 0, 0, 0, 0];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(PAYLOAD);
    packet
}

/// The sequence number of `data` (an ICMP message from its header on) if it is an echo
/// message of type `icmp_type`.
fn echo_sequence(data: &[u8], icmp_type: u8) -> Option<u16> {
    match data {
        [t, 0, _, _, _, _, s0, s1, ..] if *t == icmp_type => Some(u16::from_be_bytes([*s0, *s1])),
        _ => None,
    }
}

/// The highest TTL the next round tries: a few past the lowest TTL the destination
/// answered at, once it has and while it answers every round; else every TTL up to the
/// maximum (a route that got longer is found again).
fn next_limit(target_ttl: Option<u8>, answered_this_round: bool, max_ttl: u8) -> u8 {
    match target_ttl {
        Some(t) if answered_this_round => t.saturating_add(PAST_TARGET).min(max_ttl),
        _ => max_ttl,
    }
}

/// How long a round lasts, as trippy-core's are timed from the same options.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// The shortest round (the pace of the echoes).
    min: Duration,
    /// The longest round: waiting for answers that do not come.
    max: Duration,
    /// How long a round waits for other answers after the destination's.
    grace: Duration,
}

impl Timing {
    fn of(opts: &ProbeOptions) -> Self {
        Self {
            min: opts.round_interval,
            max: opts.round_interval.max(opts.round_timeout),
            grace: Duration::from_millis(100).min(opts.round_timeout),
        }
    }
}

/// One round: its probes still waiting for an answer, and when the destination first
/// answered.
#[derive(Debug)]
struct Round {
    number: usize,
    started: Instant,
    /// By sequence number: the TTL and the send time.
    waiting: HashMap<u16, (u8, Instant)>,
    /// How long after the round's start the destination first answered.
    target_after: Option<Duration>,
}

impl Round {
    fn new(number: usize, started: Instant) -> Self {
        Self {
            number,
            started,
            waiting: HashMap::new(),
            target_after: None,
        }
    }

    fn sent(&mut self, ttl: u8, seq: u16, at: Instant) {
        debug_assert_eq!(seq, sequence(self.number, ttl));
        self.waiting.insert(seq, (ttl, at));
    }

    /// The TTL and round-trip time of the probe that `seq` answers, once: an answer to no
    /// waiting probe (a duplicate, one too late for its round) is `None`.
    fn answer(&mut self, seq: u16, from_target: bool, at: Instant) -> Option<(u8, Duration)> {
        let (ttl, sent) = self.waiting.remove(&seq)?;
        if from_target && self.target_after.is_none() {
            self.target_after = Some(at.saturating_duration_since(self.started));
        }
        Some((ttl, at.saturating_duration_since(sent)))
    }

    /// How much longer the round waits for answers, `None` when it is over. It lasts at
    /// least `min`; it is done when every probe was answered, or `grace` after the
    /// destination answered; and it lasts at most `max`.
    fn wait(&self, now: Instant, timing: &Timing) -> Option<Duration> {
        let end = if self.waiting.is_empty() {
            timing.min
        } else if let Some(after) = self.target_after {
            (after + timing.grace).clamp(timing.min, timing.max)
        } else {
            timing.max
        };
        end.checked_sub(now.saturating_duration_since(self.started))
            .filter(|d| !d.is_zero())
    }
}

/// What each TTL saw over the rounds so far.
#[derive(Debug)]
struct Tally {
    target: IpAddr,
    /// TTL 1 first.
    ttls: Vec<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    sent: usize,
    addrs: HashMap<IpAddr, usize>,
    /// Round-trip times of the answers in the order they came, milliseconds.
    samples_ms: Vec<f64>,
}

impl Tally {
    fn new(target: IpAddr) -> Self {
        Self {
            target,
            ttls: Vec::new(),
        }
    }

    fn at(&mut self, ttl: u8) -> &mut Seen {
        let i = usize::from(ttl.max(1)) - 1;
        if self.ttls.len() <= i {
            self.ttls.resize_with(i + 1, Seen::default);
        }
        &mut self.ttls[i]
    }

    fn sent(&mut self, ttl: u8) {
        self.at(ttl).sent += 1;
    }

    fn answered(&mut self, ttl: u8, from: IpAddr, rtt: Duration) {
        let seen = self.at(ttl);
        *seen.addrs.entry(from).or_default() += 1;
        seen.samples_ms.push(rtt.as_secs_f64() * 1000.0);
    }

    /// The lowest TTL the destination answered at.
    fn target_ttl(&self) -> Option<u8> {
        let i = self
            .ttls
            .iter()
            .position(|s| s.addrs.contains_key(&self.target))?;
        u8::try_from(i + 1).ok()
    }

    /// Every TTL tried, as trippy-core's hops: addresses most answers first (ties by
    /// address), the last answer's round-trip time.
    fn hops(self) -> Vec<Hop> {
        let target = self.target;
        (1..=u8::MAX)
            .zip(self.ttls)
            .map(|(ttl, seen)| {
                let mut addrs: Vec<(IpAddr, usize)> = seen.addrs.into_iter().collect();
                addrs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                Hop {
                    ttl,
                    is_target: addrs.iter().any(|(a, _)| *a == target),
                    addrs,
                    sent: seen.sent,
                    received: seen.samples_ms.len(),
                    last_ms: seen.samples_ms.last().copied(),
                    samples_ms: seen.samples_ms,
                }
            })
            .collect()
    }
}

/// One trace's ping socket: non-blocking, ICMP errors queued (`IP_RECVERR`).
#[derive(Debug)]
struct PingSocket {
    fd: OwnedFd,
    family: Family,
}

impl PingSocket {
    fn open(family: Family) -> nix::Result<Self> {
        let fd = family.open()?;
        match family {
            Family::V4 => socket::setsockopt(&fd, sockopt::Ipv4RecvErr, &true)?,
            Family::V6 => socket::setsockopt(&fd, sockopt::Ipv6RecvErr, &true)?,
        }
        Ok(Self { fd, family })
    }

    /// Sends the echo request `seq` with time to live `ttl`.
    fn send(&self, dest: &SockaddrStorage, ttl: u8, seq: u16) -> nix::Result<()> {
        let hops = i32::from(ttl);
        match self.family {
            Family::V4 => socket::setsockopt(&self.fd, sockopt::Ipv4Ttl, &hops)?,
            Family::V6 => socket::setsockopt(&self.fd, sockopt::Ipv6Ttl, &hops)?,
        }
        let packet = echo_request(self.family, seq);
        let mut tries = 0;
        loop {
            match socket::sendto(self.fd.as_raw_fd(), &packet, dest, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                // An ICMP error that came in before this send (a router's answer to an
                // earlier probe) is reported by it instead, once: the error itself waits
                // on the error queue, and the next try sends.
                Err(_) if tries < SEND_TRIES => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until an answer may be there, at most `timeout`.
    fn wait(&self, timeout: Duration) {
        let ms = u16::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
        // POLLERR (something on the error queue) is always reported.
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        // Readable, an error queued, a signal or the timeout: the caller reads and
        // decides whether to wait again.
        let _ = nix::poll::poll(&mut fds, PollTimeout::from(ms));
    }

    /// Hands every answer waiting to `each` as (sequence number, who answered, when read):
    /// the destination's echo replies, then the routers' ICMP errors.
    fn drain(&self, mut each: impl FnMut(u16, IpAddr, Instant)) {
        let fd = self.fd.as_raw_fd();
        let mut buf = [0u8; 1500];
        let mut errors = 0;
        loop {
            match socket::recvfrom::<SockaddrStorage>(fd, &mut buf) {
                Ok((n, from)) => {
                    let at = Instant::now();
                    let seq = echo_sequence(&buf[..n], self.family.echo_reply());
                    if let (Some(seq), Some(from)) = (seq, from.as_ref().and_then(ip_of)) {
                        each(seq, from, at);
                    }
                }
                Err(Errno::EAGAIN) => break,
                // The socket's pending error (an ICMP error, read from the error queue
                // below), reported once; or a signal.
                Err(_) if errors < SEND_TRIES => errors += 1,
                Err(_) => break,
            }
        }
        loop {
            match self.recv_error(&mut buf) {
                Ok(Some((seq, from))) => each(seq, from, Instant::now()),
                Ok(None) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
    }

    /// One error from the error queue: the sequence number of the echo request a router
    /// answered and the router; `None` for an error that is no hop's answer.
    fn recv_error(&self, buf: &mut [u8]) -> nix::Result<Option<(u16, IpAddr)>> {
        let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
        let (n, err) = {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = socket::recvmsg::<SockaddrStorage>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
            )?;
            let err = msg.cmsgs()?.find_map(|c| match c {
                ControlMessageOwned::Ipv4RecvErr(ee, from) => Some((ee, from.and_then(v4))),
                ControlMessageOwned::Ipv6RecvErr(ee, from) => Some((ee, from.and_then(v6))),
                _ => None,
            });
            (msg.bytes, err)
        };
        let Some((ee, Some(from))) = err else {
            return Ok(None);
        };
        if !self.family.is_hop_answer(ee.ee_origin, ee.ee_type) {
            return Ok(None);
        }
        // The data is the echo request answered (the kernel's copy from the router's
        // quote of it): its sequence number names the probe.
        let data = buf.get(..n).unwrap_or_default();
        Ok(echo_sequence(data, self.family.echo_request()).map(|seq| (seq, from)))
    }
}

fn ip_of(addr: &SockaddrStorage) -> Option<IpAddr> {
    addr.as_sockaddr_in()
        .map(|a| IpAddr::V4(a.ip()))
        .or_else(|| addr.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
}

/// The router of an IPv4 ICMP error (`SO_EE_OFFENDER`), if it names one.
fn v4(a: libc::sockaddr_in) -> Option<IpAddr> {
    (i32::from(a.sin_family) == libc::AF_INET)
        .then(|| IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
}

/// The router of an IPv6 ICMP error, if it names one.
fn v6(a: libc::sockaddr_in6) -> Option<IpAddr> {
    (i32::from(a.sin6_family) == libc::AF_INET6)
        .then(|| IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn timing() -> Timing {
        Timing {
            min: 20 * MS,
            max: 2000 * MS,
            grace: 100 * MS,
        }
    }

    /// Every TTL of a round has its own number, and so does each of 256 rounds in a row.
    #[test]
    fn sequence_numbers_name_the_round_and_the_ttl() {
        let mut seen = std::collections::HashSet::new();
        for round in 0..256 {
            for ttl in 1..=u8::MAX {
                assert!(seen.insert(sequence(round, ttl)), "{round} {ttl}");
            }
        }
        assert_eq!(sequence(0, 3), 3);
        assert_eq!(sequence(2, 3), 0x0203);
        assert_eq!(sequence(258, 3), 0x0203, "the round wraps at 256");
    }

    #[test]
    fn an_echo_request_carries_its_sequence_number() {
        for family in [Family::V4, Family::V6] {
            let packet = echo_request(family, 0x0a0b);
            assert_eq!(packet.len(), 8 + PAYLOAD.len());
            assert_eq!(packet[0], family.echo_request());
            assert_eq!(echo_sequence(&packet, family.echo_request()), Some(0x0a0b));
            assert_eq!(echo_sequence(&packet, family.echo_reply()), None);
        }
        // A reply as the kernel hands it on: the identifier is the socket's.
        let reply = [0, 0, 0x12, 0x34, 0xbe, 0xef, 0x01, 0x05, b'x'];
        assert_eq!(echo_sequence(&reply, 0), Some(0x0105));
        assert_eq!(echo_sequence(&reply[..7], 0), None, "too short");
        assert_eq!(echo_sequence(&[0, 1, 0, 0, 0, 0, 1, 5], 0), None, "code 1");
    }

    #[test]
    fn time_exceeded_and_unreachable_are_hop_answers_local_errors_are_not() {
        let (icmp, icmp6) = (libc::SO_EE_ORIGIN_ICMP, libc::SO_EE_ORIGIN_ICMP6);
        assert!(Family::V4.is_hop_answer(icmp, 11));
        assert!(Family::V4.is_hop_answer(icmp, 3));
        assert!(!Family::V4.is_hop_answer(icmp, 12), "parameter problem");
        assert!(!Family::V4.is_hop_answer(libc::SO_EE_ORIGIN_LOCAL, 11));
        assert!(Family::V6.is_hop_answer(icmp6, 3));
        assert!(Family::V6.is_hop_answer(icmp6, 1));
        assert!(!Family::V6.is_hop_answer(icmp6, 2), "packet too big");
        assert!(!Family::V6.is_hop_answer(icmp, 3));
    }

    /// An answer is matched to its probe once, with the time since that probe was sent;
    /// duplicates, unknown numbers and answers to an earlier round are not.
    #[test]
    fn answers_are_matched_to_their_probes_once() {
        let t0 = Instant::now();
        let mut round = Round::new(1, t0);
        for ttl in 1..=3 {
            round.sent(ttl, sequence(1, ttl), t0 + u32::from(ttl) * MS);
        }
        assert_eq!(
            round.answer(sequence(1, 2), false, t0 + 12 * MS),
            Some((2, 10 * MS))
        );
        assert_eq!(round.answer(sequence(1, 2), false, t0 + 13 * MS), None);
        assert_eq!(
            round.answer(sequence(0, 1), false, t0 + 13 * MS),
            None,
            "last round's"
        );
        assert_eq!(round.answer(sequence(1, 9), false, t0 + 13 * MS), None);
        assert!(round.target_after.is_none());
        assert_eq!(
            round.answer(sequence(1, 3), true, t0 + 15 * MS),
            Some((3, 12 * MS))
        );
        assert_eq!(round.target_after, Some(15 * MS));
        round.answer(sequence(1, 1), false, t0 + 16 * MS);
        assert_eq!(round.target_after, Some(15 * MS), "the first answer counts");
        assert!(round.waiting.is_empty());
    }

    /// A round waits out its timeout for a silent target, `grace` after the target
    /// answered for the other answers, and no more once everything answered, but always
    /// the shortest round.
    #[test]
    fn a_round_ends_when_answered_after_the_grace_or_at_its_timeout() {
        let t0 = Instant::now();
        let timing = timing();
        let mut round = Round::new(0, t0);
        round.sent(1, sequence(0, 1), t0);
        round.sent(2, sequence(0, 2), t0);
        assert_eq!(round.wait(t0 + 500 * MS, &timing), Some(1500 * MS));
        assert_eq!(round.wait(t0 + 2000 * MS, &timing), None);
        round.answer(sequence(0, 2), true, t0 + 5 * MS);
        assert_eq!(round.wait(t0 + 5 * MS, &timing), Some(100 * MS));
        assert_eq!(round.wait(t0 + 105 * MS, &timing), None);
        round.answer(sequence(0, 1), false, t0 + 6 * MS);
        assert_eq!(round.wait(t0 + 6 * MS, &timing), Some(14 * MS));
        assert_eq!(round.wait(t0 + 20 * MS, &timing), None);
    }

    #[test]
    fn the_next_round_goes_a_little_past_the_target_while_it_answers() {
        assert_eq!(next_limit(None, false, 30), 30);
        assert_eq!(next_limit(Some(3), true, 30), 5);
        assert_eq!(next_limit(Some(3), false, 30), 30, "lost: look further");
        assert_eq!(next_limit(Some(5), true, 6), 6);
        assert_eq!(next_limit(Some(255), true, 255), 255);
    }

    /// The tally gives trippy-core's hops: every TTL tried, addresses most answers first,
    /// the target marked, the samples in the order they came.
    #[test]
    fn the_tally_gives_the_hops_as_trippy_does() {
        let target: IpAddr = "10.0.3.2".parse().unwrap();
        let (r1, r1b): (IpAddr, IpAddr) =
            ("10.0.1.9".parse().unwrap(), "10.0.1.1".parse().unwrap());
        let mut tally = Tally::new(target);
        for _ in 0..3 {
            for ttl in 1..=4 {
                tally.sent(ttl);
            }
        }
        tally.answered(1, r1, 2 * MS);
        tally.answered(1, r1b, 1 * MS);
        tally.answered(1, r1, 3 * MS);
        tally.answered(3, target, 5 * MS);
        tally.answered(4, target, 6 * MS);
        assert_eq!(tally.target_ttl(), Some(3));
        let hops = tally.hops();
        assert_eq!(hops.len(), 4);
        assert_eq!(
            hops[0],
            Hop {
                ttl: 1,
                addrs: vec![(r1, 2), (r1b, 1)],
                is_target: false,
                sent: 3,
                received: 3,
                last_ms: Some(3.0),
                samples_ms: vec![2.0, 1.0, 3.0],
            }
        );
        assert_eq!((hops[1].ttl, hops[1].sent, hops[1].received), (2, 3, 0));
        assert!(hops[1].addrs.is_empty() && !hops[1].is_target);
        assert!(hops[2].is_target && hops[3].is_target);
        assert_eq!(hops[2].samples_ms, [5.0]);
    }

    #[test]
    fn offenders_without_an_address_are_none() {
        let unspec = libc::sockaddr_in {
            sin_family: libc::AF_UNSPEC as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: 0 },
            sin_zero: [0; 8],
        };
        assert_eq!(v4(unspec), None);
        let r1 = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_addr: libc::in_addr {
                s_addr: u32::from(Ipv4Addr::new(10, 0, 1, 1)).to_be(),
            },
            ..unspec
        };
        assert_eq!(v4(r1), Some("10.0.1.1".parse().unwrap()));
    }
}

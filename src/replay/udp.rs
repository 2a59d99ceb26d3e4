//! UDP: each datagram is one event. Datagrams between the same two endpoints (either
//! direction) share a connection key until the flow has been idle for the idle timeout; there
//! is no close. The client is not known from UDP itself (`ClientHint::Unknown`): the protocol
//! decides (a DNS query's sender is the client).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::event::{ClientHint, ConnKey, DataEvent, SourceEvent};

use super::ip::Datagram;
use super::tcp::FlowKey;
use super::{Emit, FlowIds, ReplayStats};

struct Flow {
    key: ConnKey,
    last_ns: u64,
}

#[derive(Default)]
pub(crate) struct UdpTable {
    flows: HashMap<FlowKey, Flow>,
}

impl UdpTable {
    pub(crate) fn datagram(
        &mut self,
        ts: u64,
        src: SocketAddr,
        dst: SocketAddr,
        dg: Datagram<'_>,
        ids: &mut FlowIds,
        out: &mut Emit<'_>,
    ) {
        out.stats.udp_datagrams += 1;
        let flow = self.flows.entry(FlowKey::new(src, dst)).or_insert_with(|| {
            out.stats.udp_flows += 1;
            Flow {
                key: ConnKey {
                    tgid: 0,
                    fd: ids.next(out.stats),
                    start_ns: ts,
                },
                last_ns: ts,
            }
        });
        flow.last_ns = ts;
        if dg.payload.is_empty() && dg.cut == 0 {
            return;
        }
        out.event(SourceEvent::Data(DataEvent {
            conn: flow.key,
            ts_ns: ts,
            src,
            dst,
            client: ClientHint::Unknown,
            observer: None,
            protocol: None,
            transport: crate::event::Transport::Udp,
            data: dg.payload.to_vec(),
            missing: dg.cut,
            lost_before: Default::default(),
        }));
    }

    /// Forgets flows with no datagram since `cutoff`.
    pub(crate) fn evict_idle(&mut self, cutoff: u64, stats: &mut ReplayStats) {
        self.flows.retain(|_, f| {
            let keep = f.last_ns >= cutoff;
            if !keep {
                stats.idle_evictions += 1;
            }
            keep
        });
    }
}

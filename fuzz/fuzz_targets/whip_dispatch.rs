//! The WHIP UDP dispatcher's decision: which session a datagram from an address belongs to.
//! STUN binding requests route by the ICE username's local part (our ufrag); everything else
//! by the source address a binding request registered. Never panics; a datagram is only ever
//! routed to a registered session.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use llhls_ingest::whip::dispatch::Routes;
use llhls_ingest::whip::stun::stun_local_ufrag;

fuzz_target!(|data: &[u8]| {
    let mut routes: Routes<u32> = Routes::new();
    routes.add("abcd".to_string(), 1);
    routes.add("efgh".to_string(), 2);
    // Each datagram: a port byte, a length byte, then the bytes.
    let mut rest = data;
    while rest.len() >= 2 {
        let port = 40000 + u16::from(rest[0] & 0x03);
        let len = usize::from(rest[1]).min(rest.len() - 2);
        let datagram = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let _ = stun_local_ufrag(datagram);
        let source = SocketAddr::from(([127, 0, 0, 1], port));
        if let Some(&session) = routes.route(datagram, source) {
            assert!(session == 1 || session == 2, "routed to an unknown session");
        }
    }
    routes.remove("abcd");
    assert_eq!(routes.len(), 1);
});

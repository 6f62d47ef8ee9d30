//! The one STUN fact the UDP dispatcher needs, read without a STUN stack: which session a
//! binding request is for (the local part of its ICE username).

/// The ICE username's local part from a STUN binding request (`OURS:THEIRS`), if `d` is one.
pub fn stun_local_ufrag(d: &[u8]) -> Option<&str> {
    // RFC 5389: type 0x0001 (binding request), magic cookie, 20-byte header, TLV attributes.
    if d.len() < 20
        || d[0] & 0xc0 != 0
        || d[0..2] != [0x00, 0x01]
        || d[4..8] != [0x21, 0x12, 0xa4, 0x42]
    {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([d[2], d[3]]));
    let body = d.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let t = u16::from_be_bytes([body[i], body[i + 1]]);
        let l = usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
        let v = body.get(i + 4..i + 4 + l)?;
        if t == 0x0006 {
            let user = std::str::from_utf8(v).ok()?;
            return user.split(':').next();
        }
        i += 4 + l.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_username() {
        let user = b"abcd:efgh";
        let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[7; 12]);
        let mut attrs = vec![0x00, 0x06, 0, user.len() as u8];
        attrs.extend_from_slice(user);
        attrs.extend_from_slice(&[0, 0, 0]); // pad to 4
        let l = attrs.len() as u16;
        m[2..4].copy_from_slice(&l.to_be_bytes());
        m.extend_from_slice(&attrs);
        assert_eq!(stun_local_ufrag(&m), Some("abcd"));
        assert_eq!(stun_local_ufrag(&m[..10]), None);
        let mut rtp = m.clone();
        rtp[0] = 0x80;
        assert_eq!(stun_local_ufrag(&rtp), None);
        let mut lying = m.clone();
        lying[2..4].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(stun_local_ufrag(&lying), None);
    }
}

//! A big-endian bit reader with Exp-Golomb support, for SPS / sequence-header parsing.

use super::CodecError;

/// Removes H.264/HEVC emulation-prevention bytes (00 00 03 -> 00 00).
pub(crate) fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    fn truncated(&self) -> CodecError {
        CodecError::Truncated {
            what: self.what,
            at: self.pos / 8,
        }
    }

    pub(crate) fn bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| self.truncated())?;
        let v = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(v == 1)
    }

    pub(crate) fn bits(&mut self, n: u32) -> Result<u64, CodecError> {
        debug_assert!(n <= 64);
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Ok(v)
    }

    pub(crate) fn u32(&mut self, n: u32) -> Result<u32, CodecError> {
        Ok(self.bits(n.min(32))? as u32)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        if self.pos + n > self.data.len() * 8 {
            return Err(self.truncated());
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned Exp-Golomb, limited to 32 bits of prefix so hostile input cannot loop long.
    pub(crate) fn ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(CodecError::invalid(
                    self.what,
                    "Exp-Golomb code longer than 32 bits",
                ));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + rest) as u32)
    }

    pub(crate) fn se(&mut self) -> Result<i32, CodecError> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }

    /// AV1 uvlc().
    pub(crate) fn uvlc(&mut self) -> Result<u32, CodecError> {
        self.ue()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 => ue 0,1,2 then se +2, -2
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.se().unwrap(), 2);
        assert_eq!(r.se().unwrap(), -2);
    }

    #[test]
    fn hostile_exp_golomb_is_an_error() {
        let data = [0u8; 8];
        assert!(BitReader::new(&data, "t").ue().is_err());
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}

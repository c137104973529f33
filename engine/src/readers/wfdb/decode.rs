//! WFDB sample formats (signal-5): 16, 61, 80, 160, 212, 24, 32, 310, 311.
//! Samples are packed in small groups; a group can straddle frames, so the
//! decoder carries the unused rest of a group to the next call.

use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format(u16);

impl Format {
    pub(crate) fn new(code: u16) -> Option<Self> {
        matches!(code, 16 | 61 | 80 | 160 | 212 | 24 | 32 | 310 | 311).then_some(Format(code))
    }

    /// (bytes, samples) of one packing group.
    pub(crate) fn group(self) -> (usize, usize) {
        match self.0 {
            80 => (1, 1),
            16 | 61 | 160 => (2, 1),
            212 => (3, 2),
            24 => (3, 1),
            32 => (4, 1),
            _ => (4, 3), // 310, 311
        }
    }

    /// Samples held by `bytes` bytes: whole groups, plus the first sample
    /// of a final half group (a 212 or 310 file of odd length ends in one).
    pub(crate) fn samples_in(self, bytes: u64) -> u64 {
        let (group_bytes, group_samples) = self.group();
        let partial = bytes % group_bytes as u64;
        let tail = u64::from(matches!(self.0, 212 | 310) && partial >= 2);
        bytes / group_bytes as u64 * group_samples as u64 + tail
    }

    /// The digital value that marks an invalid (missing) sample.
    pub(crate) fn invalid(self) -> i32 {
        match self.0 {
            80 => -128,
            212 => -2048,
            310 | 311 => -512,
            24 => -(1 << 23),
            32 => i32::MIN,
            _ => -32768,
        }
    }

    fn decode_group(self, b: &[u8], out: &mut [i32; 3]) {
        let sext = |v: u32, bits: u32| ((v << (32 - bits)) as i32) >> (32 - bits);
        match self.0 {
            80 => out[0] = i32::from(b[0]) - 128,
            16 => out[0] = i32::from(i16::from_le_bytes([b[0], b[1]])),
            61 => out[0] = i32::from(i16::from_be_bytes([b[0], b[1]])),
            160 => out[0] = i32::from(u16::from_le_bytes([b[0], b[1]])) - 32768,
            24 => out[0] = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8,
            32 => out[0] = i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            212 => {
                let (b0, b1, b2) = (u32::from(b[0]), u32::from(b[1]), u32::from(b[2]));
                out[0] = sext(b0 | (b1 & 0x0F) << 8, 12);
                out[1] = sext(b2 | (b1 & 0xF0) << 4, 12);
            }
            310 => {
                let w0 = u32::from(u16::from_le_bytes([b[0], b[1]]));
                let w1 = u32::from(u16::from_le_bytes([b[2], b[3]]));
                out[0] = sext((w0 >> 1) & 0x3FF, 10);
                out[1] = sext((w1 >> 1) & 0x3FF, 10);
                out[2] = sext((w0 >> 11) | ((w1 >> 11) << 5), 10);
            }
            _ => {
                let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                out[0] = sext(w & 0x3FF, 10);
                out[1] = sext((w >> 10) & 0x3FF, 10);
                out[2] = sext((w >> 20) & 0x3FF, 10);
            }
        }
    }
}

/// Stateful decoder of one signal file's sample stream.
pub(crate) struct Decoder {
    format: Format,
    carry: [i32; 3],
    carry_pos: usize,
    carry_len: usize,
    bytes: Vec<u8>,
}

impl Decoder {
    pub(crate) fn new(format: Format) -> Self {
        Decoder {
            format,
            carry: [0; 3],
            carry_pos: 0,
            carry_len: 0,
            bytes: Vec::new(),
        }
    }

    /// Appends up to `n` samples to `out`; fewer only at end of file.
    pub(crate) fn decode(
        &mut self,
        src: &mut impl Read,
        n: usize,
        out: &mut Vec<i32>,
    ) -> std::io::Result<usize> {
        let start = out.len();
        while self.carry_pos < self.carry_len && out.len() - start < n {
            out.push(self.carry[self.carry_pos]);
            self.carry_pos += 1;
        }
        let missing = n - (out.len() - start);
        if missing == 0 {
            return Ok(n);
        }
        let (group_bytes, group_samples) = self.format.group();
        let groups = missing.div_ceil(group_samples);
        self.bytes.resize(groups * group_bytes, 0);
        let got = crate::readers::read_full(src, &mut self.bytes)?;
        let whole = got / group_bytes * group_bytes;
        let tail = self.format.samples_in((got - whole) as u64) as usize;
        // A half group at the end of the file is decoded zero-padded.
        self.bytes[got..].fill(0);
        let used = if tail > 0 { whole + group_bytes } else { whole };
        let mut group = [0i32; 3];
        for (k, chunk) in self.bytes[..used].chunks_exact(group_bytes).enumerate() {
            self.format.decode_group(chunk, &mut group);
            let valid = if (k + 1) * group_bytes > got {
                tail
            } else {
                group_samples
            };
            let take = valid.min(n - (out.len() - start));
            out.extend_from_slice(&group[..take]);
            self.carry = group;
            self.carry_pos = take;
            self.carry_len = valid;
        }
        Ok(out.len() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(code: u16, bytes: &[u8], steps: &[usize]) -> Vec<i32> {
        let mut d = Decoder::new(Format::new(code).expect("known format"));
        let mut src = bytes;
        let mut out = Vec::new();
        for &n in steps {
            d.decode(&mut src, n, &mut out).expect("in-memory read");
        }
        out
    }

    #[test]
    fn format_212_across_odd_frames() {
        // samples 1, -1, 2047, -2048
        let bytes = [0x01, 0xF0, 0xFF, 0xFF, 0x87, 0x00];
        assert_eq!(decode_all(212, &bytes, &[1, 1, 1, 1]), vec![1, -1, 2047, -2048]);
        assert_eq!(decode_all(212, &bytes, &[3, 5]), vec![1, -1, 2047, -2048]);
    }

    #[test]
    fn formats_16_80_24_311_310() {
        assert_eq!(
            decode_all(16, &[0x00, 0x80, 0xFF, 0x7F], &[2]),
            vec![-32768, 32767]
        );
        assert_eq!(decode_all(80, &[0, 128, 255], &[3]), vec![-128, 0, 127]);
        assert_eq!(decode_all(24, &[0xFF, 0xFF, 0xFF], &[1]), vec![-1]);
        let w: u32 = 5 | (0x3FF << 10) | (0x200 << 20);
        assert_eq!(decode_all(311, &w.to_le_bytes(), &[2, 1]), vec![5, -1, -512]);
        // 310: s0 = 3, s1 = -2, s2 = 0b11111_00001 (= -31)
        let w0: u16 = (3 << 1) | (0b00001 << 11);
        let w1: u16 = ((0x3FE & 0x3FF) << 1) | (0b11111 << 11);
        let mut b = w0.to_le_bytes().to_vec();
        b.extend(w1.to_le_bytes());
        assert_eq!(decode_all(310, &b, &[3]), vec![3, -2, -31]);
    }

    #[test]
    fn short_input_returns_fewer() {
        assert_eq!(decode_all(16, &[1, 0, 2], &[5]), vec![1]);
        // 212 file of odd sample count: the last sample sits in 2 bytes.
        assert_eq!(
            decode_all(212, &[0x01, 0xF0, 0xFF, 0x05, 0x00], &[2, 2]),
            vec![1, -1, 5]
        );
        assert_eq!(Format::new(212).map(|f| f.samples_in(5)), Some(3));
        assert_eq!(Format::new(311).map(|f| f.samples_in(7)), Some(3));
    }
}

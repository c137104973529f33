//! MSB-first bit writer and bounds-checked bit reader.

use super::CodecError;

/// Appends bits, most significant first, to a byte vector.
///
/// Bits gather in a 64-bit accumulator that goes out as one 8-byte word
/// when full, so most writes are a shift and an or, not a `Vec` append.
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// the last `pending_bits` bits written, right-aligned
    pending: u64,
    /// always below 64
    pending_bits: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            pending: 0,
            pending_bits: 0,
        }
    }

    /// Writes the low `bits` bits of `value` (any width up to 64).
    #[inline]
    pub(crate) fn write(&mut self, value: u64, bits: u32) {
        if bits > 56 {
            self.write_short(value >> 32, bits - 32);
            self.write_short(value & 0xFFFF_FFFF, 32);
        } else {
            self.write_short(value, bits);
        }
    }

    /// `bits` ≤ 56.
    #[inline]
    fn write_short(&mut self, value: u64, bits: u32) {
        let value = value & ((1u64 << bits) - 1);
        if self.pending_bits + bits < 64 {
            // `pending_bits + bits < 64`, so the shift is in range.
            self.pending = (self.pending << bits) | value;
            self.pending_bits += bits;
        } else {
            // The word fills: here pending_bits ≥ 8, so 8 ≤ room ≤ 56.
            let room = 64 - self.pending_bits;
            let spill = bits - room;
            let word = (self.pending << room) | (value >> spill);
            self.out.extend_from_slice(&word.to_be_bytes());
            self.pending = value & ((1u64 << spill) - 1);
            self.pending_bits = spill;
        }
    }

    /// Starts a [`BulkWriter`] that continues this stream, for a hot loop
    /// that writes at most `max_bits` bits: it writes into `room` (grown, and
    /// zeroed, only when too small; what it holds is never read), so each
    /// write is branch-free, with no capacity check. Hand its
    /// [`BulkWriter::end`] to [`Self::end_bulk`] with the same `room` before
    /// writing here again. Keeping `room` between calls spares zeroing ~7
    /// bytes of reserve per value on every call (6 % of encode time).
    ///
    /// A begin/end pair, not a closure: a closure is compiled once, for the
    /// baseline CPU, and LLVM kept the Rice loop out of line, so it lost the
    /// encoder's AVX2/BMI2/LZCNT build (`bsr` and 3-uop `shl %cl` instead of
    /// `lzcnt` and `shlx`). The loop now sits in its caller's body.
    #[inline(always)]
    pub(crate) fn begin_bulk<'r>(&mut self, room: &'r mut Vec<u8>, max_bits: usize) -> BulkWriter<'r> {
        // Whole bytes of the pending bits go out; fewer than 8 remain, left-aligned.
        let whole = (self.pending_bits / 8) as usize;
        let aligned = if self.pending_bits == 0 {
            0
        } else {
            self.pending << (64 - self.pending_bits)
        };
        self.out.extend_from_slice(&aligned.to_be_bytes()[..whole]);
        let needed = max_bits / 8 + 16 + WINDOW_BYTES;
        if room.len() < needed {
            room.resize(needed, 0);
        }
        BulkWriter {
            buf: &mut room[..],
            pos: 0,
            acc: aligned << (whole * 8),
            n: self.pending_bits % 8,
        }
    }

    /// Continues this stream after a [`BulkWriter`] over `room`: appends
    /// its whole bytes and takes back its pending bits.
    #[inline(always)]
    pub(crate) fn end_bulk(&mut self, room: &[u8], end: BulkEnd) {
        self.out.extend_from_slice(&room[..end.pos]);
        self.pending = if end.n == 0 { 0 } else { end.acc >> (64 - end.n) };
        self.pending_bits = end.n;
    }

    /// Pads with zero bits to the next byte boundary and flushes.
    pub(crate) fn finish(self) {
        if self.pending_bits > 0 {
            let aligned = self.pending << (64 - self.pending_bits);
            let bytes = self.pending_bits.div_ceil(8) as usize;
            self.out.extend_from_slice(&aligned.to_be_bytes()[..bytes]);
        }
    }
}

/// A branch-free continuation of a [`BitWriter`] over reserved room (see
/// [`BitWriter::begin_bulk`]): `acc` holds `n` < 8 pending bits, left-aligned, and
/// every write stores all 8 bytes of it, then advances by its whole bytes.
pub(crate) struct BulkWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    acc: u64,
    n: u32,
}

/// Where a [`BulkWriter`] stopped, for [`BitWriter::end_bulk`].
pub(crate) struct BulkEnd {
    pos: usize,
    acc: u64,
    n: u32,
}

impl BulkWriter<'_> {
    /// Ends the bulk writes; pass the result to [`BitWriter::end_bulk`].
    #[inline(always)]
    pub(crate) fn end(self) -> BulkEnd {
        BulkEnd {
            pos: self.pos,
            acc: self.acc,
            n: self.n,
        }
    }

    /// Writes the low `bits` bits of `value`, 1 ≤ `bits` ≤ 56 (so `n + bits` ≤ 63).
    #[inline(always)]
    pub(crate) fn put(&mut self, value: u64, bits: u32) {
        debug_assert!((1..=56).contains(&bits));
        // `<< (64 − bits)` drops the bits above `bits`.
        self.acc |= (value << (64 - bits)) >> self.n;
        self.n += bits;
        let bytes = self.n / 8;
        // In range while the caller's `max_bits` holds (16 bytes of slack).
        self.buf[self.pos..self.pos + 8].copy_from_slice(&self.acc.to_be_bytes());
        self.pos += bytes as usize;
        // bytes ≤ 7, so the shift is at most 56.
        self.acc <<= bytes * 8;
        self.n -= bytes * 8;
    }

    /// The next [`WINDOW`] bytes of room as a [`Window`], for a run of
    /// writes of at most `(WINDOW − 8) · 8` bits in all; `None` only if the
    /// room is short (`begin_bulk` reserves a window beyond `max_bits`).
    /// Hand its [`Window::end`] to [`Self::advance`].
    #[inline(always)]
    pub(crate) fn window(&mut self) -> Option<Window<'_>> {
        let buf = self.buf.get_mut(self.pos..)?.first_chunk_mut::<WINDOW_BYTES>()?;
        Some(Window {
            buf,
            pos: 0,
            acc: self.acc,
            n: self.n,
        })
    }

    /// Continues after a [`Window`].
    #[inline(always)]
    pub(crate) fn advance(&mut self, end: WindowEnd) {
        self.pos += end.pos;
        self.acc = end.acc;
        self.n = end.n;
    }

    /// Writes any width 0–64 (the rare escape path). Inlined, so the
    /// writer's state stays in registers in the caller's loop (a call
    /// taking `&mut self` kept it on the stack, a store-forwarding chain).
    #[inline(always)]
    pub(crate) fn put_wide(&mut self, value: u64, bits: u32) {
        if bits > 32 {
            self.put(value >> 32, bits - 32);
            self.put(value & 0xFFFF_FFFF, 32);
        } else if bits > 0 {
            self.put(value, bits);
        }
    }
}

/// Bytes a [`Window`] addresses (a power of two).
pub(crate) const WINDOW: usize = 512;
/// Bytes of a [`Window`]'s array: its last 8-byte store may start at any
/// address, `WINDOW − 1` included.
const WINDOW_BYTES: usize = WINDOW + 8;

/// [`BulkWriter`] over a fixed-size array: its 8-byte store goes to
/// `pos & (WINDOW − 1)`, which the compiler knows is in bounds, so a write
/// has no bounds check. A run of at most `(WINDOW − 8) · 8` bits keeps `pos`
/// at most `WINDOW − 8`, where the mask changes nothing (one `and`, where
/// the clamp `min(pos, WINDOW − 8)` it replaced took a compare and a
/// conditional move).
pub(crate) struct Window<'a> {
    buf: &'a mut [u8; WINDOW_BYTES],
    pos: usize,
    acc: u64,
    n: u32,
}

/// Where a [`Window`] stopped, for [`BulkWriter::advance`].
pub(crate) struct WindowEnd {
    pos: usize,
    acc: u64,
    n: u32,
}

impl Window<'_> {
    /// As [`BulkWriter::put`], for `value` already left-aligned (its
    /// `bits` bits at the top, zeros below), 1 ≤ `bits` ≤ 56.
    #[inline(always)]
    pub(crate) fn put_left(&mut self, value: u64, bits: u32) {
        debug_assert!((1..=56).contains(&bits));
        debug_assert!(self.pos <= WINDOW - 8);
        self.acc |= value >> self.n;
        self.n += bits;
        let bytes = self.n / 8;
        let at = self.pos & (WINDOW - 1);
        self.buf[at..at + 8].copy_from_slice(&self.acc.to_be_bytes());
        self.pos += bytes as usize;
        self.acc <<= bytes * 8;
        self.n -= bytes * 8;
    }

    #[inline(always)]
    pub(crate) fn end(self) -> WindowEnd {
        WindowEnd {
            pos: self.pos,
            acc: self.acc,
            n: self.n,
        }
    }
}

/// Reads bits, most significant first; every read past the end is an error.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// position in bits from the start of `data`
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bytes consumed, counting a partly read byte as consumed.
    pub(crate) fn bytes_consumed(&self) -> usize {
        self.pos.div_ceil(8)
    }

    pub(crate) fn bits_left(&self) -> usize {
        self.data.len() * 8 - self.pos
    }

    /// The next 64 bits (zeros past the end); the top 57 are always valid.
    #[inline(always)]
    fn peek64(&self) -> u64 {
        let byte = self.pos >> 3;
        let mut buf = [0u8; 8];
        if let Some(chunk) = self.data.get(byte..byte + 8) {
            buf.copy_from_slice(chunk);
        } else if let Some(tail) = self.data.get(byte..) {
            buf[..tail.len()].copy_from_slice(tail);
        }
        u64::from_be_bytes(buf) << (self.pos & 7)
    }

    #[inline(always)]
    fn consume(&mut self, bits: usize) -> Result<(), CodecError> {
        if bits > self.bits_left() {
            return Err(CodecError::Truncated);
        }
        self.pos += bits;
        Ok(())
    }

    /// Reads `bits` bits (up to 64) as an unsigned value.
    #[inline]
    pub(crate) fn read(&mut self, bits: u32) -> Result<u64, CodecError> {
        if bits > 56 {
            let high = self.read_short(bits - 32)?;
            let low = self.read_short(32)?;
            Ok((high << 32) | low)
        } else {
            self.read_short(bits)
        }
    }

    #[inline]
    fn read_short(&mut self, bits: u32) -> Result<u64, CodecError> {
        if bits == 0 {
            return Ok(0);
        }
        let value = self.peek64() >> (64 - bits);
        self.consume(bits as usize)?;
        Ok(value)
    }

    /// Reads one Rice-coded value with parameter `k` (≤ 31): fewer than
    /// `escape_zeros` (≤ 24) zeros, a one and `k` low bits come from a
    /// single peek (at most 56 bits, inside its 57 valid ones); `escape_zeros`
    /// zeros are followed by the value in `escape_width` bits.
    #[inline(always)]
    pub(crate) fn read_rice(
        &mut self,
        k: u32,
        escape_zeros: u32,
        escape_width: u32,
    ) -> Result<u64, CodecError> {
        let word = self.peek64();
        let zeros = word.leading_zeros();
        if zeros < escape_zeros {
            // `>> 1 >> (63 − k)` is `>> (64 − k)` without an overflowing shift at k = 0.
            let low = ((word << (zeros + 1)) >> 1) >> (63 - k);
            self.consume((zeros + 1 + k) as usize)?;
            Ok((u64::from(zeros) << k) | low)
        } else {
            self.consume(escape_zeros as usize)?;
            self.read(escape_width)
        }
    }

    /// Counts zero bits before the next one bit, stopping at `limit` zeros
    /// (then the zeros are consumed and no one bit is expected).
    #[cfg(test)]
    pub(crate) fn read_unary(&mut self, limit: u32) -> Result<u32, CodecError> {
        let zeros = self.peek64().leading_zeros().min(limit);
        if zeros == limit {
            self.consume(limit as usize)?;
        } else {
            self.consume(zeros as usize + 1)?;
        }
        Ok(zeros)
    }
}

/// Appends `value` as LEB128 (7 bits per byte, low first).
pub(crate) fn write_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a LEB128 u32 at `*at`, advancing it; overlong or truncated input is an error.
pub(crate) fn read_varint(data: &[u8], at: &mut usize) -> Result<u32, CodecError> {
    let mut value: u64 = 0;
    for i in 0..5 {
        let byte = *data.get(*at).ok_or(CodecError::Truncated)?;
        *at += 1;
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return u32::try_from(value).map_err(|_| CodecError::Corrupt("varint overflows u32"));
        }
    }
    Err(CodecError::Corrupt("varint longer than 5 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_at_all_widths() {
        let mut out = Vec::new();
        let mut writer = BitWriter::new(&mut out);
        for bits in 0..=64u32 {
            let value = if bits == 0 { 0 } else { u64::MAX >> (64 - bits) };
            writer.write(value, bits);
            writer.write(1, 1);
        }
        writer.finish();
        let mut reader = BitReader::new(&out);
        for bits in 0..=64u32 {
            let value = if bits == 0 { 0 } else { u64::MAX >> (64 - bits) };
            assert_eq!(reader.read(bits).unwrap(), value);
            assert_eq!(reader.read(1).unwrap(), 1);
        }
        assert!(reader.bits_left() < 8);
    }

    #[test]
    fn writer_matches_a_bit_by_bit_reference() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut out = Vec::new();
        let mut writer = BitWriter::new(&mut out);
        let mut reference: Vec<bool> = Vec::new();
        for _ in 0..5000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bits = (state % 65) as u32;
            writer.write(state, bits);
            reference.extend((0..bits).rev().map(|b| state >> b & 1 == 1));
        }
        writer.finish();
        reference.resize(reference.len().div_ceil(8) * 8, false);
        let bytes: Vec<u8> = reference
            .chunks(8)
            .map(|c| c.iter().fold(0u8, |byte, &bit| byte << 1 | u8::from(bit)))
            .collect();
        assert_eq!(out, bytes);
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut reader = BitReader::new(&[0xFF]);
        assert_eq!(reader.read(8).unwrap(), 0xFF);
        assert!(matches!(reader.read(1), Err(CodecError::Truncated)));
        assert!(matches!(
            BitReader::new(&[0]).read_unary(24),
            Err(CodecError::Truncated)
        ));
    }

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for value in [0, 1, 127, 128, 300, u32::MAX] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            let mut at = 0;
            assert_eq!(read_varint(&out, &mut at).unwrap(), value);
            assert_eq!(at, out.len());
        }
        let mut at = 0;
        assert!(read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F], &mut at).is_err());
    }
}

//! A gzip bomb: a valid gzip stream of many zero bytes, small on the wire, written by hand (one
//! fixed-Huffman deflate block of back-references) so the testkit needs no compression crate.

/// A gzip stream (RFC 1952) that decompresses to `size` zero bytes, about 160 times smaller
/// than that: one fixed-Huffman deflate block (RFC 1951) of a literal zero followed by
/// 258-byte back-references at distance 1, then the CRC-32 and length of the expanded data.
///
/// ```
/// let bomb = mirror_testkit::server::gzip_zeros(10 << 20);
/// assert_eq!(&bomb[..2], &[0x1f, 0x8b]);
/// assert!(bomb.len() < 100_000);
/// ```
pub fn gzip_zeros(size: u64) -> Vec<u8> {
    // Header: magic, deflate, no flags, no time, no extra flags, unknown OS.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut bits = Bits::new(&mut out);
    // BFINAL = 1, BTYPE = 01 (fixed Huffman codes), both LSB first.
    bits.push(1, 1);
    bits.push(1, 2);
    let mut left = size;
    if left > 0 {
        // Literal 0: codes 0..=143 are 8 bits, 0x30 + literal.
        bits.code(0x30, 8);
        left -= 1;
    }
    while left >= 258 {
        // Length 258 is code 285 (8 bits, 0xc0 + 285 - 280), no extra bits; distance 1 is
        // distance code 0 (5 bits), no extra bits.
        bits.code(0xc5, 8);
        bits.code(0, 5);
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    // End of block: code 256, 7 bits of zero.
    bits.code(0, 7);
    bits.flush();
    out.extend_from_slice(&crc32_of_zeros(size).to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out
}

/// Packs bits into bytes, least significant bit first, as deflate does.
struct Bits<'a> {
    out: &'a mut Vec<u8>,
    acc: u32,
    len: u32,
}

impl<'a> Bits<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Bits {
            out,
            acc: 0,
            len: 0,
        }
    }

    /// Pushes the low `count` bits of `value`, least significant first (header fields).
    fn push(&mut self, value: u32, count: u32) {
        for i in 0..count {
            self.bit((value >> i) & 1);
        }
    }

    /// Pushes a Huffman code of `count` bits, most significant first (as RFC 1951 asks).
    fn code(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.bit((value >> i) & 1);
        }
    }

    fn bit(&mut self, bit: u32) {
        self.acc |= bit << self.len;
        self.len += 1;
        if self.len == 8 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.len = 0;
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.len = 0;
        }
    }
}

/// The CRC-32 (IEEE, as gzip uses) of `n` zero bytes, in O(log n): feeding a zero byte is a
/// linear map of the register over GF(2), so `n` of them are that map's `n`-th power.
fn crc32_of_zeros(n: u64) -> u32 {
    /// The register after one zero byte, as a 32x32 bit matrix stored by columns.
    fn one_byte() -> [u32; 32] {
        let mut columns = [0u32; 32];
        for (i, column) in columns.iter_mut().enumerate() {
            let mut reg = 1u32 << i;
            for _ in 0..8 {
                reg = if reg & 1 == 1 {
                    (reg >> 1) ^ 0xedb8_8320
                } else {
                    reg >> 1
                };
            }
            *column = reg;
        }
        columns
    }
    fn apply(matrix: &[u32; 32], vector: u32) -> u32 {
        (0..32)
            .filter(|i| vector >> i & 1 == 1)
            .fold(0, |acc, i| acc ^ matrix[i])
    }
    fn square(matrix: &[u32; 32]) -> [u32; 32] {
        let mut out = [0u32; 32];
        for (i, column) in out.iter_mut().enumerate() {
            *column = apply(matrix, matrix[i]);
        }
        out
    }
    let mut power = one_byte();
    let mut reg = 0xffff_ffffu32;
    let mut n = n;
    while n > 0 {
        if n & 1 == 1 {
            reg = apply(&power, reg);
        }
        power = square(&power);
        n >>= 1;
    }
    !reg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRC-32 of zero bytes, the slow way.
    fn crc32_slow(n: usize) -> u32 {
        let mut reg = 0xffff_ffffu32;
        for _ in 0..n {
            for _ in 0..8 {
                reg = if reg & 1 == 1 {
                    (reg >> 1) ^ 0xedb8_8320
                } else {
                    reg >> 1
                };
            }
        }
        !reg
    }

    #[test]
    fn the_crc_of_zeros_matches_the_slow_way() {
        // CRC-32 of one zero byte is a known constant.
        assert_eq!(crc32_of_zeros(1), 0xd202_ef8d);
        assert_eq!(crc32_of_zeros(0), 0);
        for n in [2, 3, 100, 258, 1000, 65_537] {
            assert_eq!(crc32_of_zeros(n as u64), crc32_slow(n), "{n}");
        }
    }

    /// The system's gzip agrees that the stream is valid and expands to the size asked for.
    #[test]
    fn gzip_expands_it_to_the_size_asked_for() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        for size in [0u64, 1, 257, 259, 1000, 5 << 20] {
            let bomb = gzip_zeros(size);
            let mut child = Command::new("gzip")
                .args(["-d", "-c"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("gzip is installed (it is part of every Linux base system)");
            let mut stdin = child.stdin.take().expect("a stdin pipe");
            let writer = std::thread::spawn(move || stdin.write_all(&bomb));
            let out = child.wait_with_output().expect("gzip ran");
            writer
                .join()
                .expect("the writer ran")
                .expect("gzip read it");
            assert!(
                out.status.success(),
                "{size}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout.len() as u64, size);
            assert!(out.stdout.iter().all(|b| *b == 0), "{size}");
        }
        assert!(gzip_zeros(5 << 20).len() < (5 << 20) / 150);
    }
}

//! Counts the values in a MessagePack message without decoding it. Decoded, every value is at
//! least a `serde_json::Value` (32 bytes) however few bytes it took in the message (`0` and
//! `[]` take one): the count lets the host refuse a message that could never fit in the output
//! budget before it allocates anything for it.

/// The number of values in `message`, map keys and containers included, found by one walk over
/// its markers (no recursion: a container's members simply follow its header). A malformed or
/// truncated message is counted up to where it breaks; decoding it fails later.
pub fn count_values(message: &[u8]) -> usize {
    let mut count = 0;
    let mut at = 0;
    while let Some(&marker) = message.get(at) {
        count += 1;
        // A big-endian length of `width` bytes right after the marker.
        let length = |width: usize| {
            let bytes = message.get(at + 1..at + 1 + width)?;
            Some(bytes.iter().fold(0usize, |length, &byte| length << 8 | usize::from(byte)))
        };
        let payload = match marker {
            // Fixints, nil, booleans; fixmap and fixarray headers (their members follow).
            0x00..=0x9f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => Some(0),
            0xa0..=0xbf => Some(usize::from(marker & 0x1f)),
            // bin and str 8, 16, 32: the length, then the bytes.
            0xc4 | 0xd9 => length(1).map(|n| 1 + n),
            0xc5 | 0xda => length(2).map(|n| 2 + n),
            0xc6 | 0xdb => length(4).map(|n| 4 + n),
            // ext 8, 16, 32: the length, a type byte, then the bytes.
            0xc7 => length(1).map(|n| 2 + n),
            0xc8 => length(2).map(|n| 3 + n),
            0xc9 => length(4).map(|n| 5 + n),
            0xcc | 0xd0 => Some(1),
            0xcd | 0xd1 | 0xdc | 0xde => Some(2),
            0xca | 0xce | 0xd2 | 0xdd | 0xdf => Some(4),
            0xcb | 0xcf | 0xd3 => Some(8),
            // fixext 1, 2, 4, 8, 16: a type byte, then the bytes.
            0xd4 => Some(2),
            0xd5 => Some(3),
            0xd6 => Some(5),
            0xd7 => Some(9),
            0xd8 => Some(17),
            // 0xc1 is never used.
            0xc1 => None,
        };
        match payload {
            Some(payload) => at = at.saturating_add(1 + payload),
            None => break,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values_in(value: &serde_json::Value) -> usize {
        count_values(&nexus_abi::encode(value))
    }

    #[test]
    fn counts_every_value_whatever_its_encoding() {
        assert_eq!(values_in(&json!(0)), 1);
        assert_eq!(values_in(&json!([])), 1);
        assert_eq!(values_in(&json!([0, -1, 300, -40000, 1u64 << 40, 2.5, null, true, "x"])), 10);
        assert_eq!(values_in(&json!({"a": [1, {"b": "c".repeat(70_000)}], "d": "e".repeat(300)})), 9);
        assert_eq!(values_in(&json!(vec![0; 70_000])), 70_001);
    }

    #[test]
    fn stops_where_a_message_breaks() {
        // A str 32 header claiming more bytes than follow, then nothing.
        assert_eq!(count_values(&[0x91, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x01]), 2);
        assert_eq!(count_values(&[0x01, 0xc1, 0x01]), 2);
        assert_eq!(count_values(&[0xdb, 0x00]), 1);
        assert_eq!(count_values(&[]), 0);
    }
}

//! Feeds arbitrary bytes to both wire decoders. Whatever decodes must
//! survive re-encoding: in its own encoding bit for bit (and binary must
//! reproduce the input exactly, as the binary encoding is canonical), and in
//! the other encoding up to JSON's single NaN.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigfab_engine::wire::{decode, encode, same_bits, Encoding};
use sigfab_operators::Item;

fuzz_target!(|data: &[u8]| {
    for encoding in [Encoding::Binary, Encoding::Json] {
        if let Ok(item) = decode(data, encoding) {
            check_round_trips(data, encoding, &item);
        }
    }
});

fn check_round_trips(data: &[u8], encoding: Encoding, item: &Item) {
    let again = reencode(item, encoding);
    assert!(
        same_bits(item, &again),
        "{encoding:?} round trip changed the item"
    );
    if encoding == Encoding::Binary {
        let mut out = Vec::new();
        encode(item, Encoding::Binary, &mut out);
        assert!(out == data, "binary re-encoding differs from its input");
    }
    let other = match encoding {
        Encoding::Binary => Encoding::Json,
        Encoding::Json => Encoding::Binary,
    };
    let crossed = reencode(item, other);
    assert!(
        same_bits(&json_canonical(item), &crossed),
        "{encoding:?} -> {other:?} changed the item"
    );
}

fn reencode(item: &Item, encoding: Encoding) -> Item {
    let mut out = Vec::new();
    encode(item, encoding, &mut out);
    match decode(&out, encoding) {
        Ok(again) => again,
        Err(e) => panic!("re-encoded {encoding:?} item does not decode: {e}"),
    }
}

/// JSON has one NaN and no infinities: every non-finite float becomes NaN.
fn json_canonical(item: &Item) -> Item {
    match item.clone() {
        Item::Frame(mut f) => {
            for x in f.samples_mut() {
                if !x.is_finite() {
                    *x = f32::NAN;
                }
            }
            Item::Frame(f)
        }
        Item::Record(mut r) => {
            for v in r.values.numbers_mut() {
                if !v.is_finite() {
                    *v = f64::NAN;
                }
            }
            Item::Record(r)
        }
    }
}

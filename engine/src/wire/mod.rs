//! Wire format v1 (placeholder until the codec branch lands).
use sigfab_operators::Item;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Binary,
    Json,
}
#[derive(Debug, thiserror::Error)]
#[error("wire placeholder")]
pub struct WireError;
pub fn encode(_item: &Item, _encoding: Encoding, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{}");
}
pub fn decode(_bytes: &[u8], _encoding: Encoding) -> Result<Item, WireError> {
    Err(WireError)
}

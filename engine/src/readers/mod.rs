//! Readers (placeholder until the readers branch lands).
use std::path::Path;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingFormat {
    Edf,
    EdfPlus,
    Bdf,
    BdfPlus,
    Wfdb,
}
#[derive(Clone, Debug)]
pub struct SignalInfo {
    pub name: String,
    pub unit: String,
    pub sample_rate: f64,
    pub resolution: f64,
    pub physical_min: Option<f64>,
    pub physical_max: Option<f64>,
}
#[derive(Clone, Debug)]
pub struct Annotation {
    pub onset_ns: i64,
    pub duration_ns: Option<i64>,
    pub text: String,
    pub code: Option<String>,
    pub channel: Option<usize>,
}
#[derive(Clone, Debug)]
pub struct RecordingHeader {
    pub format: RecordingFormat,
    pub start_ns: Option<i64>,
    pub patient: String,
    pub recording: String,
    pub signals: Vec<SignalInfo>,
    pub block_duration_s: f64,
    pub samples_per_block: Vec<u32>,
    pub total_blocks: u64,
}
#[derive(Debug, thiserror::Error)]
#[error("readers placeholder")]
pub struct ReadError;
pub trait RecordingReader: Send {
    fn header(&self) -> &RecordingHeader;
    fn read_blocks(&mut self, max_blocks: usize, out: &mut [Vec<f32>]) -> Result<usize, ReadError>;
    fn take_annotations(&mut self) -> Vec<Annotation>;
}
pub fn open(_path: &Path) -> Result<Box<dyn RecordingReader>, ReadError> {
    Err(ReadError)
}

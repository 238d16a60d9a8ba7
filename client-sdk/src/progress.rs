//! Download progress reporting: [`Progress`].

/// Receives download progress: bytes on disk so far and the signed total. Called as bytes
/// arrive, from the task running the download; keep it quick (update a bar, send to a
/// channel). Any `FnMut(u64, u64)` closure is a `Progress`.
pub trait Progress: Send {
    /// `downloaded` of `total` bytes are on disk. A resumed download starts above zero.
    fn update(&mut self, downloaded: u64, total: u64);
}

impl<F: FnMut(u64, u64) + Send> Progress for F {
    fn update(&mut self, downloaded: u64, total: u64) {
        self(downloaded, total)
    }
}

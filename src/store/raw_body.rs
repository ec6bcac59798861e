//! Raw bodies at rest (`RawBody::seal` in `super::types`): every webhook body and API page is
//! stored as one zstd frame, compressed where it arrives and read back by the inbox and
//! replays. One compression and one decompression context per thread, reused; a frame whose
//! header claims more than any intake accepts is refused before allocating.

use std::io::Read;

use super::StoreError;

/// zstd level for raw bodies: fast, and most of the bytes billsync writes are raw bodies.
const ZSTD_LEVEL: i32 = 3;

/// Largest body a stored raw event may decompress to (intake refuses more than 1 MiB).
const MAX_RAW_BODY: u64 = 16 << 20;

thread_local! {
    /// One compression context per thread, reused: `zstd::encode_all` made a fresh streaming
    /// context per body and zeroed its match tables (sized for a body of unknown length) each
    /// time, which was a third of all instructions at intake (measured with callgrind).
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// zstd frame of `body` (with its content size in the header; any zstd decoder reads it).
pub(super) fn compress(body: &[u8]) -> Result<Vec<u8>, StoreError> {
    let failed = |e: std::io::Error| StoreError::Corrupt(format!("zstd: {e}"));
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match &mut *slot {
            Some(c) => c,
            none => none.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(failed)?),
        };
        compressor.compress(body).map_err(failed)
    })
}

thread_local! {
    /// One decompression context per thread, reused: a fresh `ZSTD_DCtx` per body (what
    /// `zstd::Decoder::new` does) was 7% of all CPU while pair actors read their inbox
    /// (perf over scenario 1 of the scale benchmark).
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub(super) fn decompress(stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    let corrupt = |e: std::io::Error| StoreError::Corrupt(format!("zstd: {e}"));
    // Frames written by `compress` carry their content size; read those in one call with the
    // thread's context. Older streaming frames (no size in the header) take the slow path.
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(stored) {
        if size > MAX_RAW_BODY {
            return Err(StoreError::Corrupt(format!(
                "zstd: a stored body of {size} bytes is larger than any intake accepts"
            )));
        }
        return DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            let decompressor = match &mut *slot {
                Some(d) => d,
                none => none.insert(zstd::bulk::Decompressor::new().map_err(corrupt)?),
            };
            // `size` is at most MAX_RAW_BODY (16 MiB): it fits a usize on every target.
            decompressor
                .decompress(stored, size as usize)
                .map_err(corrupt)
        });
    }
    let mut out = Vec::new();
    zstd::Decoder::new(stored)
        .map_err(corrupt)?
        .take(MAX_RAW_BODY)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_bodies_round_trip_with_a_reused_context() {
        for body in [&b""[..], b"{}", &[b'x'; 5000][..], &[7u8; 300_000][..]] {
            let stored = compress(body).unwrap();
            assert_eq!(decompress(&stored).unwrap(), body);
        }
        // Bodies stored before the context was reused (streaming frames) still read back.
        let old = zstd::encode_all(&b"older body"[..], ZSTD_LEVEL).unwrap();
        assert_eq!(decompress(&old).unwrap(), b"older body");
    }

    #[test]
    fn a_frame_claiming_a_huge_body_is_refused_before_allocating() {
        // A frame header that says 1 GiB: magic, descriptor (8-byte content size, single
        // segment), the size. Refused from the header alone.
        let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
        frame.extend_from_slice(&(1u64 << 30).to_le_bytes());
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&frame).ok(),
            Some(Some(1 << 30))
        );
        assert!(matches!(decompress(&frame), Err(StoreError::Corrupt(_))));
        assert!(decompress(b"not zstd at all").is_err());
    }
}

//! The two readers of request heads on the downstream side, over any byte stream:
//! - the framing scanner, which flags a request carrying both `Content-Length` and
//!   `Transfer-Encoding`, or a bare LF in its head (the smuggling forms), before hyper reads
//!   it, gives the same verdict read in any pieces as read at once;
//! - the own HTTP/1.1 server's head parse gives the same head read in any pieces as read at
//!   once, leaves to hyper the bytes exactly as they came, and never takes a head the scanner
//!   flags.
//!
//! Input: a byte N, N cut positions, then the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proxy::fuzzing::{OwnHead, own_head, scan_requests};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, bytes) = rest.split_at(n);
    let whole = scan_requests(bytes, &[], 4096);
    let pieces = scan_requests(bytes, cuts, 4096);
    assert_eq!(whole, pieces, "cut at {cuts:?}");
    let head = own_head(bytes, &[], 4096);
    assert_eq!(head, own_head(bytes, cuts, 4096), "cut at {cuts:?}");
    if let OwnHead::Head { len, .. } = head {
        let scanned = scan_requests(&bytes[..len], &[], 4096);
        assert_eq!(scanned.flagged, None, "a head the scanner flags was taken");
    }
});

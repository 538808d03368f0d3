//! The downstream HTTP/1 framing scanner, which flags a request carrying both
//! `Content-Length` and `Transfer-Encoding`, or a bare LF in its head (the smuggling forms),
//! before hyper reads it: any byte stream, read in any pieces, gives the same verdict as read
//! at once. Input: a byte N, N cut positions, then the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proxy::fuzzing::scan_requests;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, bytes) = rest.split_at(n);
    let whole = scan_requests(bytes, &[], 4096);
    let pieces = scan_requests(bytes, cuts, 4096);
    assert_eq!(whole, pieces, "cut at {cuts:?}");
});

//! The upstream HTTP/1 response codec (head, length, chunked bodies, trailers): any bytes, in
//! any pieces, give the same response or the same refusal as read at once. Input: a byte
//! whose top bit says the request was HEAD and whose low bits are N, N cut positions, then
//! the response.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proxy::fuzzing::decode_response;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let method = if first & 0x80 != 0 {
        http::Method::HEAD
    } else {
        http::Method::GET
    };
    let n = usize::from(first & 0x0f).min(rest.len());
    let (cuts, bytes) = rest.split_at(n);
    let whole = decode_response(bytes, &[], &method);
    let pieces = decode_response(bytes, cuts, &method);
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("at once {whole:?}, in pieces {pieces:?}"),
    }
});

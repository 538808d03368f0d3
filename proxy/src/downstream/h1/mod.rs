//! The proxy's own HTTP/1.1 server, for the requests it can serve on one parse of their
//! head: plain requests, with no body or a `Content-Length` one. hyper serves the rest
//! (HTTP/2, upgrades, CONNECT, chunked bodies, `Expect`, HTTP/1.0, and every head it would
//! refuse): the connection is handed to it, with the bytes of the request it starts with.

pub mod answer;
pub mod conn;
pub mod date;
pub mod head;
pub mod reader;
pub mod rewind;

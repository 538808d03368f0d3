//! Routing, pure: a route table compiled from its spec ([`table`], with its [`matcher`]s and
//! [`split`]) and the decision of which route and which backend take a request ([`decide`]). No runtime, no sockets: everything
//! here is a function of the table and the request.

pub mod decide;
pub mod index;
pub mod matcher;
pub mod names;
pub mod split;
pub mod table;
